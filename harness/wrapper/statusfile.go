package wrapper

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/pgbb/pgbb/harness/status"
)

// Writer writes the versions of one status file as pg_basebackup does:
// each to FILE.PID.tmp (created or truncated: a temporary file a dead run
// left behind never stands in the way), synced, renamed over FILE, and
// the directory synced, so that after a crash FILE holds a whole previous
// or a whole new version, never a torn one.
type Writer struct {
	// Path is the status file.
	Path string
	// PID is the writer's pid, the PID line's, naming the temporary file.
	PID int
	// Sync says later versions are synced too; the first one always is.
	Sync bool
	// GroupRead makes the versions written from then on group-readable
	// (0640, else 0600), as pg_basebackup's own files are when the
	// source cluster allows group access (run.followMode).
	GroupRead bool
	// written counts the versions written.
	written int
}

// Write writes s as the next version of the file. It first checks that
// the bytes parse back (status.Parse), so that the file never says
// anything the reader would refuse. On error nothing was renamed into
// place and the temporary file is removed.
func (w *Writer) Write(s *status.Status) error {
	data := s.Encode()
	if _, err := status.Parse(data); err != nil {
		return fmt.Errorf("status file %s: the version to write does not parse: %w", w.Path, err)
	}
	sync := w.Sync || w.written == 0
	tmp := status.TempPath(w.Path, w.PID)
	mode := os.FileMode(0o600)
	if w.GroupRead {
		mode = 0o640
	}
	if err := writeFileSynced(tmp, data, mode, sync); err != nil {
		return errors.Join(err, removeIfThere(tmp))
	}
	if err := os.Rename(tmp, w.Path); err != nil {
		return errors.Join(fmt.Errorf("status file: %w", err), removeIfThere(tmp))
	}
	w.written++
	if sync {
		if err := syncDir(filepath.Dir(w.Path)); err != nil {
			return fmt.Errorf("status file %s: %w", w.Path, err)
		}
	}
	return nil
}

// Remove removes the status file (and this writer's temporary file), as
// pg_basebackup does when it cannot say completed: no earlier version
// may stand for the run.
func (w *Writer) Remove() error {
	return errors.Join(removeIfThere(w.Path), removeIfThere(status.TempPath(w.Path, w.PID)))
}

// writeFileSynced writes data to path, created or truncated, of mode
// (whatever the umask, and whatever mode a truncated leftover had), and
// syncs it if asked.
func writeFileSynced(path string, data []byte, mode os.FileMode, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("status file: %w", err)
	}
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("status file %s: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory, so that a rename or a new entry in it
// survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// maxValue is the longest value the wrapper writes for a line whose
// content it does not control (a label, an error message), in bytes.
const maxValue = 1023

// Clean makes a value safe for a status file line: bytes that are not
// UTF-8 and every character the reader refuses (C0 and C1 controls, DEL,
// the bidirectional controls, the line and paragraph separators) become
// '?', and the value is cut to maxValue bytes on a character boundary.
func Clean(v string) string {
	var b strings.Builder
	for _, r := range v {
		if r == utf8.RuneError || status.IsControl(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > maxValue {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
