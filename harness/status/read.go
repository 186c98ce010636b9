package status

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrTooLarge is returned (wrapped) for a status file over MaxSize bytes.
var ErrTooLarge = errors.New("status file too large")

// ErrNotRegular is returned (wrapped) when the status file is not a regular
// file (a directory, a FIFO, a device).
var ErrNotRegular = errors.New("status file is not a regular file")

// ErrSymlinkOutside is returned (wrapped) when the status file is a symlink
// that leads out of the directory it is in, or nowhere.
var ErrSymlinkOutside = errors.New("status file is a symlink leading out of its directory")

// ReadDir reads and parses the status file FileName in the directory dir;
// see ReadFile. A directory without one gives an error satisfying
// errors.Is(err, fs.ErrNotExist).
//
// Deprecated: pg_basebackup writes no status file into the backup
// directory any more, only where --status-file=FILE says (outside every
// directory the backup writes); read that file with ReadFile.
func ReadDir(dir string) (*Status, error) {
	return ReadFile(filepath.Join(dir, FileName))
}

// ReadFile reads and parses the status file at path (the --status-file
// that pg_basebackup was given). It refuses a file over MaxSize
// bytes, anything but a regular file, and a symlink whose target is not
// inside the symlink's own directory (nor a dangling one). A parse error is a
// *ParseError with Path set; a missing file gives an error satisfying
// errors.Is(err, fs.ErrNotExist).
func ReadFile(path string) (*Status, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Path = path
		}
		return nil, err
	}
	return s, nil
}

// readLimited reads at most MaxSize bytes of the regular file at path,
// following a symlink only if it stays in its directory.
func readLimited(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	open := path
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			link, _ := os.Readlink(path)
			return nil, fmt.Errorf("%s: %w: it points to %q, which cannot be resolved: %v", path, ErrSymlinkOutside, link, err)
		}
		dir, err := filepath.EvalSymlinks(filepath.Dir(path))
		if err != nil {
			return nil, fmt.Errorf("%s: resolve directory: %w", path, err)
		}
		if !within(dir, target) {
			return nil, fmt.Errorf("%s: %w: it resolves to %s, outside %s", path, ErrSymlinkOutside, target, dir)
		}
		open = target
	}
	// No following symlinks now (the target was resolved, and a file
	// swapped for a symlink since is refused), and no blocking on a FIFO.
	f, err := os.OpenFile(open, openFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("open status file: %w", err)
	}
	defer f.Close()
	data, _, err := readOpened(f, open)
	return data, err
}

// readOpened reads the open status file f (at path, for messages): a
// regular file of at most MaxSize bytes, also while it is read. It returns
// the contents and what f is.
func readOpened(f *os.File, path string) ([]byte, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("stat status file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: %w (mode %s)", path, ErrNotRegular, fi.Mode())
	}
	if fi.Size() > MaxSize {
		return nil, nil, fmt.Errorf("%s: %w: %d bytes, the limit is %d", path, ErrTooLarge, fi.Size(), MaxSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read status file: %w", err)
	}
	if len(data) > MaxSize {
		return nil, nil, fmt.Errorf("%s: %w: it grew past %d bytes while being read", path, ErrTooLarge, MaxSize)
	}
	return data, fi, nil
}

// within says whether path is dir or below it; both are resolved paths.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil || filepath.IsAbs(rel) {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
