package status

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// A statusRef is the status file that RemoveIfDead judges, reached through
// a handle on its parent directory opened once (an os.Root, and an open
// directory to rename in): every read, rename and removal of the file, and
// of its temporary file, goes through that handle by name, never through
// the path again, and is checked against the identity judged.
type statusRef struct {
	// path is the status file as given, made absolute; name its current
	// name in dir: its own, or its tombstone's when an interrupted
	// removal left it renamed.
	path, name string
	dir        *os.Root
	dirFile    *os.File
	// dirInfo is the parent directory, info the file judged.
	dirInfo, info fs.FileInfo
}

// openStatusRef opens the parent of the status file at path, whose
// current name there is name and which was judged to be info.
func openStatusRef(path, name string, info fs.FileInfo) (*statusRef, error) {
	root, f, fi, err := openParent(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return &statusRef{path: path, name: name, dir: root, dirFile: f, dirInfo: fi, info: info}, nil
}

// Close closes the handles.
func (r *statusRef) Close() {
	r.dir.Close()
	r.dirFile.Close()
}

// where is the current path of what is called name in the status file's
// directory.
func (r *statusRef) where(name string) string { return filepath.Join(filepath.Dir(r.path), name) }

// tempNames are the names, in the status file's directory, of the
// temporary files of the run of pid that wrote the status file: its own,
// FILE.PID.tmp, and the one earlier writers used, FILE.tmp. A temporary
// file of another pid is another run's.
func (r *statusRef) tempNames(pid int) []string {
	var names []string
	if pid > 0 {
		names = append(names, filepath.Base(TempPath(r.path, pid)))
	}
	return append(names, filepath.Base(LegacyTempPath(r.path)))
}

// resumed says the status file was found under its tombstone's name.
func (r *statusRef) resumed() bool { return r.name != filepath.Base(r.path) }

// read reads the file called name in the status file's directory, which
// must be a regular file (no symlink at all) of at most MaxSize bytes, and
// returns its contents and what was read.
func (r *statusRef) read(name string) ([]byte, fs.FileInfo, error) {
	path := r.where(name)
	fi, err := r.dir.Lstat(name)
	if err := checkStatusLstat(path, fi, err); err != nil {
		return nil, nil, err
	}
	f, err := r.dir.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s cannot be read: %v", path, err)
	}
	defer f.Close()
	data, ofi, err := readOpened(f, path)
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("%s cannot be read: %v", path, err)
	case !os.SameFile(fi, ofi):
		return nil, nil, fmt.Errorf("%s was replaced while being opened", path)
	}
	return data, fi, nil
}

// checkStatusLstat turns what Lstat said of the status file at path into
// the reason it cannot prove anything, or nil for a regular file.
func checkStatusLstat(path string, fi fs.FileInfo, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no status file %s: nothing proves the run is over (pg_basebackup was not given this --status-file, or has not written it yet)", path)
	case err != nil:
		return fmt.Errorf("cannot examine the status file: %v", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("status file %s is a symlink: give the status file itself (pg_basebackup writes a regular file)", path)
	case fi.IsDir():
		return fmt.Errorf("%s %w", path, ErrIsDirectory)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("status file %s is not a regular file (mode %s)", path, fi.Mode())
	}
	return nil
}

// tombstonePattern matches the name of a status file's tombstone, and
// gives the checksum in it.
func tombstonePattern(name string) *regexp.Regexp {
	return regexp.MustCompile(`^\.` + regexp.QuoteMeta(name) + regexp.QuoteMeta(TombstoneSuffix) + `([0-9A-F]{8})$`)
}

