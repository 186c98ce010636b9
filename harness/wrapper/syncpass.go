package wrapper

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncFS is what the sync pass does to the file system; tests replace it
// to make an open or an fsync fail.
type SyncFS interface {
	// Lstat describes path without following a symlink.
	Lstat(path string) (fs.FileInfo, error)
	// Stat describes path, following symlinks.
	Stat(path string) (fs.FileInfo, error)
	// ReadDir lists a directory.
	ReadDir(path string) ([]fs.DirEntry, error)
	// Sync opens path read-only (a file of mode 0400 too, and a
	// directory), fsyncs it and closes it.
	Sync(path string) error
}

// OSFS is the SyncFS of the operating system.
type OSFS struct{}

var _ SyncFS = OSFS{}

// Lstat is os.Lstat.
func (OSFS) Lstat(path string) (fs.FileInfo, error) { return os.Lstat(path) }

// Stat is os.Stat.
func (OSFS) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }

// ReadDir is os.ReadDir.
func (OSFS) ReadDir(path string) ([]fs.DirEntry, error) { return os.ReadDir(path) }

// Sync opens path read-only, fsyncs and closes it.
func (OSFS) Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncPass fsyncs everything under dirs, as pg_basebackup's final sync
// should have: every regular file and every directory (after its
// entries), following the symlinks pg_basebackup makes (pg_wal to the
// --waldir, pg_tblspc/OID to the tablespace directories) at the top of a
// directory it walks, and then the parent of each of dirs, which holds
// its entry. Unlike pg_basebackup's, any error fails the pass, and a
// failed fsync is never retried: after a write-back error a second fsync
// may succeed without the data (fsyncgate).
func SyncPass(fsys SyncFS, dirs []string) error {
	p := &syncPass{fs: fsys, seen: map[string]bool{}}
	for _, d := range dirs {
		if err := p.dir(d, true); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		if err := p.sync(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

type syncPass struct {
	fs   SyncFS
	seen map[string]bool
}

func (p *syncPass) sync(path string) error {
	if err := p.fs.Sync(path); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// dir syncs everything in dir, then dir. top says dir is a backup's
// directory, whose pg_wal and pg_tblspc links are followed.
func (p *syncPass) dir(dir string, top bool) error {
	if p.seen[dir] {
		return nil
	}
	p.seen[dir] = true
	entries, err := p.fs.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sync: read directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := p.entry(filepath.Join(dir, e.Name()), e, top); err != nil {
			return err
		}
	}
	return p.sync(dir)
}

// entry syncs one entry of a directory.
func (p *syncPass) entry(path string, e fs.DirEntry, top bool) error {
	switch t := e.Type(); {
	case t.IsDir():
		return p.dir(path, top && e.Name() == "pg_tblspc")
	case t.IsRegular():
		return p.sync(path)
	case t&fs.ModeSymlink != 0 && top && (e.Name() == "pg_wal" || filepath.Base(filepath.Dir(path)) == "pg_tblspc"):
		return p.link(path)
	}
	return nil // other links, and special files, as pg_basebackup
}

// link follows a pg_wal or pg_tblspc link and syncs what it leads to.
func (p *syncPass) link(path string) error {
	fi, err := p.fs.Stat(path)
	if err != nil {
		return fmt.Errorf("sync: %s: %w", path, err)
	}
	if !fi.IsDir() {
		return nil
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("sync: %s: %w", path, err)
	}
	return p.dir(target, false)
}
