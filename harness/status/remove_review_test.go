//go:build linux

package status

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRemoveUnreachableDirectory: an "existing" DIRECTORY that the backup
// user owns but cannot reach (an ancestor is root's, mode 0700: another
// container's volume, say) is never emptied by a removal run as root.
func TestRemoveUnreachableDirectory(t *testing.T) {
	l, _ := ownedLayout(t, otherUID)
	locked := filepath.Join(l.root, "locked")
	wal := filepath.Join(locked, "vol", "pg_wal")
	writeFile(t, wal, "000000010000000000000007", []byte("someone else's WAL"))
	chownTree(t, filepath.Join(locked, "vol"), backupUID)
	if err := os.Chmod(locked, 0o700); err != nil { // root's, 0700: uid 4243 cannot search it
		t.Fatal(err)
	}
	s := l.status()
	s.Directories[2].Path = wal
	l.write(t, s)
	chownTree(t, l.file, backupUID)
	refusedUnchanged(t, l.file, l.root, "cannot reach")
}

// TestRemoveMovedInAfterJudgement: a directory of another user moved into
// the target after the judgement is not removed: the removal acts with the
// backup user's credentials, who cannot.
func TestRemoveMovedInAfterJudgement(t *testing.T) {
	l, victim := ownedLayout(t, otherUID)
	l.write(t, l.status())
	chownTree(t, l.file, backupUID)
	before := treeWithOwners(t, victim)
	moved := filepath.Join(l.tombstone(l.target, l.status()), "victim")
	hook := func(at string) {
		if at == "checked" {
			if err := os.Rename(victim, moved); err != nil {
				t.Fatal(err)
			}
		}
	}
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
	if rm.ExitCode != ExitRemoveFailed {
		t.Errorf("exit %d refused %q error %q, want a removal that failed part way", rm.ExitCode, rm.Refused, rm.Error)
	}
	if err := os.Rename(moved, victim); err != nil {
		t.Fatalf("another user's directory, moved in after the judgement, was removed: %v", err)
	}
	if diff := cmp.Diff(before, treeWithOwners(t, victim)); diff != "" {
		t.Fatalf("victim changed:\n%s", diff)
	}
}

// TestRemoveSwappedForDirectory: the target or the WAL directory swapped
// for another real directory at each step: the directory swapped in stays
// where and as it was, and the removal never reports success.
func TestRemoveSwappedForDirectory(t *testing.T) {
	for _, which := range []string{"target", "waldir"} {
		for _, step := range []string{"judged", "renamed", "checked", "emptying b1", "removing b1", "removing b1_wal"} {
			t.Run(which+" at "+step, func(t *testing.T) {
				l := makeLayout(t)
				victim := victimTree(t, l.root)
				l.write(t, l.status())
				before := tree(t, victim)
				want := step
				if verb, name, ok := strings.Cut(step, " "); ok {
					want = verb + " " + filepath.Join(l.root, name)
				}
				path := l.target
				if which == "waldir" {
					path = l.wal
				}
				var at string
				hook := func(s string) {
					if s != want || at != "" {
						return
					}
					cur := path
					if _, err := os.Lstat(cur); err != nil {
						cur = l.tombstone(path, l.status())
					}
					if err := os.Rename(cur, cur+".moved"); err != nil {
						return // already removed
					}
					if err := os.Rename(victim, cur); err != nil {
						t.Fatal(err)
					}
					at = cur
				}
				rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}), between(hook))
				if at == "" {
					t.Logf("step not reached: nothing swapped (exit %d)", rm.ExitCode)
					return
				}
				if rm.ExitCode == ExitRemoved {
					t.Errorf("exit 0 (removed) although %s was swapped at %s", path, step)
				}
				if _, err := os.Lstat(at); err != nil {
					t.Fatalf("the directory swapped in at %s is gone or moved: %v (exit %d refused %q error %q)", at, err, rm.ExitCode, rm.Refused, rm.Error)
				}
				if diff := cmp.Diff(before, tree(t, at)); diff != "" {
					t.Fatalf("the directory swapped in changed (exit %d refused %q error %q):\n%s", rm.ExitCode, rm.Refused, rm.Error, diff)
				}
			})
		}
	}
}

