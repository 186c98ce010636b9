package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// Bounds of how long the stop plan keeps pg_basebackup stopped: long
// enough to look at it, well under the server's wal_sender_timeout (60 s by
// default), after which the run would fail for a reason of its own.
const (
	StopHoldMin = 2 * time.Second
	StopHoldMax = 8 * time.Second
)

// StopObservation is what the stop plan saw while pg_basebackup was
// stopped; the trial's invariants judge it (see harness/trial/stop.go).
type StopObservation struct {
	// Held is how long the process was stopped.
	Held time.Duration `json:"held_ns"`
	// Stopped says /proc showed the process stopped (state T).
	Stopped bool `json:"stopped"`
	// State is the status file's STATUS while stopped ("" if unreadable).
	State string `json:"state,omitempty"`
	// Phase is its PHASE while stopped.
	Phase string `json:"phase,omitempty"`
	// Verdict and ExitCode are what status.Check (pgbb-status) said
	// while the process was stopped; Summary why.
	Verdict  string `json:"verdict"`
	ExitCode int    `json:"exit_code"`
	Summary  string `json:"summary"`
	// RemoveExit is status.RemoveIfDead's exit code while stopped (1:
	// refused), RemoveRefused its reason.
	RemoveExit    int    `json:"remove_exit"`
	RemoveRefused string `json:"remove_refused,omitempty"`
	// TargetIntact says the status file was still there, unchanged, after
	// the removal attempt.
	TargetIntact bool `json:"target_intact"`
	// OtherNamespace is what pgbb-status said from a PID namespace of
	// its own (unshare --pid --fork --mount-proc), as a reader in a
	// container sharing the host name would; nil when it was not run.
	OtherNamespace *NamespaceReader `json:"other_namespace,omitempty"`
	// OtherUser is what pgbb-status said run as another user of the
	// owner's group; nil when it was not run.
	OtherUser *UserReader `json:"other_user,omitempty"`
	// NotRun says why OtherNamespace or OtherUser was not run; nil when
	// both were.
	NotRun *ReaderGaps `json:"not_run,omitempty"`
	// Continued says SIGCONT was sent and the process ran again.
	Continued bool `json:"continued"`
	// PhaseOrder is empty when the status file samples taken from the
	// fault's start to the run's end kept the writer's promises
	// (status.PhasesForward), else the first broken one.
	PhaseOrder string `json:"phase_order,omitempty"`
	// Samples is how many distinct status files were sampled.
	Samples int `json:"samples"`
}

// stopCont stops pg_basebackup with SIGSTOP at a random time after the
// server started the backup, looks at it with the status reader (Check
// and RemoveIfDead, as pgbb-status does), and continues it with SIGCONT
// after StopHoldMin to StopHoldMax. Only the process recorded in the status
// file is stopped; its WAL streaming child runs on.
type stopCont struct{}

var (
	_ StatusWatcher = stopCont{}
	_ ReaderUser    = stopCont{}
)

func (stopCont) Name() string     { return scenario.PlanStop }
func (stopCont) Available() error { return nil }

// WatchesStatusFile says the plan samples the status file itself.
func (stopCont) WatchesStatusFile() bool { return true }

// RunsReader says the plan runs the built pgbb-status from another PID
// namespace and as another user.
func (stopCont) RunsReader() bool { return true }

