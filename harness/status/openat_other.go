//go:build !linux

package status

import (
	"fmt"
	"io/fs"
	"os"
)

// openStatus opens the status file at path for reading, refusing a
// symlink (ErrSymlink): with O_NOFOLLOW where the system has it, and
// checking that what was opened is what Lstat saw.
func openStatus(path string) (*os.File, error) {
	if _, _, err := splitStatusPath(path); err != nil {
		return nil, err
	}
	lfi, err := os.Lstat(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("open status file: %w", err)
	case lfi.Mode()&fs.ModeSymlink != 0:
		return nil, symlinkError(path)
	}
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("open status file: %w", err)
	}
	if ofi, err := f.Stat(); err != nil || !os.SameFile(lfi, ofi) {
		f.Close()
		return nil, fmt.Errorf("%s was replaced while being opened", path)
	}
	return f, nil
}
