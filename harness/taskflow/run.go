package taskflow

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/proc"
)

// backupRun is one pg_basebackup started by an attempt, in a process
// group of its own, waited for in the background.
type backupRun struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	// exit is the exit code (-1 for a signal) and ended the time
	// pg_basebackup exited, once done is closed.
	exit  int
	ended time.Time
	mu    sync.Mutex
	out   bytes.Buffer
}

// startRun starts args as acct with env. The run outlives the attempt
// that started it (a scheduler may leave it running); ctx, the flow's,
// kills its process group.
func startRun(ctx context.Context, acct osuser.Account, env []string, args []string) (*backupRun, error) {
	r := &backupRun{cmd: proc.Command(ctx, acct, env, args...), done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = lockedWriter{r}, lockedWriter{r}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	r.started = time.Now()
	go func() {
		err := r.cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
			r.exit = 0
		case errors.As(err, &exit):
			r.exit = exit.ExitCode()
		default:
			r.exit = -1
		}
		r.ended = time.Now()
		close(r.done)
	}()
	return r, nil
}

// lockedWriter appends to a run's output under its lock.
type lockedWriter struct{ r *backupRun }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.out.Write(p)
}

// output returns what the run printed so far.
func (r *backupRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// pid is the pid the run was started as, and its process group's id:
// pg_basebackup's, or under the wrapper pgbb-run's.
func (r *backupRun) pid() int { return r.cmd.Process.Pid }

// alive says whether any process of the run's group lives: pg_basebackup
// (and pgbb-run over it), or a WAL streaming child that outlived it.
func (r *backupRun) alive() bool { return len(proc.GroupMembers(r.pid())) > 0 }

// exited says whether the process started (pg_basebackup, or pgbb-run)
// has exited, and its code.
func (r *backupRun) exited() (bool, int) {
	select {
	case <-r.done:
		return true, r.exit
	default:
		return false, 0
	}
}

// stop does what policy p says to the run at an attempt's deadline.
func (r *backupRun) stop(p Policy) error {
	switch p {
	case TermPID:
		return syscall.Kill(r.pid(), syscall.SIGTERM)
	case TermGroup:
		return syscall.Kill(-r.pid(), syscall.SIGTERM)
	case Kill:
		return syscall.Kill(r.pid(), syscall.SIGKILL)
	}
	return nil
}

// waitExit waits up to d for pg_basebackup to exit.
func (r *backupRun) waitExit(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}
