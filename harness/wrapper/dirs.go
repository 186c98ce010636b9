package wrapper

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pgbb/pgbb/harness/status"
)

// dirState is what the wrapper saw of one directory of the command line.
type dirState struct {
	path string
	// missing says it did not exist before pg_basebackup started: once
	// it does, the run created it.
	missing bool
	// recorded says it has a DIRECTORY line: an empty directory that
	// existed before the run, or one the run created.
	recorded bool
}

// lookDirs looks at each directory before pg_basebackup starts: a missing
// one is waited for (the run will create it), an empty one is recorded as
// existing, anything else (a file, a directory that is not empty, which
// pg_basebackup refuses, one that cannot be read) is never recorded: it
// is not the run's.
func lookDirs(paths []string) []*dirState {
	var out []*dirState
	for _, p := range paths {
		d := &dirState{path: p}
		switch fi, err := os.Lstat(p); {
		case errors.Is(err, os.ErrNotExist):
			d.missing = true
		case err == nil && fi.IsDir():
			d.recorded = isEmptyDir(p)
		}
		out = append(out, d)
	}
	return out
}

// isEmptyDir says whether dir can be read and has no entry.
func isEmptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return errors.Is(err, io.EOF)
}

// notice records the directories that were missing and exist now; it
// says whether any was.
func notice(dirs []*dirState) bool {
	changed := false
	for _, d := range dirs {
		if d.missing && !d.recorded {
			if fi, err := os.Lstat(d.path); err == nil && fi.IsDir() {
				d.recorded, changed = true, true
			}
		}
	}
	return changed
}

// directoryLines are the DIRECTORY lines of the recorded directories.
func directoryLines(dirs []*dirState) []status.Directory {
	var out []status.Directory
	for _, d := range dirs {
		switch {
		case !d.recorded:
		case Clean(d.path) != d.path:
			out = append(out, status.Directory{Unprintable: true})
		default:
			out = append(out, status.Directory{Path: d.path, Created: d.missing})
		}
	}
	return out
}

// recordedPaths are the recorded directories that exist.
func recordedPaths(dirs []*dirState) []string {
	var out []string
	for _, d := range dirs {
		if d.recorded {
			out = append(out, d.path)
		}
	}
	return out
}

// removeCreated removes what the run left in the recorded directories:
// one it created is removed, one that existed is emptied. os.RemoveAll
// removes a symlink inside as a link, never what it leads to.
func removeCreated(dirs []*dirState) error {
	var errs []error
	for _, d := range dirs {
		if !d.recorded {
			continue
		}
		if d.missing {
			errs = append(errs, os.RemoveAll(d.path))
			continue
		}
		entries, err := os.ReadDir(d.path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		errs = append(errs, err)
		for _, e := range entries {
			errs = append(errs, os.RemoveAll(filepath.Join(d.path, e.Name())))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove what the run wrote: %w", err)
	}
	return nil
}

// groupReadable says whether pg_basebackup gives the backup's files
// group read access, as it does when the source cluster allows group
// access (it takes the server's data_directory_mode): a regular file it
// wrote at the top of a recorded directory is group-readable or, before
// it wrote any, a directory it created is. false while neither can be
// told.
func groupReadable(dirs []*dirState) bool {
	for _, d := range dirs {
		if !d.recorded {
			continue
		}
		if m, ok := firstFileMode(d.path); ok {
			return m&0o040 != 0
		}
		if fi, err := os.Stat(d.path); err == nil && d.missing {
			return fi.Mode().Perm()&0o040 != 0
		}
	}
	return false
}

// firstFileMode returns the permissions of a regular file among the first
// entries of dir.
func firstFileMode(dir string) (fs.FileMode, bool) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	entries, _ := f.ReadDir(32)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			return fi.Mode().Perm(), true
		}
	}
	return 0, false
}
