//go:build linux

package status

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// renameAtNoReplace renames from to to, both names in the open directory
// dir, failing if to exists (even an empty directory, which rename(2)
// would silently replace).
func renameAtNoReplace(dir *os.File, from, to string) error {
	fd := int(dir.Fd())
	if err := unix.Renameat2(fd, from, fd, to, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("rename %s to %s in %s: %w", from, to, dir.Name(), err)
	}
	return nil
}
