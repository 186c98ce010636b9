//go:build unix

package status

import (
	"os"
	"syscall"
)

// openFlags opens a status file without following a symlink in its last
// component and without blocking on a FIFO.
const openFlags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC

// signalZero reports whether a process with this pid exists, asking the
// kernel rather than /proc (which hidepid may hide): nil if it exists,
// errNoProcess if it does not, another error if that cannot be told.
func signalZero(pid int) error {
	if pid <= 0 {
		return errNoProcess
	}
	switch err := syscall.Kill(pid, 0); err {
	case nil, syscall.EPERM:
		return nil
	case syscall.ESRCH:
		return errNoProcess
	default:
		return err
	}
}
