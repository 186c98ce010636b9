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

// ErrSymlink is returned (wrapped) when the status file is a symlink: a
// reader opens the file named, never what a link leads to (pg_basebackup
// writes a regular file).
var ErrSymlink = errors.New("status file is a symlink")

// ErrSymlinkOutside was returned for a symlink leading out of the
// directory it is in, when a link that stayed in it was followed.
//
// Deprecated: every symlink is refused, with ErrSymlink, which
// ErrSymlinkOutside is.
var ErrSymlinkOutside = ErrSymlink

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
// that pg_basebackup was given). It opens the file through a handle on its
// directory without following a symlink (the directory may be reached
// through one), and refuses a symlink (ErrSymlink), anything but a
// regular file (ErrNotRegular) and a file over MaxSize bytes
// (ErrTooLarge). A parse error is a *ParseError with Path set, which
// shows what the file holds only to the file's owner, if that is not
// root (see ParseError.Withhold); a missing file gives an error
// satisfying errors.Is(err, fs.ErrNotExist).
func ReadFile(path string) (*Status, error) {
	s, _, err := readStatusFile(path)
	return s, err
}

// readStatusFile is ReadFile; it also returns what it opened (nil if
// nothing), whether or not it parses.
func readStatusFile(path string) (*Status, fs.FileInfo, error) {
	data, fi, err := readPath(path)
	if err != nil {
		return nil, fi, err
	}
	s, err := Parse(data)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Path = path
			withholdUnlessOwn(pe, fi)
		}
		return nil, fi, err
	}
	return s, fi, nil
}

// withholdUnlessOwn withholds what the file fi holds from the parse error
// pe unless the caller may see it (showsContent).
func withholdUnlessOwn(pe *ParseError, fi fs.FileInfo) {
	owner, err := ownerOf(fi)
	if err != nil || !showsContent(owner, uint32(os.Geteuid())) {
		pe.Withhold()
	}
}

// showsContent says whether a parse error may show the caller what a file
// of owner holds: only if it is the caller's own, and never to root. A
// path leads where its directories say when it is opened, and another
// user who can swap one of them for a link can lead root to any file of
// root's.
func showsContent(owner, caller uint32) bool { return caller != 0 && owner == caller }

// readLimited reads the status file at path as ReadFile does, without
// parsing it.
func readLimited(path string) ([]byte, error) {
	data, _, err := readPath(path)
	return data, err
}

// readPath opens the status file at path (openStatus: no symlink) and
// reads it (readOpened).
func readPath(path string) ([]byte, fs.FileInfo, error) {
	f, err := openStatus(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return readOpened(f, path)
}

// splitStatusPath splits path into its directory and its last component,
// which must name an entry: not empty (a path ending in a slash), "." or
// "..".
func splitStatusPath(path string) (dir, name string, err error) {
	dir, name = filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if name == "" || name == "." || name == ".." {
		return "", "", fmt.Errorf("%s: %w (it names a directory)", path, ErrNotRegular)
	}
	return dir, name, nil
}

// symlinkError is the error for a status file at path that is a symlink.
func symlinkError(path string) error {
	return fmt.Errorf("%s: %w: give the status file itself (the reader opens the file named, never what a link leads to)", path, ErrSymlink)
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