// TestMayRemoveFromClasses: the permission class that applies decides, as
// in the kernel, even when a later class would allow more.
func TestMayRemoveFromClasses(t *testing.T) {
	const uid, gid = 1002, 2000
	u := owner{uid: uid, gid: 100, groups: []uint32{100, gid}}
	for _, tc := range []struct {
		name           string
		mode           os.FileMode
		ownerID, group uint32
		want           bool
	}{
		{"owner rwx", 0o700, uid, 0, true},
		{"owner r-x, others rwx", 0o577, uid, 0, false},
		{"group rwx", 0o070, 0, gid, true},
		{"group ---, others rwx", 0o707, 0, gid, false},
		{"others rwx", 0o707, 0, 0, true},
		{"others r-x", 0o705, 0, 0, false},
	} {
		fi := fakeDirInfo{name: tc.name, mode: tc.mode | os.ModeDir, st: &syscall.Stat_t{Uid: tc.ownerID, Gid: tc.group}}
		if got := mayRemoveFrom(fi, u); got != tc.want {
			t.Errorf("%s: %t, want %t", tc.name, got, tc.want)
		}
	}
}

// fakeDirInfo is a directory's FileInfo with the owner and mode a test
// gives.
type fakeDirInfo struct {
	name string
	mode os.FileMode
	st   *syscall.Stat_t
}

func (f fakeDirInfo) Name() string       { return f.name }
func (f fakeDirInfo) Size() int64        { return 0 }
func (f fakeDirInfo) Mode() os.FileMode  { return f.mode }
func (f fakeDirInfo) ModTime() time.Time { return time.Time{} }
func (f fakeDirInfo) IsDir() bool        { return true }
func (f fakeDirInfo) Sys() any           { return f.st }

// TestRemoveDeepTree: a tree deeper than pg_basebackup makes is refused at
// once, not walked for minutes.
func TestRemoveDeepTree(t *testing.T) {
	l := makeLayout(t)
	deep := filepath.Join(l.target, "base")
	for range 40 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	l.write(t, l.status())
	start := time.Now()
	refusedUnchanged(t, l.file, l.root, "levels deep")
	t.Logf("refused in %s", time.Since(start).Round(time.Millisecond))
}

// TestRemoveLongName: a target whose name is as long as a file name may
// be is removed: its tombstone's name is cut short to fit.
func TestRemoveLongName(t *testing.T) {
	l := makeLayout(t)
	long := filepath.Join(l.root, strings.Repeat("b", 245))
	if err := os.Rename(l.target, long); err != nil {
		t.Fatal(err)
	}
	s := l.status()
	s.Directories[0].Path = long
	l.write(t, s)
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}))
	if rm.ExitCode != ExitRemoved {
		t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	if len(filepath.Base(rm.Steps[0].Tombstone)) > maxNameLen {
		t.Errorf("tombstone name of %d bytes", len(filepath.Base(rm.Steps[0].Tombstone)))
	}
}

// TestDirUsersThroughBindMount: a process whose working directory is the
// target reached through a bind mount in another mount namespace (a
// server started on the backup in a container) is found by identity,
// although no path it shows is under the target.
func TestDirUsersThroughBindMount(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare(1) is missing (util-linux)")
	}
	l := makeLayout(t)
	l.write(t, l.status())
	mnt := filepath.Join(t.TempDir(), "restore")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-m", "sh", "-c", "mount --bind \"$1\" \"$2\" && cd \"$2\" && exec sleep 60", "sh", l.target, mnt)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		cwd, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "cwd"))
		if cwd == mnt {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process never moved into the bind mount (cwd %q)", cwd)
		}
		time.Sleep(20 * time.Millisecond)
	}
	refusedUnchanged(t, l.file, l.root, "may still write into the backup: working directory "+mnt)
}
