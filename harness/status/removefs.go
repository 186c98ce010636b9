package status

import (
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

// openDirHandle opens the directory recorded as path (an absolute, clean
// path) under its current name in path's parent: its own, or that of its
// tombstone. A symlink as that last component, anything but a directory,
// or a parent or directory that changes while being opened is an error.
func openDirHandle(path, name string) (_ *dirHandle, err error) {
	h := &dirHandle{path: path, name: name}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if h.parent, h.parentDir, h.parentInfo, err = openParent(filepath.Dir(path)); err != nil {
		return nil, err
	}
	where := h.where()
	fi, err := h.parent.Lstat(h.name)
	switch {
	case err != nil:
		return nil, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%s is a symlink, where pg_basebackup made a directory", where)
	case !fi.IsDir():
		return nil, fmt.Errorf("%s is not a directory", where)
	}
	if h.dir, err = h.parent.OpenRoot(h.name); err != nil {
		return nil, err
	}
	if h.info, err = h.dir.Stat("."); err != nil {
		return nil, err
	}
	if !os.SameFile(fi, h.info) {
		return nil, fmt.Errorf("%s changed while it was being opened", where)
	}
	return h, nil
}

// openParent opens the directory dir twice, as an os.Root (to reach what
// is in it) and as an open directory (to rename in it), and checks that
// both are the same directory, which it returns the FileInfo of.
func openParent(dir string) (root *os.Root, f *os.File, fi fs.FileInfo, err error) {
	defer func() {
		if err != nil {
			if root != nil {
				root.Close()
			}
			if f != nil {
				f.Close()
			}
		}
	}()
	if root, err = os.OpenRoot(dir); err != nil {
		return nil, nil, nil, err
	}
	if f, err = os.Open(dir); err != nil {
		return nil, nil, nil, err
	}
	if fi, err = root.Stat("."); err != nil {
		return nil, nil, nil, err
	}
	if ffi, err := f.Stat(); err != nil || !os.SameFile(ffi, fi) {
		return nil, nil, nil, fmt.Errorf("%s changed while it was being opened", dir)
	}
	return root, f, fi, nil
}

// where is the directory's current path: the recorded one, or its
// tombstone's.
func (h *dirHandle) where() string { return filepath.Join(filepath.Dir(h.path), h.name) }

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
// directory.
func (h *dirHandle) empty() error {
	names, err := h.names()
	if err != nil {
		return fmt.Errorf("empty %s: %w", h.path, err)
	}
	for _, n := range names {
		if err := h.dir.RemoveAll(n); err != nil {
			return fmt.Errorf("empty %s: %w", h.path, err)
		}
	}
	return nil
}

// removeEmptied removes the (emptied) directory from its parent, if its
// name there still leads to the directory judged.
func (h *dirHandle) removeEmptied() error {
	where := h.where()
	fi, err := h.parent.Lstat(h.name)
	if err != nil || !os.SameFile(fi, h.info) {
		return fmt.Errorf("remove %s: it was swapped for something else; left alone", where)
	}
	if err := h.parent.Remove(h.name); err != nil {
		return fmt.Errorf("remove %s: %w", where, err)
	}
	return nil
}
