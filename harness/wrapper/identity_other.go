//go:build !linux

package wrapper

import "errors"

// Identity is what the status file records, on Linux, to say what its PID
// means; elsewhere it stays empty.
type Identity struct {
	BootID       string
	PIDNamespace string
	StartTicks   uint64
}

// SelfIdentity returns an empty Identity: there is no /proc to read.
func SelfIdentity() Identity { return Identity{} }

// SetProcessName is not supported here.
func SetProcessName(string) error {
	return errors.New("set process name: not supported on this system")
}
