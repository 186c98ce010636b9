//go:build linux

package status

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames from to to, failing if to exists (even an empty
// directory, which rename(2) would silently replace).
func renameNoReplace(from, to string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	return nil
}
