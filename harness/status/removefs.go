package status

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxDepth is how deep a tree RemoveIfDead walks.
const maxDepth = 32

// A dirHandle is a recorded directory opened once, without following a
// symlink in its last component: its parent (as an os.Root and as an open
// directory, checked to be the same), and the directory itself as an
// os.Root. Everything RemoveIfDead reads, renames or removes after the
// judgement goes through these handles, never through the path again, so a
// path swapped for a symlink afterwards leads nowhere: os.Root never
// leaves the directory it was opened on, and a rename is checked against
// the identity judged.
type dirHandle struct {
	// path is the directory as recorded; name its current name in parent
	// (the tombstone's, once renamed).
	path, name string
	parent     *os.Root
	parentDir  *os.File
	dir        *os.Root
	// info and parentInfo are what was judged.
	info, parentInfo fs.FileInfo
}

// openDirHandle opens the directory at path (an absolute, clean path). A
// symlink as its last component, anything but a directory, or a parent
// or directory that changes while being opened is an error.
func openDirHandle(path string) (_ *dirHandle, err error) {
	h := &dirHandle{path: path, name: filepath.Base(path)}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	parent := filepath.Dir(path)
	if h.parent, err = os.OpenRoot(parent); err != nil {
		return nil, err
	}
	if h.parentDir, err = os.Open(parent); err != nil {
		return nil, err
	}
	if h.parentInfo, err = h.parent.Stat("."); err != nil {
		return nil, err
	}
	if fi, err := h.parentDir.Stat(); err != nil || !os.SameFile(fi, h.parentInfo) {
		return nil, fmt.Errorf("%s changed while it was being opened", parent)
	}
	fi, err := h.parent.Lstat(h.name)
	switch {
	case err != nil:
		return nil, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%s is a symlink, where pg_basebackup made a directory", path)
	case !fi.IsDir():
		return nil, fmt.Errorf("%s is not a directory", path)
	}
	if h.dir, err = h.parent.OpenRoot(h.name); err != nil {
		return nil, err
	}
	if h.info, err = h.dir.Stat("."); err != nil {
		return nil, err
	}
	if !os.SameFile(fi, h.info) {
		return nil, fmt.Errorf("%s changed while it was being opened", path)
	}
	return h, nil
}

// Close closes the handles.
func (h *dirHandle) Close() {
	if h.dir != nil {
		h.dir.Close()
	}
	if h.parent != nil {
		h.parent.Close()
	}
	if h.parentDir != nil {
		h.parentDir.Close()
	}
}

// names lists the directory's entries.
func (h *dirHandle) names() ([]string, error) {
	f, err := h.dir.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// readStatus reads the status file inside the directory, which must be a
// regular file (no symlink at all), at most MaxSize bytes; it returns its
// contents and what was read.
func (h *dirHandle) readStatus() ([]byte, fs.FileInfo, error) {
	path := filepath.Join(h.path, FileName)
	fi, err := h.dir.Lstat(FileName)
	if err := checkStatusLstat(path, fi, err); err != nil {
		return nil, nil, err
	}
	f, err := h.dir.OpenFile(FileName, openFlags, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("status file cannot be read: %v", err)
	}
	defer f.Close()
	data, ofi, err := readOpened(f, path)
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("status file cannot be read: %v", err)
	case !os.SameFile(fi, ofi):
		return nil, nil, fmt.Errorf("status file %s was replaced while being opened", path)
	}
	return data, fi, nil
}

// checkStatusLstat turns what Lstat said of the status file at path into
// the reason it cannot prove anything, or nil for a regular file.
func checkStatusLstat(path string, fi fs.FileInfo, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no status file %s: nothing proves the run is over (a stock pg_basebackup, --no-status-file, or a run that has not written it yet)", path)
	case err != nil:
		return fmt.Errorf("cannot examine the status file: %v", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("status file %s is not a regular file (mode %s)", path, fi.Mode())
	}
	return nil
}

