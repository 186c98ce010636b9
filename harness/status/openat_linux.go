//go:build linux

package status

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// openStatus opens the status file at path for reading through a handle
// on its directory, never following a symlink there: the directory is
// opened once (O_PATH, following the path as the kernel resolves it), and
// the file in it with openat2 (RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS) where
// the kernel has it (Linux 5.6), else openat with O_NOFOLLOW; without
// blocking on a FIFO. A symlink is refused (ErrSymlink); the caller checks
// what was opened (readOpened: a regular file).
func openStatus(path string) (*os.File, error) {
	dir, name, err := splitStatusPath(path)
	if err != nil {
		return nil, err
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the directory of the status file: %w", &fs.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(dfd)
	fd, err := openBeneath(dfd, name)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, symlinkError(path)
	case err != nil:
		return nil, fmt.Errorf("open status file: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openat2 is unix.Openat2 (tests take it away).
var openat2 = unix.Openat2

// openBeneath opens name, one component, in the directory dfd for reading
// without following a symlink, and returns the descriptor.
func openBeneath(dfd int, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	how := &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
	for range 8 {
		fd, err := openat2(dfd, name, how)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue // interrupted, or a rename raced the check of RESOLVE_BENEATH
		case err == unix.ENOSYS || err == unix.EPERM || err == unix.E2BIG:
			// No openat2 (before Linux 5.6, or a seccomp filter
			// that does not know it): one component, O_NOFOLLOW.
			return unix.Openat(dfd, name, flags, 0)
		}
		return fd, err
	}
	return -1, fmt.Errorf("openat2 %s: %w", name, unix.EAGAIN)
}
