//go:build linux

package status

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// FuzzRemoveIfDead: over generated trees and status files (forged
// DIRECTORY lines among them, symlinks and hard links leading out, entries
// of another owner when run as root, a status file put inside a recorded
// directory or given as a symlink, a temporary file of the owner or of
// another user), RemoveIfDead never changes anything outside the
// directories the status file records but the status file and its
// temporary file, nor anything of another owner than the status file's,
// and a refusal changes nothing at all. `go test` runs the seeds below; `go test -fuzz FuzzRemoveIfDead`
// explores more.
func FuzzRemoveIfDead(f *testing.F) {
	for seed := range uint64(64) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		checkRemoveProperty(t, seed)
	})
}

// propertyTree is one generated world: a temporary root holding a target,
// WAL- and tablespace-like directories, directories outside the backup,
// and a "system" directory of another owner.
type propertyTree struct {
	rng        *rand.Rand
	root       string
	asRoot     bool
	owner, uid int // the status file's owner; another user
}

func (p *propertyTree) chown(path string, other bool) {
	if !p.asRoot {
		return
	}
	uid := p.owner
	if other {
		uid = p.uid
	}
	os.Lchown(path, uid, uid)
}

// fill puts a few random entries into dir: files named as pg_basebackup
// names them or not, subdirectories, symlinks out of the tree and into it,
// hard links to files elsewhere.
func (p *propertyTree) fill(t *testing.T, dir string, names []string, depth int) {
	for i := range 1 + p.rng.IntN(4) {
		name := names[p.rng.IntN(len(names))]
		if p.rng.IntN(12) == 0 {
			name = fmt.Sprintf("odd%d", i)
		}
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); err == nil {
			continue
		}
		switch k := p.rng.IntN(10); {
		case k < 4:
			os.WriteFile(path, fmt.Appendf(nil, "data %d", p.rng.Int()), 0o600)
		case k < 6 && depth < 3:
			os.Mkdir(path, 0o700)
			p.fill(t, path, []string{"1", "2", "16385", "PG_VERSION"}, depth+1)
		case k < 8:
			to := []string{filepath.Join(p.root, "sys"), filepath.Join(p.root, "o1"), "../o1", filepath.Join(p.root, "sys", "secret")}
			os.Symlink(to[p.rng.IntN(len(to))], path)
		default:
			from := []string{filepath.Join(p.root, "o1", "keep"), filepath.Join(p.root, "sys", "secret")}
			os.Link(from[p.rng.IntN(len(from))], path)
		}
		p.chown(path, p.rng.IntN(40) == 0)
	}
}

// entries describes every entry under root, without following symlinks.
func (p *propertyTree) entries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(p.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%s uid=%d", fi.Mode(), st.Uid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			to, _ := os.Readlink(path)
			desc += " -> " + to
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(path)
			desc += fmt.Sprintf(" %q", data)
		}
		out[path] = desc
		return nil
	})
	return out
}

