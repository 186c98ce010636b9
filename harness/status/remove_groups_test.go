//go:build linux

package status

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// groupGID is a group without an entry in /etc/group: the group of a
// setgid directory that the status file's owner is not in.
const groupGID = 4244

// TestOwnerWithoutPasswdEntryHasNoGroups: an owner uid the user database
// does not know gets no groups, and not the file's group as its own: a
// status file inherits the group of a setgid directory, which says
// nothing of its owner.
func TestOwnerWithoutPasswdEntryHasNoGroups(t *testing.T) {
	fi := fakeDirInfo{name: "b1.status", mode: 0o644, st: &syscall.Stat_t{Uid: backupUID, Gid: groupGID}}
	u, err := ownerWithGroups(fi)
	if err != nil {
		t.Fatal(err)
	}
	if u.uid != backupUID || len(u.groups) != 0 || u.gid == groupGID || slices.Contains(u.groups, groupGID) {
		t.Fatalf("owner %+v: want uid %d, no groups, and not gid %d", u, backupUID, groupGID)
	}
	// Where the one gid that grants nothing is the file's, acting as
	// the owner is refused.
	fi.st.Gid = u.gid
	if u, err := ownerWithGroups(fi); err == nil {
		t.Fatalf("owner %+v with the file's group %d", u, fi.st.Gid)
	}
}

// TestRemoveSetgidGroupNotGranted: a dead run of a uid without a passwd
// entry, in directories of root's whose group (setgid, inherited by the
// status file) may write: only that group could remove the target, so
// the removal, run as root, refuses and changes nothing.
func TestRemoveSetgidGroupNotGranted(t *testing.T) {
	needRoot(t)
	l, _ := layoutOfDeadRun(t, StateInProgress)
	reachable(t, l.root)
	chownTree(t, l.root, backupUID)
	// The run's parents: root's, group groupGID (setgid), group-writable.
	for _, d := range []string{l.root, filepath.Dir(l.file)} {
		if err := os.Chown(d, 0, groupGID); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o2770|0o005); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(l.file, backupUID, groupGID); err != nil {
		t.Fatal(err)
	}
	refusedUnchanged(t, l.file, l.root, "cannot remove")
}

// TestRemoveForeignTempFileKept: temporary files of the status file that
// another user owns (A's FILE.PID.tmp, root's FILE.tmp) are another
// user's files: they are reported as such and kept, and do not stop the
// clean-up of the owner's dead run (they used to refuse it).
func TestRemoveForeignTempFileKept(t *testing.T) {
	l, _ := ownedLayout(t, otherUID)
	s := l.status()
	l.write(t, s)
	chownTree(t, l.file, backupUID)
	tmp := writeFile(t, filepath.Dir(l.file), filepath.Base(TempPath(l.file, s.PID)), []byte("A's"))
	if err := os.Lchown(tmp, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	legacy := writeFile(t, filepath.Dir(l.file), filepath.Base(LegacyTempPath(l.file)), []byte("root's"))
	for _, dry := range []bool{true, false} {
		rm := RemoveIfDead(t.Context(), l.file, dry, WithProcesses(realUsers{deadOnDB1()}))
		if rm.ExitCode != ExitRemoved {
			t.Fatalf("dry run %v: exit %d, refused %q, error %q", dry, rm.ExitCode, rm.Refused, rm.Error)
		}
		var kept []string
		for _, st := range rm.Steps {
			if st.File == StepTempFile && strings.Contains(st.String(), "another user's file") {
				kept = append(kept, st.Path)
			}
		}
		if !slices.Equal(kept, []string{tmp, legacy}) {
			t.Errorf("dry run %v: kept %q, want %q; steps %v", dry, kept, []string{tmp, legacy}, rm.Steps)
		}
	}
	for path, want := range map[string]string{tmp: "A's", legacy: "root's"} {
		if data, err := os.ReadFile(path); err != nil || string(data) != want {
			t.Errorf("%s: %q %v", path, data, err)
		}
	}
	for _, p := range []string{l.file, l.target} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want removed", p, err)
		}
	}
}
