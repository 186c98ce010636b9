package fault

import (
	"context"
	"os/exec"
	"syscall"
	"time"
)

// A plan's lifecycle. Every plan is a Fault: its Inject waits for its
// moment and injects. A plan that needs more of the trial than that
// implements the optional interfaces below, and the trial calls them in
// this order, doing the default where a plan implements none:
//
//	Prepare  set up what the run writes to  (default: plain directories)
//	Launch   start pg_basebackup            (default: exec)
//	Inject   every plan, while the run lasts
//	Settle   once the run's process group is gone
//
// The Injection a plan returns, completed by its Settle, is its report.
// The disk plans prepare and settle the power-loss layer (onDisk), the
// traced plans launch under ptrace and settle the tracer (traced), the
// server-stop plan settles by restarting the server. ByName makes a new
// plan for each trial: a plan may keep what its steps share.

// Preparer is a plan that sets up the storage the run writes to before
// it starts: it sets t.Disk, whose Target, Tablespaces and StatusFile
// the run is then given. The trial calls release when it ends (after a
// Settle that powered the layer off, it has nothing left to do).
type Preparer interface {
	Prepare(ctx context.Context, t *Target) (release func(), err error)
}

// Launcher is a plan that starts pg_basebackup itself. cmd starts its
// own process group.
type Launcher interface {
	Launch(cmd *exec.Cmd, t *Target) (Process, error)
}

// Process is a started pg_basebackup.
type Process interface {
	// Wait waits for the process to exit and returns its wait status.
	Wait() syscall.WaitStatus
	// Line sees each line of its output, in order, as the trial reads it.
	Line(line string)
}

// Settler is a plan with something to do once pg_basebackup's whole
// process group is gone and before anything reads what the run left:
// cut the power of the layer, wait for the tracer, restart the server.
// It completes the plan's report inj and out.
type Settler interface {
	Settle(ctx context.Context, t *Target, inj *Injection, out *Settled) error
}

// Settled is what settling found besides the plan's Injection.
type Settled struct {
	// Disk is what the power-loss layer saw (disk plans).
	Disk *DiskReport
	// Syscalls counts the file-system calls of the run's process tree
	// per phase (traced plans).
	Syscalls map[string]int64
}

// StatusWatcher is a plan that reads the status file itself while the
// run lasts (the stop plan): the trial does not sample it then.
type StatusWatcher interface {
	WatchesStatusFile() bool
}

// ReaderUser is a plan that runs the built reader, pgbb-status, as a
// process of its own (Target.ReaderBin, OtherUser): the campaign builds
// it when a scenario has such a plan.
type ReaderUser interface {
	RunsReader() bool
}

// RunsReader says whether any of the named plans runs the built reader.
func RunsReader(plans []string) bool {
	for _, name := range plans {
		if f, err := ByName(name); err == nil {
			if r, ok := f.(ReaderUser); ok && r.RunsReader() {
				return true
			}
		}
	}
	return false
}

// Calibration is what the clean runs of a scenario measured, for the
// plans to schedule their faults by.
type Calibration struct {
	// Timeline is when the control run reached each phase (empty for the
	// control run itself).
	Timeline Timeline
	// Syscalls counts a traced clean run's file-system calls per phase
	// (SyscallCount): kill-syscall picks its call among them.
	Syscalls map[string]int64
	// DiskOps counts the operations of each kind (powerfs.OpKind names)
	// in the finishing part of a clean run on the power-loss layer
	// (DiskCount): the disk plans at the Nth operation sample among them.
	DiskOps map[string]int64
}

// Calibrator is the plan of a clean run that measures what other plans
// schedule by; the campaign runs one per worker before the trials.
type Calibrator interface {
	Fault
	// Label names the run in trial ids ("count", "disk-count").
	Label() string
	// Calibrate stores what the run measured into cal.
	Calibrate(cal *Calibration)
}

// calibrated is a plan that needs a calibrator's measure.
type calibrated interface {
	calibrator() Calibrator
}

// Calibrators returns the clean runs the named plans need besides the
// control, one of each kind, in a fixed order (the traced run, then the
// run on the power-loss layer); unknown names are ignored (Validate
// reports them).
func Calibrators(plans []string) []Calibrator {
	byLabel := map[string]Calibrator{}
	for _, name := range plans {
		if f, err := ByName(name); err == nil {
			if c, ok := f.(calibrated); ok {
				cr := c.calibrator()
				byLabel[cr.Label()] = cr
			}
		}
	}
	var out []Calibrator
	for _, label := range []string{countLabel, diskCountLabel} {
		if cr, ok := byLabel[label]; ok {
			out = append(out, cr)
		}
	}
	return out
}

// execProcess is a pg_basebackup started by exec, the default launch.
type execProcess struct{ cmd *exec.Cmd }

// Start starts cmd for a plan that is not a Launcher.
func Start(cmd *exec.Cmd) (Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return execProcess{cmd}, nil
}

func (p execProcess) Wait() syscall.WaitStatus {
	p.cmd.Wait()
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ws
}

func (execProcess) Line(string) {}

// settleTimeout bounds how long a plan's settling waits for what it left
// to go away.
const settleTimeout = 10 * time.Second