func checkRemoveProperty(t *testing.T, seed uint64) {
	p := &propertyTree{rng: rand.New(rand.NewPCG(seed, 42)), root: t.TempDir(), asRoot: os.Geteuid() == 0, owner: backupUID, uid: otherUID}
	if !p.asRoot {
		p.owner = os.Geteuid()
	}
	r := p.root
	reachable(t, r)
	writeFile(t, r, "sys/secret", []byte("another user's"))
	writeFile(t, r, "sys/PG_18_202506291/1/1", []byte("another user's table"))
	writeFile(t, r, "o1/keep", []byte("outside"))
	writeFile(t, r, "o2/PG_18_202506291/1/1", []byte("outside table"))
	os.Symlink(filepath.Join(r, "o2"), filepath.Join(r, "uplink"))
	dirs := map[string][]string{
		"b1":   {"base", "global", "PG_VERSION", "pg_wal", "pg_tblspc"},
		"w":    {"000000010000000000000001", "000000010000000000000002.partial", "archive_status"},
		"ts":   {"PG_18_202506291"},
		"o1":   {"notes", "PG_18_202506291"},
		"o2":   {"PG_18_202506291"},
		"sys2": {"PG_18_202506291"},
	}
	for _, name := range []string{"b1", "w", "ts", "o1", "o2", "sys2"} {
		os.MkdirAll(filepath.Join(r, name), 0o755)
		p.fill(t, filepath.Join(r, name), dirs[name], 0)
	}
	if p.asRoot {
		chownTree(t, r, p.owner)
		// Ownership again: the fill's choices, then the other user's.
		p.rng = rand.New(rand.NewPCG(seed, 7))
		filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
			if err == nil && path != r && p.rng.IntN(60) == 0 {
				os.Lchown(path, p.uid, p.uid)
			}
			return nil
		})
		chownTree(t, filepath.Join(r, "sys"), p.uid)
		chownTree(t, filepath.Join(r, "sys2"), p.uid)
		os.Chmod(filepath.Join(r, "sys"), 0o700)
	}

	s := withProgress(inProgressStatus(true))
	s.Directories = []Directory{{Path: filepath.Join(r, "b1"), Created: p.rng.IntN(2) == 0}}
	pool := []string{"w", "ts", "o1", "o2", "sys", "sys2", "o1/PG_18_202506291", "uplink/PG_18_202506291", "nowhere"}
	for _, i := range p.rng.Perm(len(pool))[:p.rng.IntN(4)] {
		s.Directories = append(s.Directories, Directory{Path: filepath.Join(r, pool[i]), Created: p.rng.IntN(2) == 0})
	}
	// The status file, outside the backup as pg_basebackup wants it, or
	// (forged) inside the target, or given as a symlink to it.
	file := filepath.Join(r, "st", "b1.status")
	switch p.rng.IntN(12) {
	case 0:
		file = filepath.Join(r, "b1", "b1.status")
	case 1:
		writeFile(t, r, "st/real.status", s.Encode())
		os.Symlink("real.status", file)
	}
	writeFile(t, filepath.Dir(file), filepath.Base(file), s.Encode())
	// The run's temporary file, under its name or the legacy one, and
	// another run's, which is never the removal's to touch.
	tmp := TempPath(file, s.PID)
	if p.rng.IntN(2) == 0 {
		tmp = LegacyTempPath(file)
	}
	writeFile(t, filepath.Dir(file), filepath.Base(TempPath(file, s.PID+1)), []byte("another run's"))
	switch p.rng.IntN(4) {
	case 0:
		writeFile(t, filepath.Dir(tmp), filepath.Base(tmp), []byte("BACKUP STATUS FORMAT: 1\n"))
	case 1:
		writeFile(t, filepath.Dir(tmp), filepath.Base(tmp), []byte("BACKUP STATUS FORMAT: 1\n"))
		p.chown(tmp, true)
	}
	if p.asRoot {
		os.Lchown(filepath.Dir(file), p.owner, p.owner)
		os.Lchown(file, p.owner, p.owner)
		if p.rng.IntN(10) == 0 {
			os.Lchown(file, p.uid, p.uid)
		}
	}
	statusOwner := uint32(p.owner)
	if fi, err := os.Stat(file); err == nil {
		statusOwner = fi.Sys().(*syscall.Stat_t).Uid
	}
	var allowed []string
	for _, d := range s.Directories {
		if real, err := filepath.EvalSymlinks(d.Path); err == nil {
			allowed = append(allowed, real)
		}
	}

	before := p.entries(t)
	rm := RemoveIfDead(t.Context(), file, false, WithProcesses(realUsers{deadOnDB1()}))
	after := p.entries(t)
	for path, desc := range before {
		if after[path] == desc {
			continue
		}
		inside := path == file || path == tmp
		for _, a := range allowed {
			inside = inside || within(a, path)
		}
		var uid uint32
		fmt.Sscanf(afterUID(desc), "%d", &uid)
		switch {
		case rm.ExitCode == ExitRefused:
			t.Errorf("seed %d: refused (%s), yet %s changed: %s -> %q", seed, rm.Refused, path, desc, after[path])
		case !inside:
			t.Errorf("seed %d: %s is outside the recorded directories %v, yet changed: %s -> %q (exit %d)", seed, path, allowed, desc, after[path], rm.ExitCode)
		case uid != statusOwner:
			t.Errorf("seed %d: %s of uid %d changed, the status file's owner is %d: %s -> %q (exit %d)", seed, path, uid, statusOwner, desc, after[path], rm.ExitCode)
		}
	}
	// Nothing is left behind under a name of the removal's own.
	for path := range after {
		if strings.Contains(filepath.Base(path), TombstoneSuffix) && rm.ExitCode != ExitRemoveFailed {
			t.Errorf("seed %d: %s left behind (exit %d %s%s)", seed, path, rm.ExitCode, rm.Refused, rm.Error)
		}
	}
	t.Logf("seed %d: %d directories recorded, exit %d %s%s", seed, len(s.Directories), rm.ExitCode, rm.Refused, rm.Error)
}

// afterUID returns what follows "uid=" in an entry's description.
func afterUID(desc string) string {
	for i := range len(desc) - 4 {
		if desc[i:i+4] == "uid=" {
			return desc[i+4:]
		}
	}
	return ""
}