// checkContents walks the directory through its handle and refuses
// anything that the status file's owner uid could not have put there and
// removed: an entry of another owner, a mount point (another file system),
// or a kind pg_basebackup never makes (a FIFO, a socket, a device).
// Symlinks are judged as links, never followed.
//
// It also collects into ids the identity of the directory and of every
// entry, for the check of the processes that use them, and refuses a tree
// deeper than maxDepth (pg_basebackup's are a few levels deep; a deeper
// one would only make the walk slow).
func (h *dirHandle) checkContents(uid uint32, ids map[FileID]bool) error {
	dev := devOf(h.info)
	if id, ok := fileID(h.info); ok {
		ids[id] = true
	}
	return fs.WalkDir(h.dir.FS(), ".", func(rel string, _ fs.DirEntry, err error) error {
		path := filepath.Join(h.path, rel)
		if err != nil {
			return fmt.Errorf("examine %s: %v", path, err)
		}
		if rel == "." {
			return nil
		}
		if strings.Count(rel, "/") >= maxDepth {
			return fmt.Errorf("%s is more than %d levels deep: pg_basebackup makes no such tree", path, maxDepth)
		}
		fi, err := h.dir.Lstat(rel)
		if err != nil {
			return fmt.Errorf("examine %s: %v", path, err)
		}
		if id, ok := fileID(fi); ok {
			ids[id] = true
		}
		if err := ownedBy(path, fi, uid); err != nil {
			return err
		}
		if kind := oddKind(fi.Mode()); kind != "" {
			return fmt.Errorf("%s is %s: pg_basebackup makes only files, directories and symlinks", path, kind)
		}
		if fi.IsDir() && devOf(fi) != dev {
			return fmt.Errorf("%s is a mount point (another file system): nothing on it is removed", path)
		}
		return nil
	})
}

// oddKind names a file type that pg_basebackup never makes, or returns "".
func oddKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeIrregular != 0:
		return "an irregular file"
	}
	return ""
}

// renameTo renames the directory within its parent to name, never
// replacing anything, and checks that what now has that name is the
// directory judged; if it is not (the path was swapped after the
// judgement), it is renamed back and an error returned.
func (h *dirHandle) renameTo(name string) error {
	if err := renameAtNoReplace(h.parentDir, h.name, name); err != nil {
		return err
	}
	fi, err := h.parent.Lstat(name)
	if err == nil && os.SameFile(fi, h.info) {
		h.name = name
		return nil
	}
	if rerr := renameAtNoReplace(h.parentDir, name, h.name); rerr != nil {
		return fmt.Errorf("%s was swapped for something else after it was judged, and renaming that back failed: %v", h.path, rerr)
	}
	return fmt.Errorf("%s was swapped for something else after it was judged; renamed back", h.path)
}

// empty removes everything in the directory through its handle (os.Root:
// no symlink is followed, nothing outside is reached) and keeps the
// directory; with statusLast, the status file goes last, so that the
// directory is not empty (and a retry refuses it) until everything else
// is gone.
func (h *dirHandle) empty(statusLast bool) error {
	names, err := h.names()
	if err != nil {
		return fmt.Errorf("empty %s: %w", h.path, err)
	}
	for _, n := range names {
		if statusLast && n == FileName {
			continue
		}
		if err := h.dir.RemoveAll(n); err != nil {
			return fmt.Errorf("empty %s: %w", h.path, err)
		}
	}
	if statusLast {
		if err := h.dir.Remove(FileName); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("empty %s: %w", h.path, err)
		}
	}
	return nil
}

// removeEmptied removes the (emptied) directory from its parent, if its
// name there still leads to the directory judged.
func (h *dirHandle) removeEmptied() error {
	where := filepath.Join(filepath.Dir(h.path), h.name)
	fi, err := h.parent.Lstat(h.name)
	if err != nil || !os.SameFile(fi, h.info) {
		return fmt.Errorf("remove %s: it was swapped for something else; left alone", where)
	}
	if err := h.parent.Remove(h.name); err != nil {
		return fmt.Errorf("remove %s: %w", where, err)
	}
	return nil
}
