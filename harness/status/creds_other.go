//go:build !linux

package status

import (
	"fmt"
	"os"
)

// asUser runs f if the caller is the user u; acting with another user's
// file-system credentials needs Linux's setfsuid.
func asUser(u owner, f func() error) error {
	if os.Geteuid() != int(u.uid) {
		return fmt.Errorf("cannot act as %s, the owner of the status file, on this system: run as that user", userName(u.uid))
	}
	return f()
}
