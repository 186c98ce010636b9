// Package fault injects the faults of the crash harness into one running
// pg_basebackup: signals to the process or its WAL streaming child,
// server-side faults (walsender terminated, server stopped), a kill at
// the Nth file-system call (under ptrace), a stop while readers look, and
// power loss and disk errors on the power-loss layer (harness/powerfs).
//
// A plan is a small interface (Name, Available, Inject) as in etcd's
// failpoints, registered by name in one map (plans); a plan that needs
// more of the trial than Inject implements the optional interfaces of
// lifecycle.go: Preparer (the storage the run writes to), Launcher (how
// pg_basebackup is started), Settler (what to do once the run's process
// group is gone), StatusWatcher (it reads the status file itself),
// ReaderUser (it runs the built reader), and
// Calibrator for the clean runs that measure what plans schedule by. When
// a fault fires is decided from a seeded random source and from the
// phases of a calibrated clean run, so that a trial can be replayed.
package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/proc"
	"github.com/pgbb/pgbb/harness/scenario"
)

// Target is the run a fault is injected into.
type Target struct {
	// PID is the process the trial started, leader of its own process
	// group: pg_basebackup, or with Wrapped the wrapper (pgbb-run) whose
	// child pg_basebackup is (BackupPID); Done is closed when it has
	// exited. Both are set once the run started (not yet in Prepare and
	// Launch).
	PID  int
	Done <-chan struct{}
	// Wrapped says PID is a wrapper that runs pg_basebackup as its child,
	// in PID's process group (the wrapper variant).
	Wrapped bool
	// Phases follows the run.
	Phases *Tracker
	// Cluster is the source cluster.
	Cluster *cluster.Cluster
	// Calibration is what clean runs of the same scenario measured.
	Calibration Calibration
	// Rand is the trial's seeded random source.
	Rand *rand.Rand
	// Dir is the trial's directory; Acct owns what the run writes;
	// Tablespaces is the number of the source's tablespaces (what a
	// Preparer lays out).
	Dir         string
	Acct        osuser.Account
	Tablespaces int
	// Disk is the power-loss storage layer under the backup, set by the
	// disk plans' Prepare; nil otherwise.
	Disk *Disk
	// StatusFile is the run's status file, outside every directory the
	// run writes (empty for a build that writes none).
	StatusFile string
	// ReaderBin is a pgbb-status binary: the stop plan runs it in a PID
	// namespace of its own as well (empty: it does not).
	ReaderBin string
	// OtherUser is another user in the owner's group: the stop plan
	// also runs ReaderBin as that user (nil: it does not).
	OtherUser *osuser.Account
	// ReaderTZ is the time zone (TZ) ReaderBin runs in, another than the
	// run's: what it says must not depend on it.
	ReaderTZ string
	// ReaderGaps says why ReaderBin cannot run as another user or from
	// another PID namespace where the campaign knows (a failed probe);
	// the stop plan adds what the fields above show (ReadersNotRun).
	ReaderGaps ReaderGaps
}

// Injection records what a fault did.
type Injection struct {
	// Plan is the fault plan's name.
	Plan string `json:"plan"`
	// Fired says whether the fault was injected (the run may have ended
	// before its time came).
	Fired bool `json:"fired"`
	// Anchor and Offset say when the fault was scheduled: Offset after the
	// run reached phase Anchor.
	Anchor string        `json:"anchor,omitempty"`
	Offset time.Duration `json:"offset_ns,omitempty"`
	// At is when it fired, since the run's start.
	At time.Duration `json:"at_ns,omitempty"`
	// Phase is the run's phase when it fired.
	Phase string `json:"phase,omitempty"`
	// Finishing says whether the schedule aimed at the finishing part of
	// the run (after the last data file was received).
	Finishing bool `json:"finishing,omitempty"`
	// Detail says what exactly was done.
	Detail string `json:"detail,omitempty"`
	// FinishingOps counts the operations of each kind in the finishing
	// part of the run (DiskCount only).
	FinishingOps map[string]int64 `json:"finishing_ops,omitempty"`
	// ServerStopped says the source server was stopped and must be
	// restarted after the trial.
	ServerStopped bool `json:"server_stopped,omitempty"`
	// Stop is what the stop plan saw while pg_basebackup was stopped.
	Stop *StopObservation `json:"stop,omitempty"`
	// StatusDir is what the status-dir-readonly plan did.
	StatusDir *StatusDirObservation `json:"status_dir,omitempty"`
}

