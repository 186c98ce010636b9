package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
)

// Labels of the calibration runs (Calibrator.Label).
const (
	countLabel     = "count"
	diskCountLabel = "disk-count"
)

// Wait waits for the traced leader to exit and returns its wait status.
func (t *Traced) Wait() syscall.WaitStatus {
	<-t.Done
	return t.Status
}

// Line marks, at the current count of calls, the phase a line of the
// run's output starts.
func (t *Traced) Line(line string) {
	if p, ok := PhaseOfLine(line); ok {
		t.Counter.MarkPhase(p)
	}
}

// traced is the part of the traced plans that starts the run under
// ptrace (StartTraced) and, once its process tree is gone, waits for the
// tracer and reports the calls counted per phase.
type traced struct {
	tr *Traced
}

// launch starts cmd under the tracer, killing the tree at the killAt-th
// file-system call (0: never).
func (p *traced) launch(cmd *exec.Cmd, t *Target, killAt int64) (Process, error) {
	tr, err := StartTraced(cmd, killAt, t.Phases.Current)
	if err != nil {
		return nil, err
	}
	p.tr = tr
	return tr, nil
}

// Settle waits for the tracer to see the whole tree go.
func (p *traced) Settle(ctx context.Context, t *Target, inj *Injection, out *Settled) error {
	select {
	case <-p.tr.Finished():
	case <-time.After(settleTimeout):
		return errors.New("ptrace: the traced processes did not go away")
	}
	if p.tr.Err != nil {
		return p.tr.Err
	}
	out.Syscalls = p.tr.Counter.Phases()
	return nil
}

// syscallKill is SIGKILL to the process group at the Nth file-system call
// of the process tree, N chosen from a traced clean run's counts
// (SyscallCount) by ChooseSyscall. The tracer kills; Settle reports what
// it did.
type syscallKill struct {
	traced
	killAt    int64
	finishing bool
}

func (*syscallKill) Name() string           { return scenario.PlanSyscallKill }
func (*syscallKill) Available() error       { return ptraceAvailable() }
func (*syscallKill) calibrator() Calibrator { return &SyscallCount{} }

// Launch chooses the call and starts the run under the tracer.
func (f *syscallKill) Launch(cmd *exec.Cmd, t *Target) (Process, error) {
	f.killAt, f.finishing = ChooseSyscall(t.Rand, t.Calibration.Syscalls)
	return f.launch(cmd, t, f.killAt)
}

// Inject says which call the tracer kills at: the tracer injects.
func (f *syscallKill) Inject(ctx context.Context, t *Target) (Injection, error) {
	return Injection{Plan: f.Name(), Anchor: "syscall", Finishing: f.finishing,
		Detail: fmt.Sprintf("kill at file-system call #%d", f.killAt)}, nil
}

// Settle waits for the tracer and reports its kill. Only once the whole
// tree is gone has the tracer written all it will: the chosen call may be
// one of the WAL child's after pg_basebackup itself exited.
func (f *syscallKill) Settle(ctx context.Context, t *Target, inj *Injection, out *Settled) error {
	if err := f.traced.Settle(ctx, t, inj, out); err != nil {
		return err
	}
	if f.tr.Killed != "" {
		inj.Fired = true
		inj.Detail = f.tr.Killed
		inj.Phase = f.tr.KilledPhase
		inj.At = f.tr.KilledAt.Sub(t.Phases.Start())
	}
	return nil
}

// SyscallCount is the plan of the traced clean run that calibrates
// kill-syscall: it injects nothing and counts the run's file-system calls
// per phase.
type SyscallCount struct {
	traced
	counts map[string]int64
}

func (*SyscallCount) Name() string     { return scenario.PlanNone }
func (*SyscallCount) Available() error { return ptraceAvailable() }

// Label names the run in trial ids.
func (*SyscallCount) Label() string { return countLabel }

// Calibrate gives kill-syscall the counts.
func (c *SyscallCount) Calibrate(cal *Calibration) { cal.Syscalls = c.counts }

// Launch starts the run under the tracer, which counts only.
func (c *SyscallCount) Launch(cmd *exec.Cmd, t *Target) (Process, error) {
	return c.launch(cmd, t, 0)
}

// Inject injects nothing.
func (*SyscallCount) Inject(ctx context.Context, t *Target) (Injection, error) {
	return Injection{Plan: scenario.PlanNone}, nil
}

// Settle waits for the tracer and keeps its counts.
func (c *SyscallCount) Settle(ctx context.Context, t *Target, inj *Injection, out *Settled) error {
	if err := c.traced.Settle(ctx, t, inj, out); err != nil {
		return err
	}
	c.counts = out.Syscalls
	return nil
}

var (
	_ Launcher   = &syscallKill{}
	_ Settler    = &syscallKill{}
	_ Calibrator = &SyscallCount{}
	_ Launcher   = &SyscallCount{}
	_ Calibrator = &DiskCount{}
)

// ChooseSyscall picks N for a syscall-kill trial from a traced clean run's
// counts: with FinishingShare probability a call of the finishing part
// (from the end of data to the exit), else one before it.
func ChooseSyscall(rng *rand.Rand, counts map[string]int64) (n int64, finishing bool) {
	total := counts[PhaseExited.String()]
	if total < 2 {
		return 1, false
	}
	fin := total
	for _, p := range finishingPhases {
		if c, ok := counts[p.String()]; ok {
			fin = c
			break
		}
	}
	if fin < total && rng.Float64() < FinishingShare {
		// Half of them among the last calls, where the manifest is
		// renamed and the status file rewritten.
		if rng.IntN(2) == 0 {
			return max(fin+1, total-rng.Int64N(64)), true
		}
		return fin + 1 + rng.Int64N(total-fin), true
	}
	return 1 + rng.Int64N(max(1, fin)), false
}
