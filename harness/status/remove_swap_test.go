//go:build linux

package status

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// between makes RemoveIfDead call f between its steps.
func between(f func(step string)) Option { return func(c *config) { c.between = f } }

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
// and the status file replaced. Whatever the step, what the symlink
// points to is never touched, nor anything else outside the backup: the
// removal refuses, stops, or removes only the link.
func TestRemoveSwapped(t *testing.T) {
	steps := []string{"judged", "renamed", "checked", "emptying b1", "emptying b1_wal", "emptying ts1", "removing b1", "removing b1_wal"}
	type swap struct {
		name string
		do   func(t *testing.T, l backupLayout, victim string)
	}
	swaps := []swap{
		{"target", func(t *testing.T, l backupLayout, victim string) {
			cur := l.target
			if _, err := os.Lstat(cur); err != nil {
				cur = tombstone(l.target)
			}
			swapForSymlink(t, cur, victim)
		}},
		{"waldir", func(t *testing.T, l backupLayout, victim string) {
			cur := l.wal
			if _, err := os.Lstat(cur); err != nil {
				cur = tombstone(l.wal)
			}
			swapForSymlink(t, cur, victim)
		}},
		{"tablespace", func(t *testing.T, l backupLayout, victim string) { swapForSymlink(t, l.ts, victim) }},
		{"a directory inside the target", func(t *testing.T, l backupLayout, victim string) {
			dir := l.target
			if _, err := os.Lstat(dir); err != nil {
				dir = tombstone(l.target)
			}
			swapForSymlink(t, filepath.Join(dir, "base"), victim)
		}},
		{"the status file", func(t *testing.T, l backupLayout, victim string) {
			dir := l.target
			if _, err := os.Lstat(dir); err != nil {
				dir = tombstone(l.target)
			}
			s := l.status()
			s.PID = 4321
			writeFile(t, dir, FileName+".new", s.Encode())
			if err := os.Rename(filepath.Join(dir, FileName+".new"), filepath.Join(dir, FileName)); err != nil {
				t.Fatal(err)
			}
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
				rm := RemoveIfDead(t.Context(), l.target, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
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
				t.Logf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
			})
		}
	}
}

// TestRemoveStatusReplacedBeforeRecheck: a status file replaced after the
// judgement and before the check made after the rename refuses the
// removal, and the target is renamed back with everything in it.
func TestRemoveStatusReplacedBeforeRecheck(t *testing.T) {
	l := makeLayout(t)
	l.write(t, l.status())
	hook := func(at string) {
		if at == "renamed" {
			s := l.status()
			s.PID = 4321
			writeFile(t, tombstone(l.target), FileName, s.Encode())
		}
	}
	rm := RemoveIfDead(t.Context(), l.target, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
	if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "changed since it was judged") {
		t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	for _, p := range []string{filepath.Join(l.target, "base/1/1259"), filepath.Join(l.wal, "000000010000000000000001"), filepath.Join(l.ts, "PG_18_202506291/5/16385")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
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
	rm := RemoveIfDead(t.Context(), l.target, false, WithProcesses(realUsers{deadOnDB1()}))
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