// Fault is one fault plan. A plan that needs more of the trial than
// Inject implements the optional interfaces of lifecycle.go.
type Fault interface {
	// Name is the plan's name in scenarios and reports.
	Name() string
	// Available says why the plan cannot run on this machine (root,
	// /dev/fuse, ptrace), or nil. What a plan needs of a scenario's
	// options is the scenario's rule (scenario.Scenario.Check).
	Available() error
	// Inject waits for the plan's moment and injects the fault, unless
	// the run ends first.
	Inject(ctx context.Context, t *Target) (Injection, error)
}

// ByName returns a new fault plan of a name, for one trial.
func ByName(name string) (Fault, error) {
	if newPlan, ok := plans[name]; ok {
		return newPlan(), nil
	}
	return nil, fmt.Errorf("unknown fault plan %q", name)
}

// plans make the fault plans by name: every name scenario knows has one.
var plans = map[string]func() Fault{
	scenario.PlanNone:               func() Fault { return none{} },
	scenario.PlanKill:               func() Fault { return signalFault{name: scenario.PlanKill, sig: syscall.SIGKILL, to: ToPID} },
	scenario.PlanTerm:               func() Fault { return signalFault{name: scenario.PlanTerm, sig: syscall.SIGTERM, to: ToPID} },
	scenario.PlanInt:                func() Fault { return signalFault{name: scenario.PlanInt, sig: syscall.SIGINT, to: ToPID} },
	scenario.PlanKillBackup:         func() Fault { return signalFault{name: scenario.PlanKillBackup, sig: syscall.SIGKILL, to: ToBackup} },
	scenario.PlanTermBackup:         func() Fault { return signalFault{name: scenario.PlanTermBackup, sig: syscall.SIGTERM, to: ToBackup} },
	scenario.PlanKillGroup:          func() Fault { return signalFault{name: scenario.PlanKillGroup, sig: syscall.SIGKILL, to: ToGroup} },
	scenario.PlanTermGroup:          func() Fault { return signalFault{name: scenario.PlanTermGroup, sig: syscall.SIGTERM, to: ToGroup} },
	scenario.PlanKillWALChild:       func() Fault { return walChildKill{} },
	scenario.PlanTerminateWalsender: func() Fault { return walsenderTerminate{} },
	scenario.PlanServerStop:         func() Fault { return serverStop{} },
	scenario.PlanSyscallKill:        func() Fault { return &syscallKill{} },
	scenario.PlanStop:               func() Fault { return stopCont{} },
	scenario.PlanStatusDirReadOnly:  func() Fault { return statusDirReadOnly{} },
	scenario.PlanPowerLoss:          func() Fault { return powerLossTime{} },
	scenario.PlanPowerLossFsync:     func() Fault { return powerLossAt{name: scenario.PlanPowerLossFsync, kind: powerfs.OpFsync} },
	scenario.PlanPowerLossFsyncDir:  func() Fault { return powerLossAt{name: scenario.PlanPowerLossFsyncDir, kind: powerfs.OpFsyncDir} },
	scenario.PlanPowerLossRename:    func() Fault { return powerLossAt{name: scenario.PlanPowerLossRename, kind: powerfs.OpRename} },
	scenario.PlanPowerLossWrite:     func() Fault { return powerLossAt{name: scenario.PlanPowerLossWrite, kind: powerfs.OpWrite} },
	scenario.PlanEIOOpenSync:        func() Fault { return eioFault{name: scenario.PlanEIOOpenSync} },
	scenario.PlanEIOFsync:           func() Fault { return eioFault{name: scenario.PlanEIOFsync} },
	scenario.PlanEIOFsyncDir:        func() Fault { return eioFault{name: scenario.PlanEIOFsyncDir} },
	scenario.PlanEIORename:          func() Fault { return eioFault{name: scenario.PlanEIORename} },
	scenario.PlanENOSPC:             func() Fault { return enospcFault{} },
	scenario.PlanStatusFileIOError:  func() Fault { return &statusFileIOError{} },
}

var (
	_ Fault   = none{}
	_ Fault   = signalFault{}
	_ Fault   = walChildKill{}
	_ Fault   = walsenderTerminate{}
	_ Settler = serverStop{}
)

