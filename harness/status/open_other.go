//go:build !unix

package status

import (
	"errors"
	"os"
)

// openFlags opens a status file read-only.
const openFlags = os.O_RDONLY

// signalZero cannot tell on this system.
func signalZero(pid int) error {
	return errors.New("cannot check processes on this system")
}
