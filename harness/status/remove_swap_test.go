//go:build linux

package status

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// victimTree is a directory outside the backup that must survive whatever
// is swapped in front of it.
func victimTree(t *testing.T, root string) string {
	t.Helper()
	victim := filepath.Join(root, "victim")
	writeFile(t, victim, "PG_18_202506291/5/16385", []byte("not the backup's"))
	writeFile(t, victim, "000000010000000000000009", []byte("not the backup's WAL"))
	return victim
}

// swapForSymlink moves path aside (to path.moved) and puts a symlink to
// to in its place; a path already removed is left alone.
func swapForSymlink(t *testing.T, path, to string) {
	t.Helper()
	if _, err := os.Lstat(path); os.IsNotExist(err) {
		t.Logf("%s is already gone: nothing to swap", path)
		return
	}
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(to, path); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveSwapped: a recorded directory, or a directory inside one,
// swapped for a symlink to another directory at each step of a removal;
// the status file replaced by one naming another directory, or by a
// symlink to another run's; its directory swapped for a symlink to
// another. Whatever the step, what the symlink points to is never
// touched, nor anything else outside the backup: the removal refuses,
// stops, or removes only the link.
func TestRemoveSwapped(t *testing.T) {
	steps := []string{"judged", "renamed", "checked", "emptying b1", "emptying b1_wal", "emptying ts1", "removing b1", "removing b1_wal",
		"removing status/b1.status", "renaming status/b1.status"}
	type swap struct {
		name string
		do   func(t *testing.T, l backupLayout, victim string)
	}
	current := func(l backupLayout, path string) string {
		if _, err := os.Lstat(path); err != nil {
			return l.tombstone(path, l.status())
		}
		return path
	}
	swaps := []swap{
		{"target", func(t *testing.T, l backupLayout, victim string) { swapForSymlink(t, current(l, l.target), victim) }},
		{"waldir", func(t *testing.T, l backupLayout, victim string) { swapForSymlink(t, current(l, l.wal), victim) }},
		{"tablespace", func(t *testing.T, l backupLayout, victim string) { swapForSymlink(t, l.ts, victim) }},
		{"a directory inside the target", func(t *testing.T, l backupLayout, victim string) {
			swapForSymlink(t, filepath.Join(current(l, l.target), "base"), victim)
		}},
		{"the status file", func(t *testing.T, l backupLayout, victim string) {
			s := l.status()
			s.PID = 4321
			s.Directories[2].Path = victim
			l.write(t, s)
		}},
		{"the status file for a symlink", func(t *testing.T, l backupLayout, victim string) {
			s := l.status()
			s.Directories[2].Path = victim
			other := writeFile(t, l.root, "other.status", s.Encode())
			swapForSymlink(t, l.file, other)
		}},
		{"the status file's directory", func(t *testing.T, l backupLayout, victim string) {
			s := l.status()
			s.Directories[2].Path = victim
			writeFile(t, l.root, "elsewhere/b1.status", s.Encode())
			swapForSymlink(t, filepath.Dir(l.file), filepath.Join(l.root, "elsewhere"))
		}},
	}
	for _, sw := range swaps {
		for _, step := range steps {
			t.Run(sw.name+" at "+step, func(t *testing.T) {
				l := makeLayout(t)
				victim := victimTree(t, l.root)
				l.write(t, l.status())
				keep := map[string][]string{victim: tree(t, victim), l.sibling: tree(t, l.sibling)}
				swapped := false
				want := step
				if verb, name, ok := strings.Cut(step, " "); ok {
					want = verb + " " + filepath.Join(l.root, name)
				}
				hook := func(at string) {
					if at == want && !swapped {
						swapped = true
						sw.do(t, l, victim)
					}
				}
				rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
				if !swapped {
					t.Logf("step %q not reached (exit %d refused %q error %q)", step, rm.ExitCode, rm.Refused, rm.Error)
				}
				for dir, want := range keep {
					if diff := cmp.Diff(want, tree(t, dir)); diff != "" {
						t.Fatalf("exit %d refused %q error %q: %s changed (-before +after):\n%s", rm.ExitCode, rm.Refused, rm.Error, dir, diff)
					}
				}
				if data, err := os.ReadFile(l.outside); err != nil || string(data) != "keep me" {
					t.Fatalf("%s: %q %v", l.outside, data, err)
				}
				other := filepath.Join(l.root, "status", "b2.status")
				if _, err := os.Lstat(filepath.Join(l.root, "status.moved")); err == nil {
					other = filepath.Join(l.root, "status.moved", "b2.status")
				}
				if data, err := os.ReadFile(other); err != nil || !bytes.Equal(data, completedStatus().Encode()) {
					t.Fatalf("the other run's status file: %q %v", data, err)
				}
				t.Logf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
			})
		}
	}
}

// TestRemoveStatusReplacedBeforeRecheck: a status file replaced after the
// judgement and before the check made after the renames refuses the
// removal, every directory is renamed back with everything in it, and
// the new status file stays.
func TestRemoveStatusReplacedBeforeRecheck(t *testing.T) {
	l := makeLayout(t)
	l.write(t, l.status())
	s := l.status()
	s.PID = 4321
	hook := func(at string) {
		if at == "renamed" {
			l.write(t, s)
		}
	}
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
	if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "changed since it was judged") || !strings.Contains(rm.Refused, "every directory renamed back") {
		t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	for _, p := range []string{filepath.Join(l.target, "base/1/1259"), filepath.Join(l.wal, "000000010000000000000001"), filepath.Join(l.ts, "PG_18_202506291/5/16385")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if data, err := os.ReadFile(l.file); err != nil || !bytes.Equal(data, s.Encode()) {
		t.Errorf("the new status file: %q %v", data, err)
	}
}

// TestRemoveStatusRewrittenByNewRun: a new run that reuses the status file
// and rewrites it (a new file renamed into place, as pg_basebackup does)
// at any step of a removal never loses it: before the check made after
// the renames, the removal is refused; after it, the dead run's
// directories are removed and the new file kept; in the instant between
// the last check of the status file and its rename, it is renamed back.
// The same holds for a temporary file the new run writes under the name
// both runs' writers use: the legacy FILE.tmp, shared by every pid (a
// writer that names it FILE.PID.tmp shares it only with a reused pid, as
// in TestRemoveTempFileReusedInPlace).
func TestRemoveStatusRewrittenByNewRun(t *testing.T) {
	for _, step := range []string{"judged", "renamed", "checked", "emptying b1", "emptying ts1", "removing b1", "removing b1_wal",
		"removing status/b1.status.tmp", "renaming status/b1.status.tmp", "removing status/b1.status", "renaming status/b1.status"} {
		t.Run(step, func(t *testing.T) {
			l := makeLayout(t)
			l.write(t, l.status())
			writeFile(t, filepath.Dir(l.file), "b1.status.tmp", []byte("the dead run's"))
			verb, name, _ := strings.Cut(step, " ")
			want := verb + " " + filepath.Join(l.root, name)
			if name == "" {
				want = step
			}
			next := l.status()
			next.PID, next.StartTime = 4321, next.StartTime.Add(time.Hour)
			rewritten := false
			hook := func(at string) {
				if at != want || rewritten {
					return
				}
				rewritten = true
				l.write(t, next)
				writeFile(t, filepath.Dir(l.file), "b1.status.tmp", []byte("the new run's"))
			}
			rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
			if !rewritten {
				t.Fatalf("step %q not reached: exit %d refused %q error %q", step, rm.ExitCode, rm.Refused, rm.Error)
			}
			if data, err := os.ReadFile(l.file); err != nil || !bytes.Equal(data, next.Encode()) {
				t.Fatalf("exit %d refused %q error %q: the new run's status file was lost: %q %v", rm.ExitCode, rm.Refused, rm.Error, data, err)
			}
			if data, err := os.ReadFile(LegacyTempPath(l.file)); err != nil || string(data) != "the new run's" {
				t.Fatalf("exit %d refused %q error %q: the new run's temporary file was lost: %q %v", rm.ExitCode, rm.Refused, rm.Error, data, err)
			}
			entries, _ := os.ReadDir(filepath.Dir(l.file))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if want := []string{"b1.status", "b1.status.tmp", "b2.status"}; !slices.Equal(names, want) {
				t.Errorf("status directory holds %q, want %q", names, want)
			}
			switch step {
			case "judged", "renamed":
				if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "changed since it was judged") {
					t.Errorf("exit %d refused %q error %q, want refused", rm.ExitCode, rm.Refused, rm.Error)
				}
				if _, err := os.Stat(filepath.Join(l.target, "base/1/1259")); err != nil {
					t.Errorf("target: %v", err)
				}
			default:
				if rm.ExitCode != ExitRemoved {
					t.Fatalf("exit %d refused %q error %q, want removed", rm.ExitCode, rm.Refused, rm.Error)
				}
				if _, err := os.Lstat(l.target); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("target: %v", err)
				}
				kept := rm.Steps[len(rm.Steps)-2:]
				if strings.HasSuffix(step, "b1.status") {
					kept = kept[1:] // the dead run's temporary file went first
					if st := rm.Steps[len(rm.Steps)-2]; st.File != StepTempFile || st.Kept != "" || !st.Done {
						t.Errorf("step %+v, want the dead run's temporary file removed", st)
					}
				}
				for _, st := range kept {
					if !strings.Contains(st.Kept, "a new run rewrote it") || !strings.HasPrefix(st.String(), "keep the ") {
						t.Errorf("step %+v (%s), want it kept", st, st)
					}
					// Rewritten between the check and the rename: renamed back.
					wantBack := verb == "renaming" && (st.File == StepTempFile) == strings.HasSuffix(step, ".tmp")
					if back := strings.Contains(st.Kept, "renamed back"); back != wantBack {
						t.Errorf("step %+v: renamed back %v at %s", st, back, step)
					}
				}
			}
		})
	}
}