// FinishingShare is the share of random-time faults aimed at the finishing
// part of a run (after the last data file was received): at least a third.
const FinishingShare = 0.4

// schedule picks when a random-time fault fires, over the calibrated run
// from phase from until the run's exit (see scheduleWindow).
func schedule(rng *rand.Rand, cal Timeline, from Phase) (anchor Phase, offset time.Duration, finishing bool) {
	return scheduleWindow(rng, cal, from, PhaseExited)
}

// scheduleWindow picks when a random-time fault fires, within the window
// of the calibrated run from phase from until phase to (or the next phase
// reached after it): with FinishingShare probability uniformly over the
// finishing part of the window (after the last data file was received),
// anchored at the phase that starts it, else uniformly over the whole
// window, anchored at from. Anchoring at phases of the live run, not at
// its start, keeps late faults late although runs vary in speed.
func scheduleWindow(rng *rand.Rand, cal Timeline, from, to Phase) (anchor Phase, offset time.Duration, finishing bool) {
	end, ok := cal.At(to)
	for p := to; !ok && p < PhaseExited; {
		p++
		end, ok = cal.At(p)
	}
	if !ok {
		end = cal.Total()
	}
	u := rng.Float64()
	if fin, hasFin := cal.FinishStart(); hasFin && fin < end && rng.Float64() < FinishingShare {
		anchor := PhaseEndOfData
		for _, p := range []Phase{PhaseEndOfData, PhaseWALWait, PhaseSync, PhaseRename, PhaseCompleted} {
			if _, ok := cal.At(p); ok {
				anchor = p
				break
			}
		}
		return anchor, time.Duration(u * float64(end-fin)), true
	}
	startAt, ok := cal.At(from)
	if !ok {
		from, startAt = PhaseStart, 0
	}
	return from, time.Duration(u * float64(end-startAt)), false
}

// wait waits for anchor plus offset; false when the run ended first.
func wait(ctx context.Context, t *Target, anchor Phase, offset time.Duration) bool {
	if !t.Phases.Wait(ctx, anchor, t.Done) {
		return false
	}
	timer := time.NewTimer(offset)
	defer timer.Stop()
	select {
	case <-timer.C:
		select {
		case <-t.Done:
			return false
		default:
			return true
		}
	case <-t.Done:
		return false
	case <-ctx.Done():
		return false
	}
}

// fired fills in the moment of an injection.
func fired(inj *Injection, t *Target) {
	inj.Fired = true
	inj.At = t.Phases.Elapsed()
	inj.Phase = t.Phases.Current().String()
}

// none is the control: no fault.
type none struct{}

func (none) Name() string     { return scenario.PlanNone }
func (none) Available() error { return nil }
func (none) Inject(ctx context.Context, t *Target) (Injection, error) {
	return Injection{Plan: scenario.PlanNone}, nil
}

// signalFault sends a signal at a random time to the processes of the
// run that to names: the process the trial started (pg_basebackup or the
// wrapper) alone, never its group, as an orchestrator's timeout signals
// the process it started; pg_basebackup alone (with a wrapper, its
// child); or the whole process group.
type signalFault struct {
	name string
	sig  syscall.Signal
	to   SignalTo
}

func (f signalFault) Name() string     { return f.name }
func (f signalFault) Available() error { return nil }
func (f signalFault) Inject(ctx context.Context, t *Target) (Injection, error) {
	anchor, off, fin := schedule(t.Rand, t.Calibration.Timeline, PhaseStart)
	inj := Injection{Plan: f.name, Anchor: anchor.String(), Offset: off, Finishing: fin, Detail: f.sig.String()}
	if !wait(ctx, t, anchor, off) {
		return inj, ctx.Err()
	}
	fired(&inj, t)
	detail, err := t.Signal(f.to, f.sig)
	if f.to != ToPID || t.Wrapped {
		inj.Detail = detail
	}
	if errors.Is(err, errNoProcess) {
		// A wrapper's pg_basebackup not started yet, or gone.
		inj.Fired = false
		inj.Detail = detail + ": " + err.Error()
		return inj, nil
	}
	if err != nil {
		return inj, fmt.Errorf("%s: %w", f.name, err)
	}
	return inj, nil
}