func (f stopCont) Inject(ctx context.Context, t *Target) (Injection, error) {
	anchor, off, fin := schedule(t.Rand, t.Calibration.Timeline, PhaseReceiving)
	hold := StopHoldMin + time.Duration(t.Rand.Int64N(int64(StopHoldMax-StopHoldMin)))
	inj := Injection{Plan: f.Name(), Anchor: anchor.String(), Offset: off, Finishing: fin}
	obs := &StopObservation{}
	inj.Stop = obs
	statusPath := t.StatusFile

	// Sample the status file from now until the run ends.
	sampler := StartStatusSampler(statusPath, t.Done, Probes{})
	defer func() {
		// The samples go on until the run ends (the trial waits for
		// that before it reads anything).
		select {
		case <-t.Done:
		case <-ctx.Done():
		}
		samples := sampler.Stop()
		obs.Samples = len(samples.Versions)
		if err := status.PhasesForward(samples.Statuses()); err != nil {
			obs.PhaseOrder = err.Error()
		}
	}()

	if !wait(ctx, t, anchor, off) {
		return inj, ctx.Err()
	}
	if err := syscall.Kill(t.PID, syscall.SIGSTOP); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			inj.Detail = "the process exited before the stop"
			return inj, nil
		}
		return inj, fmt.Errorf("stop: kill -STOP %d: %w", t.PID, err)
	}
	fired(&inj, t)
	stoppedAt := time.Now()
	// Continue it whatever happens next.
	defer func() {
		if err := syscall.Kill(t.PID, syscall.SIGCONT); err == nil {
			obs.Continued = waitContinued(t.PID, t.Done, 30*time.Second)
		}
		obs.Held = time.Since(stoppedAt)
		inj.Detail = fmt.Sprintf("SIGSTOP for %s, then SIGCONT; reader said %s (exit %d), remove-if-dead exit %d",
			obs.Held.Round(time.Millisecond), obs.Verdict, obs.ExitCode, obs.RemoveExit)
	}()

	obs.Stopped = waitStopped(t.PID, true, 2*time.Second)
	if !obs.Stopped && exitedMeanwhile(t.PID, t.Done) {
		// A process on its way out cannot be stopped (a zombie never
		// shows state T): the stop came as late as one that found the
		// process gone, and proves nothing about the reader.
		inj.Fired, inj.Detail = false, "the process exited as the stop arrived"
		return inj, nil
	}
	// A build that writes no status file (stock) is only stopped and
	// continued: there is nothing to read.
	if statusPath != "" {
		readWhileStopped(ctx, t, obs)
	}

	timer := time.NewTimer(max(hold-time.Since(stoppedAt), 0))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	return inj, nil
}

// readWhileStopped judges the stopped run's status file as an operator's
// tools would: the reader, --remove-if-dead, and the built pgbb-status from
// another PID namespace and as another user; none may change the file.
func readWhileStopped(ctx context.Context, t *Target, obs *StopObservation) {
	statusPath := t.StatusFile
	before, _ := os.ReadFile(statusPath)
	own := status.WithProcesses(WritersNamespace())
	r := status.Check(statusPath, own)
	obs.Verdict, obs.ExitCode, obs.Summary = r.Verdict.String(), r.ExitCode, r.Summary
	if r.Status != nil {
		obs.State, obs.Phase = r.Status.State.String(), string(r.Status.Phase)
	}
	rm := RemoveIfDead(ctx, statusPath, false, own)
	obs.RemoveExit, obs.RemoveRefused = rm.ExitCode, rm.Refused
	gaps := ReadersNotRun(t)
	if gaps.OtherNamespace == "" {
		obs.OtherNamespace = readFromOtherNamespace(ctx, t.ReaderBin, statusPath, t.ReaderTZ)
	}
	if gaps.OtherUser == "" && t.OtherUser != nil {
		obs.OtherUser = readAsUser(ctx, *t.OtherUser, t.ReaderBin, statusPath, t.ReaderTZ)
	}
	if gaps.Any() {
		obs.NotRun = &gaps
	}
	after, err := os.ReadFile(statusPath)
	obs.TargetIntact = err == nil && bytes.Equal(before, after)
}

