//go:build !(linux && amd64)

package fault

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

var errNoPtrace = errors.New("fault plan kill-syscall needs linux/amd64 (ptrace)")

// SyscallCounter counts file-system calls (linux/amd64 only).
type SyscallCounter struct{}

// MarkPhase does nothing here.
func (c *SyscallCounter) MarkPhase(p Phase) {}

// Phases returns nothing here.
func (c *SyscallCounter) Phases() map[string]int64 { return nil }

// Traced is a process started under ptrace (linux/amd64 only).
type Traced struct {
	PID         int
	Done        chan struct{}
	Status      syscall.WaitStatus
	Counter     *SyscallCounter
	KillAt      int64
	Killed      string
	KilledPhase string
	KilledAt    time.Time
	Err         error
}

// Finished is never closed here.
func (t *Traced) Finished() <-chan struct{} { return nil }

// StartTraced fails here.
func StartTraced(cmd *exec.Cmd, killAt int64, phase func() Phase) (*Traced, error) {
	return nil, errNoPtrace
}

// ptraceAvailable says why the traced plans cannot run here.
func ptraceAvailable() error { return errNoPtrace }