// walChildKill kills only the WAL streaming child of pg_basebackup (with
// a wrapper, the child of the wrapper's pg_basebackup child).
type walChildKill struct{}

func (walChildKill) Name() string     { return scenario.PlanKillWALChild }
func (walChildKill) Available() error { return nil }
func (f walChildKill) Inject(ctx context.Context, t *Target) (Injection, error) {
	// The child lives from the start of data until the WAL wait ends.
	anchor, off, fin := scheduleWindow(t.Rand, t.Calibration.Timeline, PhaseReceiving, PhaseSync)
	inj := Injection{Plan: f.Name(), Anchor: anchor.String(), Offset: off, Finishing: fin}
	if !wait(ctx, t, anchor, off) {
		return inj, ctx.Err()
	}
	var kids []int
	if pid := t.BackupPID(); pid != 0 {
		kids = proc.Children(pid)
	}
	if len(kids) == 0 {
		inj.Detail = "no WAL child alive at the scheduled time"
		return inj, nil
	}
	fired(&inj, t)
	inj.Detail = fmt.Sprintf("SIGKILL to WAL child %d", kids[0])
	if err := syscall.Kill(kids[0], syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return inj, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return inj, nil
}

// walsenderTerminate terminates the backup's walsenders on the server
// (pg_terminate_backend): the base backup one, the WAL streaming one, or
// both, chosen at random.
type walsenderTerminate struct{}

func (walsenderTerminate) Name() string     { return scenario.PlanTerminateWalsender }
func (walsenderTerminate) Available() error { return nil }
func (f walsenderTerminate) Inject(ctx context.Context, t *Target) (Injection, error) {
	// The walsenders serve the run until the WAL wait ends.
	anchor, off, fin := scheduleWindow(t.Rand, t.Calibration.Timeline, PhaseReceiving, PhaseSync)
	which := []string{"backup", "streaming", "all"}[t.Rand.IntN(3)]
	inj := Injection{Plan: f.Name(), Anchor: anchor.String(), Offset: off, Finishing: fin}
	// Connect before the moment, so the fault lands on time.
	conn, err := t.Cluster.Connect(ctx, cluster.Database)
	if err != nil {
		return inj, fmt.Errorf("%s: %w", f.Name(), err)
	}
	defer conn.Close(context.Background())
	if !wait(ctx, t, anchor, off) {
		return inj, ctx.Err()
	}
	q := `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a LEFT JOIN pg_stat_replication r ON r.pid = a.pid
	      WHERE a.backend_type = 'walsender' AND a.application_name = 'pg_basebackup'`
	switch which {
	case "backup":
		q += ` AND r.state = 'backup'`
	case "streaming":
		q += ` AND r.state IS DISTINCT FROM 'backup'`
	}
	fired(&inj, t)
	tag, err := conn.Exec(ctx, q)
	if err != nil {
		return inj, fmt.Errorf("%s: %w", f.Name(), err)
	}
	inj.Detail = fmt.Sprintf("terminated %s walsenders (%d)", which, tag.RowsAffected())
	if tag.RowsAffected() == 0 {
		inj.Fired = false
	}
	return inj, nil
}

// serverStop stops the source server in immediate mode mid-backup.
type serverStop struct{}

func (serverStop) Name() string     { return scenario.PlanServerStop }
func (serverStop) Available() error { return nil }
func (f serverStop) Inject(ctx context.Context, t *Target) (Injection, error) {
	anchor, off, fin := schedule(t.Rand, t.Calibration.Timeline, PhaseCheckpoint)
	inj := Injection{Plan: f.Name(), Anchor: anchor.String(), Offset: off, Finishing: fin}
	if !wait(ctx, t, anchor, off) {
		return inj, ctx.Err()
	}
	fired(&inj, t)
	inj.ServerStopped = true
	inj.Detail = "pg_ctl stop -m immediate"
	if err := t.Cluster.Stop(ctx, "immediate"); err != nil {
		return inj, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return inj, nil
}

// Settle restarts the source server the plan stopped, for the oracle and
// the next trials.
func (f serverStop) Settle(ctx context.Context, t *Target, inj *Injection, out *Settled) error {
	if !inj.ServerStopped {
		return nil
	}
	if err := t.Cluster.Start(ctx, 120*time.Second); err != nil {
		return fmt.Errorf("restart source server after %s: %w", f.Name(), err)
	}
	return nil
}