// findStatus finds the status file at path (absolute): its name and
// Lstat. If there is none, but an interrupted removal left it renamed to
// its tombstone (the only one of that name), that is returned instead;
// otherwise Lstat's error.
func findStatus(path string) (string, fs.FileInfo, error) {
	name := filepath.Base(path)
	fi, err := os.Lstat(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return name, fi, err
	}
	entries, lerr := os.ReadDir(filepath.Dir(path))
	if lerr != nil {
		return name, nil, err
	}
	re := tombstonePattern(name)
	var found []string
	for _, e := range entries {
		if re.MatchString(e.Name()) {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 {
		return name, nil, err
	}
	tfi, terr := os.Lstat(filepath.Join(filepath.Dir(path), found[0]))
	if terr != nil {
		return name, nil, err
	}
	return found[0], tfi, nil
}

// tombstoneSum is the checksum in the name of a status file's tombstone.
func (r *statusRef) tombstoneSum() (uint32, bool) {
	m := tombstonePattern(filepath.Base(r.path)).FindStringSubmatch(r.name)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 16, 32)
	return uint32(n), err == nil
}

// fileStep is a file RemoveIfDead removes last: the temporary file or the
// status file, as judged.
type fileStep struct {
	// name is its current name in the status file's directory.
	name string
	// info and data are the file judged and its contents.
	info fs.FileInfo
	data []byte
	// resumed says name is its tombstone's: an interrupted removal
	// renamed it already.
	resumed bool
	// foreign says it is another user's temporary file: kept.
	foreign bool
}

// alreadyGone is what remove says of a file that was gone when its turn
// came.
const alreadyGone = "already gone"

// remove removes the file of st from the status file's directory, only if
// it is still the file judged and holds the bytes judged (a new run that
// reuses a temporary file left behind truncates it and writes it anew):
// it is renamed to its tombstone (never replacing anything), checked there
// and removed, so that a new run that rewrites the file meanwhile (by a
// rename, which gives a new inode) never loses it. It returns why the file
// was kept, if it was: alreadyGone, or no longer the file judged; a new
// run's file renamed to the tombstone in the instant before is renamed
// back.
//
// hook, if not nil, is called just before the rename (tests).
func (r *statusRef) remove(st fileStep, sum uint32, hook func(string)) (kept string, err error) {
	same := func(name string) (bool, error) {
		fi, err := r.dir.Lstat(name)
		if err != nil || !os.SameFile(fi, st.info) {
			return false, err
		}
		data, fi2, err := r.read(name)
		if err != nil {
			return false, err
		}
		return os.SameFile(fi2, st.info) && bytes.Equal(data, st.data), nil
	}
	ok, err := same(st.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return alreadyGone, nil
	case err != nil:
		return "", fmt.Errorf("examine %s: %w", r.where(st.name), err)
	case !ok:
		return "no longer the file judged (a new run rewrote it): kept", nil
	}
	tomb := st.name
	if !st.resumed {
		tomb = tombstoneName(st.name, sum)
		if hook != nil {
			hook("renaming " + r.where(st.name))
		}
		if err := renameAtNoReplace(r.dirFile, st.name, tomb); err != nil {
			return "", fmt.Errorf("rename %s out of the way: %w", r.where(st.name), err)
		}
		if ok, err := same(tomb); err != nil || !ok {
			// Rewritten in the instant between the check and the
			// rename: that is a new run's file; give it back.
			if rerr := renameAtNoReplace(r.dirFile, tomb, st.name); rerr != nil {
				if _, serr := r.dir.Lstat(st.name); serr == nil {
					return fmt.Sprintf("a new run rewrote it as it was being removed, and again: its newest version is in place, an older one left at %s", r.where(tomb)), nil
				}
				return "", fmt.Errorf("%s was rewritten by a new run while being removed, and renaming it back from %s failed: %v", r.where(st.name), r.where(tomb), rerr)
			}
			return "a new run rewrote it as it was being removed: renamed back, kept", nil
		}
	}
	if err := r.dir.Remove(tomb); err != nil {
		return "", fmt.Errorf("remove %s: %w", r.where(tomb), err)
	}
	return "", nil
}