// TestRemoveManyFiles: a target of 100,000 files is removed, and the time
// it takes is logged.
func TestRemoveManyFiles(t *testing.T) {
	l := makeLayout(t)
	l.write(t, l.status())
	for d := range 100 {
		dir := filepath.Join(l.target, "base", fmt.Sprint(16384+d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 1000 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(f)), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}))
	if rm.ExitCode != ExitRemoved {
		t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	t.Logf("100,000 files judged and removed in %s", time.Since(start).Round(time.Millisecond))
	if _, err := os.Lstat(l.target); err == nil {
		t.Fatalf("%s still there", l.target)
	}
	if data, err := os.ReadFile(l.outside); err != nil || string(data) != "keep me" {
		t.Fatalf("%s: %q %v", l.outside, data, err)
	}
}

// TestRemoveTempFileReusedInPlace: a new run that truncates the temporary
// file the dead run left and writes its own first version into it (the
// same inode: the new run has the dead run's pid again) keeps it: the
// removal removes only the bytes it judged.
func TestRemoveTempFileReusedInPlace(t *testing.T) {
	l := makeLayout(t)
	l.write(t, l.status())
	tmp := writeFile(t, filepath.Dir(l.file), "b1.status.1234.tmp", []byte("the dead run's"))
	hook := func(at string) {
		if at == "removing "+tmp {
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("the new run's")
			f.Close()
		}
	}
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
	if rm.ExitCode != ExitRemoved {
		t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	if data, err := os.ReadFile(tmp); err != nil || string(data) != "the new run's" {
		t.Fatalf("the new run's temporary file: %q %v", data, err)
	}
	if st := rm.Steps[len(rm.Steps)-2]; st.File != StepTempFile || st.Kept == "" {
		t.Errorf("step %+v, want the temporary file kept", st)
	}
	if _, err := os.Lstat(l.file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dead run's status file: %v", err)
	}
}

// TestRemoveFileGoneAtItsTurn: a temporary file removed by someone else
// after the judgement is "already gone", not a failure.
func TestRemoveFileGoneAtItsTurn(t *testing.T) {
	l := makeLayout(t)
	l.write(t, l.status())
	tmp := writeFile(t, filepath.Dir(l.file), "b1.status.1234.tmp", []byte("the dead run's"))
	hook := func(at string) {
		if at == "removing "+tmp {
			if err := os.Remove(tmp); err != nil {
				t.Fatal(err)
			}
		}
	}
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
	st := rm.Steps[len(rm.Steps)-2]
	if rm.ExitCode != ExitRemoved || !st.Missing || st.Kept != "" || st.String() != "nothing to do for the temporary file "+tmp+" (already gone)" {
		t.Fatalf("exit %d refused %q error %q, step %+v (%s)", rm.ExitCode, rm.Refused, rm.Error, st, st)
	}
}
