package status

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// machineWithUsers is a fake machine that also answers DirUsers.
type machineWithUsers struct {
	fakeProcesses
	users    []DirUser
	usersErr error
	// usersFrom: the users appear from this call on (1-based; 0: always).
	usersFrom int
	calls     *atomic.Int32
}

func (m machineWithUsers) DirUsers(dirs []string, ids map[FileID]bool, pid int) ([]DirUser, error) {
	n := 0
	if m.calls != nil {
		n = int(m.calls.Add(1))
	}
	if m.usersFrom > 0 && n < m.usersFrom {
		return nil, nil
	}
	return m.users, m.usersErr
}

// deadOnDB1 is host db1 without process 1234, nobody using anything.
func deadOnDB1() machineWithUsers { return machineWithUsers{fakeProcesses: fakeProcesses{host: "db1"}} }

// backupLayout is a dead run's directories next to things that are not
// the run's: root/b1 (the target, created, with a pg_wal symlink to
// root/b1_wal), root/b1_wal (--waldir, created), root/ts1 (a tablespace
// directory that existed), root/b2 (another backup) and root/notes.txt.
type backupLayout struct {
	root, target, wal, ts, sibling, outside string
}

func makeLayout(t *testing.T) backupLayout {
	t.Helper()
	root := t.TempDir()
	l := backupLayout{
		root:    root,
		target:  filepath.Join(root, "b1"),
		wal:     filepath.Join(root, "b1_wal"),
		ts:      filepath.Join(root, "ts1"),
		sibling: filepath.Join(root, "b2"),
		outside: filepath.Join(root, "notes.txt"),
	}
	writeFile(t, l.target, "PG_VERSION", []byte("18\n"))
	writeFile(t, l.target, "base/1/1259", []byte("data"))
	writeFile(t, l.target, "pg_tblspc/.keep", nil)
	if err := os.Symlink(l.wal, filepath.Join(l.target, "pg_wal")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(l.ts, filepath.Join(l.target, "pg_tblspc", "16384")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, l.wal, "000000010000000000000002.partial", []byte("wal"))
	writeFile(t, l.wal, "000000010000000000000001", []byte("wal"))
	if err := os.MkdirAll(filepath.Join(l.wal, "archive_status"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, l.ts, "PG_18_202506291/5/16385", []byte("table"))
	writeFile(t, l.sibling, FileName, completedStatus().Encode())
	writeFile(t, l.root, "notes.txt", []byte("keep me"))
	return l
}

// status is the dead run's "in progress" status file for l.
func (l backupLayout) status() *Status {
	s := withProgress(inProgressStatus(true))
	s.Directories = []Directory{{Path: l.target, Created: true}, {Path: l.wal, Created: true}, {Path: l.ts}}
	return s
}

// write puts s into the target as its status file.
func (l backupLayout) write(t *testing.T, s *Status) {
	t.Helper()
	writeFile(t, l.target, FileName, s.Encode())
}

// tree lists every path under root with its kind and contents, to show
// that nothing changed.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			out = append(out, rel+" -> "+target)
		case d.IsDir():
			out = append(out, rel+"/")
		case !d.Type().IsRegular():
			out = append(out, rel+" "+d.Type().String())
		default:
			data, _ := os.ReadFile(path)
			out = append(out, fmt.Sprintf("%s %x", rel, data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestRemoveRefused: every rule that makes RemoveIfDead refuse, each on an
// otherwise removable run; nothing may change.
func TestRemoveRefused(t *testing.T) {
	type setup struct {
		l     backupLayout
		s     *Status
		procs Processes
		dir   string // given to RemoveIfDead; the target if empty
		opts  []Option
	}
	alive := machineWithUsers{fakeProcesses: machine(WriterName, -time.Second)}
	tests := []struct {
		name   string
		modify func(t *testing.T, c *setup)
		want   string
	}{
		{"completed", func(t *testing.T, c *setup) {
			c.s = withProgress(completedStatus())
			c.s.Directories = c.l.status().Directories
		}, "completed (DURABLE: yes)"},
		{"completed, not durable", func(t *testing.T, c *setup) {
			c.s = withProgress(completedStatus())
			c.s.Sync, c.s.Durable = false, false
			c.s.Directories = c.l.status().Directories
		}, "completed (DURABLE: no)"},
		{"alive", func(t *testing.T, c *setup) { c.procs = alive }, "the run is alive"},
		{"alive and stopped", func(t *testing.T, c *setup) {
			m := machine(WriterName, -time.Second)
			p := m.procs[1234]
			p.Stopped = true
			m.procs[1234] = p
			c.procs = machineWithUsers{fakeProcesses: m}
		}, "the run is alive"},
		{"failed, process still there", func(t *testing.T, c *setup) {
			c.s = withProgress(failedStatus(true))
			c.s.Directories = c.l.status().Directories
			c.procs = alive
		}, "the run is alive"},
		{"process table unreadable", func(t *testing.T, c *setup) {
			c.procs = machineWithUsers{fakeProcesses: fakeProcesses{host: "db1", procErr: errors.New("hidepid")}}
		}, "cannot tell whether the run is over"},
		{"host name unknown", func(t *testing.T, c *setup) {
			c.procs = machineWithUsers{fakeProcesses: fakeProcesses{hostErr: errors.New("boom")}}
		}, "host name: boom"},
		{"start time unknown, a pg_basebackup has the pid", func(t *testing.T, c *setup) {
			c.s.StartTime = time.Time{}
			c.procs = alive
		}, "no start time"},
		{"another host, no lease", func(t *testing.T, c *setup) {
			c.procs = machineWithUsers{fakeProcesses: fakeProcesses{host: "db2"}}
		}, "give a lease"},
		{"another host, lease shorter than a stall", func(t *testing.T, c *setup) {
			c.procs = machineWithUsers{fakeProcesses: fakeProcesses{host: "db2"}}
			c.opts = []Option{WithLease(5 * time.Second), leaseWatch(nil)}
		}, "shorter than 15s"},
		{"no status file", func(t *testing.T, c *setup) { c.s = nil }, "no status file"},
		{"torn status file", func(t *testing.T, c *setup) {
			data := c.s.Encode()
			writeFile(t, c.l.target, FileName, data[:len(data)-20])
			c.s = nil
		}, "cut short"},
		{"bad checksum", func(t *testing.T, c *setup) {
			data := c.s.Encode()
			data = []byte(strings.Replace(string(data), "PID: 1234", "PID: 1235", 1))
			writeFile(t, c.l.target, FileName, data)
			c.s = nil
		}, "checksum mismatch"},
		{"status file is a symlink", func(t *testing.T, c *setup) {
			writeFile(t, c.l.target, "real_status", c.s.Encode())
			if err := os.Symlink("real_status", filepath.Join(c.l.target, FileName)); err != nil {
				t.Fatal(err)
			}
			c.s = nil
		}, "not a regular file"},
		{"directory is a symlink", func(t *testing.T, c *setup) {
			c.dir = filepath.Join(c.l.root, "link")
			if err := os.Symlink(c.l.target, c.dir); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink"},
		{"directory is a file", func(t *testing.T, c *setup) { c.dir = c.l.outside }, "not a directory"},
		{"directory missing", func(t *testing.T, c *setup) { c.dir = filepath.Join(c.l.root, "nope") }, "no such file"},
		{"no DIRECTORY lines (patch 0002)", func(t *testing.T, c *setup) {
			c.s = inProgressStatus(true)
		}, "no DIRECTORY lines"},
		{"no DIRECTORY at all", func(t *testing.T, c *setup) { c.s.Directories = nil }, "records no directory"},
		{"unprintable DIRECTORY", func(t *testing.T, c *setup) {
			c.s.Directories = append(c.s.Directories, Directory{Unprintable: true})
		}, "unprintable"},
		{"relative DIRECTORY", func(t *testing.T, c *setup) {
			c.s.Directories[2].Path = "ts1"
		}, "not \"created PATH\""},
		{"unclean DIRECTORY", func(t *testing.T, c *setup) {
			c.s.Directories[2].Path = c.l.root + "/x/../ts1"
		}, "not a clean path"},
		{"root DIRECTORY", func(t *testing.T, c *setup) {
			c.s.Directories[2].Path = "/"
		}, "root directory"},
		{"DIRECTORY is a file", func(t *testing.T, c *setup) {
			c.s.Directories[2].Path = c.l.outside
		}, "is not a directory"},
		{"DIRECTORY is a symlink", func(t *testing.T, c *setup) {
			link := filepath.Join(c.l.root, "tslink")
			if err := os.Symlink(c.l.ts, link); err != nil {
				t.Fatal(err)
			}
			c.s.Directories[2].Path = link
		}, "is a symlink"},
		{"DIRECTORY under a symlink that leads into another", func(t *testing.T, c *setup) {
			link := filepath.Join(c.l.root, "up")
			if err := os.Symlink(c.l.target, link); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(c.l.target, "inner"), 0o755); err != nil {
				t.Fatal(err)
			}
			c.s.Directories[2].Path = filepath.Join(link, "inner")
		}, "resolve to"},
		{"target is not the first DIRECTORY", func(t *testing.T, c *setup) {
			d := c.s.Directories
			d[0], d[1] = d[1], d[0]
		}, "the first DIRECTORY (the target) is"},
		{"status file copied from another directory", func(t *testing.T, c *setup) {
			c.dir = c.l.sibling
			writeFile(t, c.l.sibling, FileName, c.s.Encode())
		}, "not this directory's own"},
		{"DIRECTORY inside the target", func(t *testing.T, c *setup) {
			c.s.Directories[2].Path = filepath.Join(c.l.target, "base")
		}, "one is inside the other"},
		{"DIRECTORY containing the target", func(t *testing.T, c *setup) {
			c.s.Directories[2].Path = c.l.root
		}, "one is inside the other"},
		{"DIRECTORY twice", func(t *testing.T, c *setup) {
			c.s.Directories[2].Path = c.l.wal
		}, "the same"},
		{"DIRECTORY holding something else", func(t *testing.T, c *setup) {
			writeFile(t, c.l.ts, "thesis.tex", []byte("years of work"))
		}, `holds "thesis.tex"`},
		{"DIRECTORY holding a file named like a tablespace", func(t *testing.T, c *setup) {
			writeFile(t, c.l.ts, "PG_1_2", nil)
		}, "does not look like"},
		{"DIRECTORY mixing WAL and tablespace", func(t *testing.T, c *setup) {
			writeFile(t, c.l.ts, "000000010000000000000003", nil)
		}, "does not look like"},
		{"tar format with more than the target", func(t *testing.T, c *setup) {
			c.s.Format = "tar"
		}, "tar-format run records only its target"},
		{"a process has a file open inside", func(t *testing.T, c *setup) {
			c.procs = machineWithUsers{fakeProcesses: fakeProcesses{host: "db1"}, users: []DirUser{{PID: 77, Name: "postgres", Why: "open file x"}}}
		}, "pid 77 (postgres) may still write"},
		{"the WAL streaming child survives", func(t *testing.T, c *setup) {
			c.procs = machineWithUsers{fakeProcesses: fakeProcesses{host: "db1"}, users: []DirUser{{PID: 1235, Name: WriterName, Why: "the WAL streaming child"}}}
		}, "pid 1235 (pg_basebackup)"},
		{"processes cannot be listed", func(t *testing.T, c *setup) {
			c.procs = machineWithUsers{fakeProcesses: fakeProcesses{host: "db1"}, usersErr: errors.New("permission denied")}
		}, "cannot tell which processes use the directories: permission denied"},
		{"processes not listable at all", func(t *testing.T, c *setup) {
			c.procs = fakeProcesses{host: "db1"}
		}, "cannot list them"},
		{"the check after the rename finds a user", func(t *testing.T, c *setup) {
			c.procs = machineWithUsers{fakeProcesses: fakeProcesses{host: "db1"}, users: []DirUser{{PID: 88, Name: "postgres", Why: "working directory"}},
				usersFrom: 2, calls: new(atomic.Int32)}
		}, "checked again after renaming the target"},
		{"the tombstone name is taken", func(t *testing.T, c *setup) {
			if err := os.Mkdir(tombstone(c.l.target), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "cannot rename the target out of the way"},
	}
	// These rules are checked only when removing for real.
	wetOnly := map[string]bool{"the check after the rename finds a user": true, "the tombstone name is taken": true}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := makeLayout(t)
			c := &setup{l: l, s: l.status(), procs: deadOnDB1()}
			tc.modify(t, c)
			if c.s != nil {
				l.write(t, c.s)
			}
			if c.dir == "" {
				c.dir = l.target
			}
			before := tree(t, l.root)
			for _, dry := range []bool{true, false} {
				if dry && wetOnly[tc.name] {
					continue
				}
				rm := RemoveIfDead(t.Context(), c.dir, dry, append([]Option{WithProcesses(c.procs)}, c.opts...)...)
				if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, tc.want) {
					t.Fatalf("dry run %v: exit %d, refused %q, error %q; want refused with %q", dry, rm.ExitCode, rm.Refused, rm.Error, tc.want)
				}
				if diff := cmp.Diff(before, tree(t, l.root)); diff != "" {
					t.Fatalf("dry run %v: the tree changed (-before +after):\n%s", dry, diff)
				}
			}
		})
	}
}

// TestRemoveRealFiles: none of the real status files allows a removal of
// the directory it is put in (completed, no DIRECTORY lines, or a
// DIRECTORY that is not this directory).
func TestRemoveRealFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "real", "*", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no real files: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			writeFile(t, dir, FileName, data)
			// The run is dead on its host, whichever that is.
			procs := machineWithUsers{fakeProcesses: fakeProcesses{host: s.Host}}
			rm := RemoveIfDead(t.Context(), dir, false, WithProcesses(procs))
			var want string
			switch {
			case s.State == StateCompleted:
				want = "a completed backup is never removed"
			case !s.Progress:
				want = "no DIRECTORY lines"
			default:
				want = "DIRECTORY " + s.Directories[0].Path
			}
			if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, want) {
				t.Fatalf("exit %d refused %q, want %q", rm.ExitCode, rm.Refused, want)
			}
			if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRemoveRealDirectories: a dead run's target, --waldir and tablespace
// directory are removed (the tablespace directory, which existed, emptied
// and kept), and nothing else is touched: not another backup next to it,
// not a file outside, not what the symlinks in the target point to before
// their turn. The dry run before changes nothing and plans the same.
func TestRemoveRealDirectories(t *testing.T) {
	for _, state := range []State{StateInProgress, StateFailed} {
		t.Run(state.String(), func(t *testing.T) {
			l := makeLayout(t)
			s := l.status()
			if state == StateFailed {
				s = withProgress(failedStatus(true))
				s.Directories = l.status().Directories
			}
			l.write(t, s)
			procs := realUsers{deadOnDB1()}
			before := tree(t, l.root)

			dry := RemoveIfDead(t.Context(), l.target, true, WithProcesses(procs))
			if dry.ExitCode != ExitRemoved || dry.Refused != "" || !dry.DryRun {
				t.Fatalf("dry run: exit %d refused %q", dry.ExitCode, dry.Refused)
			}
			if diff := cmp.Diff(before, tree(t, l.root)); diff != "" {
				t.Fatalf("the dry run changed the tree:\n%s", diff)
			}
			wantSteps := []RemoveStep{{Path: l.target, Created: true}, {Path: l.wal, Created: true}, {Path: l.ts}}
			if diff := cmp.Diff(wantSteps, dry.Steps); diff != "" {
				t.Fatalf("dry-run steps (-want +got):\n%s", diff)
			}

			rm := RemoveIfDead(t.Context(), l.target, false, WithProcesses(procs))
			if rm.ExitCode != ExitRemoved || rm.Refused != "" || rm.Error != "" {
				t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
			}
			for _, st := range rm.Steps {
				if !st.Done {
					t.Errorf("step not done: %+v", st)
				}
			}
			if !strings.Contains(rm.Over, "pid 1234 is gone") {
				t.Errorf("over: %q", rm.Over)
			}
			want := []string{
				"./",
				"b2/",
				"b2/backup_status " + fmt.Sprintf("%x", completedStatus().Encode()),
				"notes.txt " + fmt.Sprintf("%x", "keep me"),
				"ts1/",
			}
			if diff := cmp.Diff(want, tree(t, l.root)); diff != "" {
				t.Fatalf("after removal (-want +got):\n%s", diff)
			}
			// A retry into the same target can start.
			if err := os.Mkdir(l.target, 0o700); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRemoveExistingTarget: a target that existed before the run is
// emptied and kept.
func TestRemoveExistingTarget(t *testing.T) {
	l := makeLayout(t)
	s := l.status()
	s.Directories = []Directory{{Path: l.target}}
	// Without the waldir and tablespace, no symlinks to them.
	for _, p := range []string{"pg_wal", "pg_tblspc/16384"} {
		if err := os.Remove(filepath.Join(l.target, p)); err != nil {
			t.Fatal(err)
		}
	}
	l.write(t, s)
	rm := RemoveIfDead(t.Context(), l.target, false, WithProcesses(realUsers{deadOnDB1()}))
	if rm.ExitCode != ExitRemoved {
		t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	entries, err := os.ReadDir(l.target)
	if err != nil || len(entries) != 0 {
		t.Fatalf("target: %v %v, want it empty", entries, err)
	}
	for _, p := range []string{l.wal, l.ts, l.sibling, l.outside} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestRemoveMissingDirectory: a recorded directory already gone is
// nothing to do, not a refusal.
func TestRemoveMissingDirectory(t *testing.T) {
	l := makeLayout(t)
	if err := os.RemoveAll(l.wal); err != nil {
		t.Fatal(err)
	}
	l.write(t, l.status())
	rm := RemoveIfDead(t.Context(), l.target, false, WithProcesses(realUsers{deadOnDB1()}))
	if rm.ExitCode != ExitRemoved || !rm.Steps[1].Missing {
		t.Fatalf("exit %d refused %q steps %+v", rm.ExitCode, rm.Refused, rm.Steps)
	}
	if _, err := os.Stat(l.target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("target: %v", err)
	}
}

// TestRemoveOtherHostLease: a run written on another host is removed once
// its status file stayed the same while watched for the lease on this
// machine's clock, whatever the times it records; a file rewritten
// meanwhile is a live run.
func TestRemoveOtherHostLease(t *testing.T) {
	for _, state := range []State{StateInProgress, StateFailed} {
		t.Run(state.String(), func(t *testing.T) {
			l := makeLayout(t)
			s := l.status()
			if state == StateFailed {
				s = withProgress(failedStatus(true))
				s.Directories = l.status().Directories
			}
			l.write(t, s)
			procs := realUsers{machineWithUsers{fakeProcesses: fakeProcesses{host: "db2"}}}
			if state == StateInProgress {
				// A live run, its clock right or hours behind the reader's.
				for _, lag := range []time.Duration{0, 5 * time.Hour} {
					s.UpdateTime = s.UpdateTime.Add(-lag)
					l.write(t, s)
					before := tree(t, l.root)
					rm := RemoveIfDead(t.Context(), l.target, false, WithProcesses(procs), WithLease(time.Hour), leaseWatch(rewriteOnce(t, l)))
					if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "rewrote it and is alive") {
						t.Fatalf("writer %s behind, rewritten within the lease: exit %d refused %q", lag, rm.ExitCode, rm.Refused)
					}
					if after := tree(t, l.root); len(after) != len(before) {
						t.Fatalf("writer %s behind: the tree changed:\n%s", lag, cmp.Diff(before, after))
					}
				}
			}
			l.write(t, s)
			rm := RemoveIfDead(t.Context(), l.target, false, WithProcesses(procs), WithLease(time.Hour), leaseWatch(nil))
			if rm.ExitCode != ExitRemoved || !strings.Contains(rm.Over, "stayed byte for byte the same for 1h0m0s") {
				t.Fatalf("exit %d refused %q over %q", rm.ExitCode, rm.Refused, rm.Over)
			}
			if _, err := os.Stat(l.target); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("target: %v", err)
			}
		})
	}
}

// leaseWatch makes RemoveIfDead watch a lease on a fake clock that jumps
// forward at each wait, calling during (if set) first.
func leaseWatch(during func()) Option {
	fc := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	return func(c *config) {
		c.leaseClock = leaseClock{now: fc.now, after: func(d time.Duration) <-chan time.Time {
			if during != nil {
				during()
			}
			return fc.after(d)
		}}
	}
}

// rewriteOnce returns a function that, on its second call, rewrites the
// target's status file as a live run does: a later UPDATE TIME, more
// bytes.
func rewriteOnce(t *testing.T, l backupLayout) func() {
	calls := 0
	return func() {
		if calls++; calls != 2 {
			return
		}
		data, err := os.ReadFile(filepath.Join(l.target, FileName))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		s.UpdateTime = s.UpdateTime.Add(5 * time.Second)
		s.BytesReceived += 8192
		l.write(t, s)
	}
}

// realUsers answers DirUsers from this machine's /proc.
type realUsers struct{ machineWithUsers }

func (realUsers) DirUsers(dirs []string, ids map[FileID]bool, pid int) ([]DirUser, error) {
	return Procfs{}.DirUsers(dirs, ids, pid)
}
