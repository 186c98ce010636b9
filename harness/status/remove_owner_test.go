//go:build linux

package status

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The uids of the adversarial tests: the backup user who wrote the status
// file, and a third user. Neither needs an entry in /etc/passwd.
const (
	backupUID = 4243
	otherUID  = 4242
)

// needRoot skips a test that must make files of other users, unless the
// integration tests (make test, which CI runs as root) expect it to run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("PGBB_INTEGRATION") != "" {
		t.Fatal("this test makes files of other users and must run as root (PGBB_INTEGRATION is set)")
	}
	t.Skip("needs root to make files of other users")
}

// reachable opens the parents of dir (the test's temporary directories,
// mode 0700) for search by everyone, as the parents of a backup directory
// are for the user who wrote it.
func reachable(t *testing.T, dir string) {
	t.Helper()
	for d := filepath.Dir(dir); d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// chownTree gives root and everything under it to uid, symlinks included.
func chownTree(t *testing.T, root string, uid int) {
	t.Helper()
	err := filepath.Walk(root, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ownedLayout is makeLayout with everything owned by backupUID, as a
// pg_basebackup run by that user leaves it, and a victim directory next to
// it: a tablespace-like directory of owner victimUID (mode 0700) that the
// backup user cannot touch.
func ownedLayout(t *testing.T, victimUID int) (backupLayout, string) {
	t.Helper()
	needRoot(t)
	l := makeLayout(t)
	reachable(t, l.root)
	victim := filepath.Join(l.root, "victim")
	writeFile(t, victim, "PG_18_202506291/5/16385", []byte("not yours"))
	chownTree(t, l.root, backupUID)
	chownTree(t, victim, victimUID)
	if err := os.Chmod(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	return l, victim
}

// refusedUnchanged runs RemoveIfDead dry and for real on the status file
// and asserts that both refuse with want in the reason and that nothing
// under root changed.
func refusedUnchanged(t *testing.T, file, root, want string, opts ...Option) {
	t.Helper()
	before := treeWithOwners(t, root)
	for _, dry := range []bool{true, false} {
		rm := RemoveIfDead(t.Context(), file, dry, append([]Option{WithProcesses(realUsers{deadOnDB1()})}, opts...)...)
		if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, want) {
			t.Fatalf("dry run %v: exit %d, refused %q, error %q; want refused with %q", dry, rm.ExitCode, rm.Refused, rm.Error, want)
		}
		if diff := cmp.Diff(before, treeWithOwners(t, root)); diff != "" {
			t.Fatalf("dry run %v: the tree changed (-before +after):\n%s", dry, diff)
		}
	}
}

// treeWithOwners is tree with each entry's owner and kind, without
// following symlinks.
func treeWithOwners(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, e := range tree(t, root) {
		rel := strings.Fields(strings.TrimSuffix(e, "/"))[0]
		fi, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		out = append(out, fmt.Sprintf("%s uid=%d mode=%s", e, st.Uid, fi.Mode()))
	}
	return out
}

// TestRemoveOwnership: a status file of the backup user never makes the
// removal (run as root) touch what that user could not remove: forged
// DIRECTORY lines naming another user's or root's directory, and entries
// of another owner or of a kind pg_basebackup never makes inside the
// directories. Each refuses before anything is touched, naming the path
// and why.
func TestRemoveOwnership(t *testing.T) {
	tests := []struct {
		name   string
		modify func(t *testing.T, l backupLayout, victim string, s *Status)
		want   string
	}{
		{"DIRECTORY of root", func(t *testing.T, l backupLayout, victim string, s *Status) {
			chownTree(t, victim, 0)
			s.Directories[2].Path = victim
		}, "owned by uid 0"},
		{"DIRECTORY of another user", func(t *testing.T, l backupLayout, victim string, s *Status) {
			s.Directories[2].Path = victim
		}, fmt.Sprintf("owned by uid %d", otherUID)},
		{"created DIRECTORY of another user", func(t *testing.T, l backupLayout, victim string, s *Status) {
			s.Directories[2] = Directory{Path: victim, Created: true}
		}, fmt.Sprintf("owned by uid %d", otherUID)},
		{"DIRECTORY through a symlinked parent", func(t *testing.T, l backupLayout, victim string, s *Status) {
			link := filepath.Join(l.root, "up")
			if err := os.Symlink(l.root, link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, backupUID, backupUID); err != nil {
				t.Fatal(err)
			}
			s.Directories[2].Path = filepath.Join(link, "victim")
		}, fmt.Sprintf("owned by uid %d", otherUID)},
		{"target owned by another user", func(t *testing.T, l backupLayout, victim string, s *Status) {
			if err := os.Lchown(l.target, otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
		}, fmt.Sprintf("owned by uid %d", otherUID)},
		{"a file of root inside the target", func(t *testing.T, l backupLayout, victim string, s *Status) {
			writeFile(t, l.target, "base/1/2619", []byte("root's"))
		}, "base/1/2619"},
		{"a directory of another user inside the tablespace", func(t *testing.T, l backupLayout, victim string, s *Status) {
			if err := os.Lchown(filepath.Join(l.ts, "PG_18_202506291", "5"), otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
		}, fmt.Sprintf("owned by uid %d", otherUID)},
		{"a hard link to root's file outside", func(t *testing.T, l backupLayout, victim string, s *Status) {
			secret := writeFile(t, l.root, "secret", []byte("root's secret"))
			if err := os.Link(secret, filepath.Join(l.target, "base", "1", "2619")); err != nil {
				t.Fatal(err)
			}
		}, "base/1/2619"},
		{"a FIFO inside the target", func(t *testing.T, l backupLayout, victim string, s *Status) {
			p := filepath.Join(l.target, "base", "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(p, backupUID, backupUID); err != nil {
				t.Fatal(err)
			}
		}, "named pipe"},
		{"a socket inside the WAL directory", func(t *testing.T, l backupLayout, victim string, s *Status) {
			p := filepath.Join(l.wal, "archive_status", "sock")
			ln, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			ln.(*net.UnixListener).SetUnlinkOnClose(false)
			ln.Close()
			if err := os.Lchown(p, backupUID, backupUID); err != nil {
				t.Fatal(err)
			}
		}, "socket"},
		{"a device inside the target", func(t *testing.T, l backupLayout, victim string, s *Status) {
			p := filepath.Join(l.target, "base", "null")
			if err := syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|3); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(p, backupUID, backupUID); err != nil {
				t.Fatal(err)
			}
		}, "device"},
		{"a created DIRECTORY in a parent the user cannot write", func(t *testing.T, l backupLayout, victim string, s *Status) {
			if err := os.Lchown(l.root, 0, 0); err != nil {
				t.Fatal(err)
			}
		}, "cannot remove it"},
		{"status file of root", func(t *testing.T, l backupLayout, victim string, s *Status) {
			if err := os.Lchown(l.file, 0, 0); err != nil {
				t.Fatal(err)
			}
		}, fmt.Sprintf("owned by uid %d, not by uid 0", backupUID)},
		{"status file of another user than the directories", func(t *testing.T, l backupLayout, victim string, s *Status) {
			if err := os.Lchown(l.file, otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
		}, fmt.Sprintf("owned by uid %d, not by uid %d", backupUID, otherUID)},
		// Temporary files of another user are kept and do not refuse:
		// TestRemoveForeignTempFileKept.
		{"status file in a directory the user cannot write", func(t *testing.T, l backupLayout, victim string, s *Status) {
			if err := os.Lchown(filepath.Dir(l.file), 0, 0); err != nil {
				t.Fatal(err)
			}
		}, "cannot remove the status file"},
		{"status file in a directory the user cannot search", func(t *testing.T, l backupLayout, victim string, s *Status) {
			dir := filepath.Dir(l.file)
			if err := os.Lchown(dir, 0, 0); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "cannot open the directory of the status file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, victim := ownedLayout(t, otherUID)
			s := l.status()
			l.write(t, s)
			chownTree(t, l.file, backupUID)
			tc.modify(t, l, victim, s)
			// Rewrite the (maybe forged) status file, keeping its owner.
			fi, err := os.Lstat(l.file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(l.file, s.Encode(), 0o644); err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if err := os.Lchown(l.file, int(st.Uid), int(st.Gid)); err != nil {
				t.Fatal(err)
			}
			refusedUnchanged(t, l.file, l.root, tc.want)
		})
	}
}

// TestRemoveMountPoint: a recorded directory that is a mount point is
// never removed and, unless the backup user owns it, never emptied; a
// mount point inside a recorded directory refuses the whole removal.
func TestRemoveMountPoint(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name   string
		owner  int
		place  func(l backupLayout) string // where the file system is mounted
		modify func(l backupLayout, mnt string, s *Status)
		want   string
	}{
		{"an existing DIRECTORY of root", 0, func(l backupLayout) string { return filepath.Join(l.root, "mnt") },
			func(l backupLayout, mnt string, s *Status) { s.Directories[2].Path = mnt }, "owned by uid 0"},
		{"a created DIRECTORY", backupUID, func(l backupLayout) string { return filepath.Join(l.root, "mnt") },
			func(l backupLayout, mnt string, s *Status) { s.Directories[2] = Directory{Path: mnt, Created: true} }, "mount point"},
		{"inside the target", backupUID, func(l backupLayout) string { return filepath.Join(l.target, "base", "mnt") },
			func(l backupLayout, mnt string, s *Status) {}, "mount point"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := ownedLayout(t, otherUID)
			mnt := tc.place(l)
			if err := os.MkdirAll(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
				t.Fatalf("mount tmpfs: %v", err)
			}
			t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
			writeFile(t, mnt, "PG_18_202506291/5/16385", []byte("on another file system"))
			chownTree(t, mnt, tc.owner)
			s := l.status()
			tc.modify(l, mnt, s)
			l.write(t, s)
			chownTree(t, l.file, backupUID)
			refusedUnchanged(t, l.file, l.root, tc.want)
		})
	}
}

// TestRemoveHardLinkOwnFile: a hard link in the target to a file of the
// backup user outside is removed as a name; the file outside keeps its
// contents.
func TestRemoveHardLinkOwnFile(t *testing.T) {
	l, victim := ownedLayout(t, otherUID)
	l.write(t, l.status())
	chownTree(t, l.file, backupUID)
	if err := os.Link(l.outside, filepath.Join(l.target, "base", "1", "2619")); err != nil {
		t.Fatal(err)
	}
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}))
	if rm.ExitCode != ExitRemoved {
		t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	if data, err := os.ReadFile(l.outside); err != nil || string(data) != "keep me" {
		t.Fatalf("outside file: %q, %v", data, err)
	}
	if data, err := os.ReadFile(filepath.Join(victim, "PG_18_202506291/5/16385")); err != nil || string(data) != "not yours" {
		t.Fatalf("victim: %q, %v", data, err)
	}
}