// waitStopped waits until /proc shows pid stopped (or not), for at most
// limit; it says whether it did.
func waitStopped(pid int, stopped bool, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		info, err := (status.Procfs{}).Process(pid)
		if err == nil && info.Exists && info.Stopped == stopped {
			return true
		}
		if err != nil || !info.Exists || time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exitedMeanwhile says whether pg_basebackup (pid, done closed once it was
// waited for) has exited: done is closed, or /proc shows it a zombie or
// gone.
func exitedMeanwhile(pid int, done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
	}
	info, err := (status.Procfs{}).Process(pid)
	return err == nil && (!info.Exists || info.Zombie)
}

// waitContinued waits until the continued process pid shows as running in
// /proc, or has exited (done closed, or it is a zombie or gone: it can
// only have exited after it ran again), for at most limit; it says
// whether it did. The limit is generous: on a loaded machine a continued
// process can take seconds to be scheduled, and a false "not continued"
// would be the harness's own false alarm.
func waitContinued(pid int, done <-chan struct{}, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-done:
			return true
		default:
		}
		info, err := (status.Procfs{}).Process(pid)
		switch {
		case err == nil && (!info.Exists || info.Zombie || !info.Stopped):
			return true
		case time.Now().After(deadline):
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StatusSampler reads a status file every 20 ms and keeps each distinct
// version that parses (unreadable moments are skipped: a missing or
// invalid file is judged elsewhere), for status.PhasesForward; with
// probes, it also follows how much of the base backup the server has
// streamed and how much the run has written (StatusSamples).
type StatusSampler struct {
	quit    chan struct{}
	done    chan struct{}
	probes  Probes
	samples StatusSamples
}

// A Probe returns a byte count, and false when it cannot tell.
type Probe func() (int64, bool)

// Probes are what a StatusSampler asks besides the file; either may be
// nil.
type Probes struct {
	// Streamed is how many bytes of the run's base backup the server
	// has streamed so far (pg_stat_progress_basebackup.backup_streamed);
	// it cannot tell when no backup is in progress or the server is
	// gone.
	Streamed Probe
	// Written is how many bytes the run's process has written so far
	// (wchar of /proc/PID/io): the backup's files, or the archive on
	// standard output, as it receives them.
	Written Probe
}

// StatusSamples is what a StatusSampler saw.
type StatusSamples struct {
	// Versions are the distinct versions of the file, oldest first.
	Versions []StatusVersion
	// Streamed is the server's count of the base backup's bytes, and
	// Written the run's count of bytes written, every 100 ms (with
	// probes only).
	Streamed []CountSample
	Written  []CountSample
}

// StatusVersion is one version of the status file: when the sampler
// first read it, and what the server had streamed right after that read
// (-1: not known).
type StatusVersion struct {
	At       time.Time
	Status   *status.Status
	Streamed int64
}

// CountSample is a byte count taken at a moment between Asked and
// Answered.
type CountSample struct {
	Asked, Answered time.Time
	Bytes           int64
}

// Statuses returns the versions' contents, for status.PhasesForward.
func (s StatusSamples) Statuses() []*status.Status {
	out := make([]*status.Status, len(s.Versions))
	for i, v := range s.Versions {
		out[i] = v.Status
	}
	return out
}

// StartStatusSampler samples the status file at path until runDone is
// closed (with one last look then) or Stop is called.
func StartStatusSampler(path string, runDone <-chan struct{}, probes Probes) *StatusSampler {
	s := &StatusSampler{quit: make(chan struct{}), done: make(chan struct{}), probes: probes}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			s.look(path, n%5 == 0)
			select {
			case <-s.quit:
				return
			case <-runDone:
				// One last look at what the run left.
				s.look(path, false)
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// look reads the file once and keeps it if it is a new version; when it
// is, or when counts says to, it asks the probes.
func (s *StatusSampler) look(path string, counts bool) {
	st, err := status.ReadFile(path)
	vs := s.samples.Versions
	fresh := err == nil && (len(vs) == 0 || st.Checksum != vs[len(vs)-1].Status.Checksum)
	if fresh {
		s.samples.Versions = append(vs, StatusVersion{At: time.Now(), Status: st, Streamed: -1})
	}
	if !fresh && !counts {
		return
	}
	if c, ok := ask(s.probes.Streamed); ok {
		if fresh {
			s.samples.Versions[len(s.samples.Versions)-1].Streamed = c.Bytes
		}
		s.samples.Streamed = append(s.samples.Streamed, c)
	}
	if c, ok := ask(s.probes.Written); ok {
		s.samples.Written = append(s.samples.Written, c)
	}
}

// ask takes one count of probe p, if there is one and it can tell.
func ask(p Probe) (CountSample, bool) {
	if p == nil {
		return CountSample{}, false
	}
	asked := time.Now()
	n, ok := p()
	return CountSample{Asked: asked, Answered: time.Now(), Bytes: n}, ok
}

// Stop ends the sampling, if the run's end did not already, and returns
// the samples.
func (s *StatusSampler) Stop() StatusSamples {
	select {
	case <-s.done:
	default:
		close(s.quit)
		<-s.done
	}
	return s.samples
}
