//go:build linux && amd64

package fault

import (
	"context"
	"testing"
	"time"
)

// TestSyscallKillReportsLateKill: the call the tracer kills at may be the
// WAL child's after pg_basebackup itself exited, so the tracer writes
// its kill after the run is seen to end. The plan's report must wait for
// the whole traced tree (Settle), not for the run's end.
func TestSyscallKillReportsLateKill(t *testing.T) {
	tr := &Traced{Done: make(chan struct{}), finished: make(chan struct{}), Counter: &SyscallCounter{}}
	f := &syscallKill{traced: traced{tr: tr}, killAt: 7}
	done := make(chan struct{})
	tgt := &Target{Phases: NewTracker(time.Now()), Done: done}
	close(tr.Done)
	close(done)
	inj, err := f.Inject(context.Background(), tgt)
	if err != nil {
		t.Fatal(err)
	}
	// The WAL child reaches call #7 now; then the tree is gone.
	tr.Killed, tr.KilledPhase, tr.KilledAt = "SIGKILL to the process group at file-system call #7 (pid 2: write)", "wal-wait", time.Now()
	close(tr.finished)
	var out Settled
	if err := f.Settle(context.Background(), tgt, &inj, &out); err != nil {
		t.Fatal(err)
	}
	if !inj.Fired || inj.Phase != "wal-wait" || inj.Detail != tr.Killed {
		t.Fatalf("a kill after the run's end is not reported: %+v", inj)
	}
}
