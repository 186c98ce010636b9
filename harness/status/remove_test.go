package status

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
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
// directory that existed), root/b2 (another backup), root/notes.txt, and
// the status files of both runs in root/status, outside the backups, as
// --status-file puts them: b1.status (file) and b2.status.
type backupLayout struct {
	root, target, wal, ts, sibling, outside, file string
}

// treeAfterRemoval is what a layout holds once the dead run is removed:
// the other backup and its status file, the note outside, the tablespace
// directory that existed, emptied.
func treeAfterRemoval() []string {
	return []string{
		"./",
		"b2/",
		"b2/PG_VERSION " + fmt.Sprintf("%x", "18\n"),
		"notes.txt " + fmt.Sprintf("%x", "keep me"),
		"status/",
		"status/b2.status " + fmt.Sprintf("%x", completedStatus().Encode()),
		"ts1/",
	}
}

// layoutOfDeadRun makes a layout whose status file says state (in
// progress or failed) over the layout's directories, and returns it with
// that status.
func layoutOfDeadRun(t *testing.T, state State) (backupLayout, *Status) {
	t.Helper()
	l := makeLayout(t)
	s := l.status()
	if state == StateFailed {
		s = withProgress(failedStatus(true))
		s.Directories = l.status().Directories
	}
	l.write(t, s)
	return l, s
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
		file:    filepath.Join(root, "status", "b1.status"),
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
	writeFile(t, l.sibling, "PG_VERSION", []byte("18\n"))
	writeFile(t, l.root, "status/b2.status", completedStatus().Encode())
	writeFile(t, l.root, "notes.txt", []byte("keep me"))
	return l
}

// status is the dead run's "in progress" status file for l.
func (l backupLayout) status() *Status {
	s := withProgress(inProgressStatus(true))
	s.Directories = []Directory{{Path: l.target, Created: true}, {Path: l.wal, Created: true}, {Path: l.ts}}
	return s
}

// write writes s as the run's status file, as pg_basebackup does: to the
// temporary file, renamed into place.
func (l backupLayout) write(t *testing.T, s *Status) {
	t.Helper()
	tmp := writeFile(t, filepath.Dir(l.file), filepath.Base(TempPath(l.file, s.PID)), s.Encode())
	if err := os.Rename(tmp, l.file); err != nil {
		t.Fatal(err)
	}
}

// tombstone is where RemoveIfDead renames path, over the status file s.
func (l backupLayout) tombstone(path string, s *Status) string {
	s.Encode()
	return tombstone(path, s.Checksum)
}

// between makes RemoveIfDead call f between its steps.
func between(f func(step string)) Option { return func(c *config) { c.between = f } }

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
		file  string // given to RemoveIfDead; l.file if empty
		opts  []Option
	}
	alive := machineWithUsers{fakeProcesses: machine(WriterName, -time.Second)}
	// inTarget writes the status file into the target, as the default
	// status file once was.
	inTarget := func(t *testing.T, c *setup) {
		c.file = filepath.Join(c.l.target, "b1.status")
		writeFile(t, c.l.target, "b1.status", c.s.Encode())
		c.s = nil
	}
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
		{"no status file, only its temporary file", func(t *testing.T, c *setup) {
			writeFile(t, filepath.Dir(c.l.file), "b1.status.1234.tmp", c.s.Encode())
			c.s = nil
		}, "no status file"},
		{"no status file, only its legacy temporary file", func(t *testing.T, c *setup) {
			writeFile(t, filepath.Dir(c.l.file), "b1.status.tmp", c.s.Encode())
			c.s = nil
		}, "no status file"},
		{"no status file, two tombstones of it", func(t *testing.T, c *setup) {
			writeFile(t, filepath.Dir(c.l.file), tombstoneName("b1.status", 1), c.s.Encode())
			writeFile(t, filepath.Dir(c.l.file), tombstoneName("b1.status", 2), c.s.Encode())
			c.s = nil
		}, "no status file"},
		{"no status file, a tombstone of another file", func(t *testing.T, c *setup) {
			writeFile(t, filepath.Dir(c.l.file), tombstoneName("b1.status", 1), c.s.Encode())
			c.s = nil
		}, "named as its tombstone, is not"},
		{"torn status file", func(t *testing.T, c *setup) {
			data := c.s.Encode()
			writeFile(t, filepath.Dir(c.l.file), "b1.status", data[:len(data)-20])
			c.s = nil
		}, "cut short"},
		{"bad checksum", func(t *testing.T, c *setup) {
			data := c.s.Encode()
			data = []byte(strings.Replace(string(data), "PID: 1234", "PID: 1235", 1))
			writeFile(t, filepath.Dir(c.l.file), "b1.status", data)
			c.s = nil
		}, "checksum mismatch"},
		{"status file is a symlink", func(t *testing.T, c *setup) {
			writeFile(t, filepath.Dir(c.l.file), "real.status", c.s.Encode())
			if err := os.Symlink("real.status", c.l.file); err != nil {
				t.Fatal(err)
			}
			c.s = nil
		}, "is a symlink: give the status file itself"},
		{"status file is a dangling symlink", func(t *testing.T, c *setup) {
			if err := os.Symlink("nowhere", c.l.file); err != nil {
				t.Fatal(err)
			}
			c.s = nil
		}, "is a symlink"},
		{"status file is a directory", func(t *testing.T, c *setup) { c.file = c.l.target }, "is a directory: give the status file"},
		{"status file is a FIFO", func(t *testing.T, c *setup) {
			if err := syscall.Mkfifo(c.l.file, 0o644); err != nil {
				t.Fatal(err)
			}
			c.s = nil
		}, "not a regular file"},
		{"status file is some other file", func(t *testing.T, c *setup) { c.file = c.l.outside }, "status file cannot be used"},
		{"status file inside the target", inTarget, "lies inside DIRECTORY {target}"},
		{"status file inside the target, reached through a symlink", func(t *testing.T, c *setup) {
			inTarget(t, c)
			link := filepath.Join(c.l.root, "link")
			if err := os.Symlink(c.l.target, link); err != nil {
				t.Fatal(err)
			}
			c.file = filepath.Join(link, "b1.status")
		}, "lies inside one of the recorded directories"},
		{"status file inside a tablespace directory", func(t *testing.T, c *setup) {
			c.file = filepath.Join(c.l.ts, "PG_18_202506291", "b1.status")
			writeFile(t, filepath.Dir(c.file), "b1.status", c.s.Encode())
			c.s = nil
		}, "lies inside DIRECTORY"},
		{"temporary file is a directory", func(t *testing.T, c *setup) {
			writeFile(t, filepath.Dir(c.l.file), "b1.status", c.s.Encode())
			c.s = nil
			if err := os.Mkdir(TempPath(c.l.file, 1234), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "temporary file {tmp} is not a regular file"},
		{"temporary file is a symlink", func(t *testing.T, c *setup) {
			writeFile(t, filepath.Dir(c.l.file), "b1.status", c.s.Encode())
			c.s = nil
			if err := os.Symlink(c.l.outside, TempPath(c.l.file, 1234)); err != nil {
				t.Fatal(err)
			}
		}, "temporary file {tmp} is not a regular file"},
		{"legacy temporary file is a directory", func(t *testing.T, c *setup) {
			writeFile(t, filepath.Dir(c.l.file), "b1.status", c.s.Encode())
			c.s = nil
			if err := os.Mkdir(LegacyTempPath(c.l.file), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "temporary file {legacy} is not a regular file"},
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
		{"target is a symlink", func(t *testing.T, c *setup) {
			link := filepath.Join(c.l.root, "b1link")
			if err := os.Symlink(c.l.target, link); err != nil {
				t.Fatal(err)
			}
			c.s.Directories[0].Path = link
		}, "is a symlink"},
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
		}, "does not look like a WAL or tablespace directory"},
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
		{"the target holds backup_manifest", func(t *testing.T, c *setup) {
			writeFile(t, c.l.target, "backup_manifest", []byte("{}"))
		}, "may have completed without recording it"},
		{"failed, the target holds backup_manifest", func(t *testing.T, c *setup) {
			c.s = withProgress(failedStatus(true))
			c.s.Directories = c.l.status().Directories
			writeFile(t, c.l.target, "backup_manifest", []byte("{}"))
		}, "check it with pg_verifybackup"},
		{"tar format with more than the target", func(t *testing.T, c *setup) {
			c.s.Format = "tar"
		}, "tar-format run records only its target"},
		{"a created DIRECTORY and its tombstone both exist", func(t *testing.T, c *setup) {
			if err := os.Mkdir(c.l.tombstone(c.l.wal, c.s), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "both exist"},
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
		}, "checked again after renaming the created directories"},
		{"a tombstone name taken after the judgement", func(t *testing.T, c *setup) {
			tomb := c.l.tombstone(c.l.wal, c.s)
			c.opts = []Option{between(func(step string) {
				if step == "judged" {
					if err := os.Mkdir(tomb, 0o755); err != nil {
						t.Fatal(err)
					}
				}
			})}
			t.Cleanup(func() { os.Remove(tomb) })
		}, "cannot rename {wal} out of the way"},
	}
	// These rules are checked only when removing for real.
	wetOnly := map[string]bool{"the check after the rename finds a user": true, "a tombstone name taken after the judgement": true}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := makeLayout(t)
			c := &setup{l: l, s: l.status(), procs: deadOnDB1()}
			tc.modify(t, c)
			if c.s != nil {
				l.write(t, c.s)
			}
			if c.file == "" {
				c.file = l.file
			}
			want := strings.NewReplacer("{target}", l.target, "{tmp}", TempPath(l.file, 1234), "{legacy}", LegacyTempPath(l.file), "{wal}", l.wal).Replace(tc.want)
			// (The tombstone name taken by the test is no change.)
			taken := filepath.Base(l.tombstone(l.wal, l.status()))
			notTaken := func(e string) bool { return strings.HasPrefix(e, taken) }
			before := slices.DeleteFunc(tree(t, l.root), notTaken)
			for _, dry := range []bool{true, false} {
				if dry && wetOnly[tc.name] {
					continue
				}
				rm := RemoveIfDead(t.Context(), c.file, dry, append([]Option{WithProcesses(c.procs)}, c.opts...)...)
				if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, want) {
					t.Fatalf("dry run %v: exit %d, refused %q, error %q; want refused with %q", dry, rm.ExitCode, rm.Refused, rm.Error, want)
				}
				if manifest := strings.Contains(tc.name, "backup_manifest"); rm.HoldsManifest != manifest {
					t.Fatalf("dry run %v: HoldsManifest %t, want %t", dry, rm.HoldsManifest, manifest)
				}
				after := slices.DeleteFunc(tree(t, l.root), notTaken)
				if diff := cmp.Diff(before, after); diff != "" {
					t.Fatalf("dry run %v: the tree changed (-before +after):\n%s", dry, diff)
				}
			}
		})
	}
}

// TestRemoveRealFiles: the real status files, put outside the directories
// they record: a completed one is never removed, one without DIRECTORY
// lines or with none (-D -, --target) is refused, and one whose recorded
// directories are all gone (they are not on this machine) leaves only
// itself to remove.
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
			path := writeFile(t, t.TempDir(), statusName, data)
			// The run is dead on its host, whichever that is.
			procs := realUsers{machineWithUsers{fakeProcesses: fakeProcesses{host: s.Host}}}
			rm := RemoveIfDead(t.Context(), path, false, WithProcesses(procs))
			var want string
			switch {
			case s.State == StateCompleted:
				want = "a completed backup is never removed"
			case !s.Progress:
				want = "no DIRECTORY lines"
			case len(s.Directories) == 0:
				want = "records no directory"
			}
			if want != "" {
				if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, want) {
					t.Fatalf("exit %d refused %q, want %q", rm.ExitCode, rm.Refused, want)
				}
				if _, err := os.Stat(path); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, d := range s.Directories {
				if _, err := os.Lstat(d.Path); err == nil {
					t.Skipf("%s exists on this machine", d.Path)
				}
			}
			if rm.ExitCode != ExitRemoved || len(rm.Steps) != len(s.Directories)+1 {
				t.Fatalf("exit %d refused %q error %q steps %+v", rm.ExitCode, rm.Refused, rm.Error, rm.Steps)
			}
			for _, st := range rm.Steps[:len(s.Directories)] {
				if !st.Missing || !st.Done {
					t.Errorf("step %+v: want missing and done", st)
				}
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the status file is still there: %v", err)
			}
		})
	}
}

// TestRemoveRealDirectories: a dead run's target, --waldir and tablespace
// directory are removed (the tablespace directory, which existed, emptied
// and kept), then its temporary files (FILE.PID.tmp of the pid the status
// file records, and the legacy FILE.tmp) and status file, and nothing else
// is touched: not another backup next to it, nor its status file, not
// another pid's temporary file, not a file outside, not what the symlinks
// in the target point to before their turn. The dry run before changes
// nothing and plans the same.
func TestRemoveRealDirectories(t *testing.T) {
	for _, state := range []State{StateInProgress, StateFailed} {
		t.Run(state.String(), func(t *testing.T) {
			l, _ := layoutOfDeadRun(t, state)
			// A temporary file the run did not rename, one an earlier
			// writer left under the legacy name, and another run's.
			writeFile(t, filepath.Dir(l.file), "b1.status.1234.tmp", []byte("BACKUP STATUS FORMAT: 1\nSTA"))
			writeFile(t, filepath.Dir(l.file), "b1.status.tmp", []byte("BACKUP STATUS FORMAT: 1\nST"))
			writeFile(t, filepath.Dir(l.file), "b1.status.999.tmp", []byte("another run's"))
			procs := realUsers{deadOnDB1()}
			before := tree(t, l.root)

			dry := RemoveIfDead(t.Context(), l.file, true, WithProcesses(procs))
			if dry.ExitCode != ExitRemoved || dry.Refused != "" || !dry.DryRun {
				t.Fatalf("dry run: exit %d refused %q", dry.ExitCode, dry.Refused)
			}
			if diff := cmp.Diff(before, tree(t, l.root)); diff != "" {
				t.Fatalf("the dry run changed the tree:\n%s", diff)
			}
			wantSteps := []RemoveStep{{Path: l.target, Created: true}, {Path: l.wal, Created: true}, {Path: l.ts},
				{Path: TempPath(l.file, 1234), File: StepTempFile}, {Path: LegacyTempPath(l.file), File: StepTempFile},
				{Path: l.file, File: StepStatusFile}}
			if diff := cmp.Diff(wantSteps, dry.Steps); diff != "" {
				t.Fatalf("dry-run steps (-want +got):\n%s", diff)
			}

			rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(procs))
			if rm.ExitCode != ExitRemoved || rm.Refused != "" || rm.Error != "" {
				t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
			}
			for _, st := range rm.Steps {
				if !st.Done || st.Kept != "" {
					t.Errorf("step not done: %+v", st)
				}
			}
			if !strings.Contains(rm.Over, "pid 1234 is gone") {
				t.Errorf("over: %q", rm.Over)
			}
			want := append(treeAfterRemoval(), "status/b1.status.999.tmp "+fmt.Sprintf("%x", "another run's"))
			sort.Strings(want)
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

// TestRemoveLongStatusName: a status file whose name is so long that
// FILE.PID.tmp could not be a file name (an earlier writer's, whose
// FILE.tmp still is) is removed with its legacy temporary file, not
// refused.
func TestRemoveLongStatusName(t *testing.T) {
	l := makeLayout(t)
	l.file = filepath.Join(l.root, "status", strings.Repeat("s", maxNameLen-len(TempSuffix)))
	writeFile(t, filepath.Dir(l.file), filepath.Base(l.file), l.status().Encode())
	legacy := writeFile(t, filepath.Dir(l.file), filepath.Base(LegacyTempPath(l.file)), []byte("BACKUP STATUS FORMAT: 1\n"))
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}))
	if rm.ExitCode != ExitRemoved {
		t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	for _, p := range []string{l.file, legacy, l.target} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v", p, err)
		}
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
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}))
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
	if _, err := os.Lstat(l.file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("status file: %v", err)
	}
}

// TestRemoveMissingDirectory: a recorded directory already gone is
// nothing to do, not a refusal; so are all of them, which leaves the
// status file to remove.
func TestRemoveMissingDirectory(t *testing.T) {
	l := makeLayout(t)
	if err := os.RemoveAll(l.wal); err != nil {
		t.Fatal(err)
	}
	l.write(t, l.status())
	rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}))
	if rm.ExitCode != ExitRemoved || !rm.Steps[1].Missing {
		t.Fatalf("exit %d refused %q steps %+v", rm.ExitCode, rm.Refused, rm.Steps)
	}
	if _, err := os.Stat(l.target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("target: %v", err)
	}

	l = makeLayout(t)
	for _, d := range []string{l.target, l.wal, l.ts} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	l.write(t, l.status())
	rm = RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}))
	if rm.ExitCode != ExitRemoved || !rm.Steps[0].Missing || !rm.Steps[2].Missing || rm.Steps[3].File != StepStatusFile {
		t.Fatalf("all gone: exit %d refused %q steps %+v", rm.ExitCode, rm.Refused, rm.Steps)
	}
	if _, err := os.Lstat(l.file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("status file: %v", err)
	}
}

// TestRemoveOtherHostLease: a run written on another host is removed once
// its status file stayed the same while watched for the lease on this
// machine's clock, whatever the times it records; a file rewritten
// meanwhile is a live run.
func TestRemoveOtherHostLease(t *testing.T) {
	for _, state := range []State{StateInProgress, StateFailed} {
		t.Run(state.String(), func(t *testing.T) {
			l, s := layoutOfDeadRun(t, state)
			procs := realUsers{machineWithUsers{fakeProcesses: fakeProcesses{host: "db2"}}}
			if state == StateInProgress {
				// A live run, its clock right or hours behind the reader's.
				for _, lag := range []time.Duration{0, 5 * time.Hour} {
					s.UpdateTime = s.UpdateTime.Add(-lag)
					l.write(t, s)
					before := tree(t, l.root)
					rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(procs), WithLease(time.Hour), leaseWatch(rewriteOnce(t, l)))
					if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "rewrote it and is alive") {
						t.Fatalf("writer %s behind, rewritten within the lease: exit %d refused %q", lag, rm.ExitCode, rm.Refused)
					}
					if after := tree(t, l.root); len(after) != len(before) {
						t.Fatalf("writer %s behind: the tree changed:\n%s", lag, cmp.Diff(before, after))
					}
				}
			}
			l.write(t, s)
			rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(procs), WithLease(time.Hour), leaseWatch(nil))
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
// status file as a live run does: a later UPDATE TIME, more bytes.
func rewriteOnce(t *testing.T, l backupLayout) func() {
	calls := 0
	return func() {
		if calls++; calls != 2 {
			return
		}
		data, err := os.ReadFile(l.file)
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

// TestRemoveResumes: a removal killed at any step leaves what a second
// removal over the same status file finishes: created directories at
// their tombstones (renamed, partly emptied), directories gone, and the
// temporary or status file renamed to its tombstone.
func TestRemoveResumes(t *testing.T) {
	type crash func(t *testing.T, l backupLayout)
	renameTo := func(t *testing.T, from, to string) {
		t.Helper()
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	removeAll := func(t *testing.T, paths ...string) {
		t.Helper()
		for _, p := range paths {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		crash   crash
		resumed []int // the steps found at their tombstones
	}{
		{"after renaming the target", func(t *testing.T, l backupLayout) {
			renameTo(t, l.target, l.tombstone(l.target, l.status()))
		}, []int{0}},
		{"after renaming both created directories", func(t *testing.T, l backupLayout) {
			renameTo(t, l.target, l.tombstone(l.target, l.status()))
			renameTo(t, l.wal, l.tombstone(l.wal, l.status()))
		}, []int{0, 1}},
		{"while emptying", func(t *testing.T, l backupLayout) {
			tomb := l.tombstone(l.target, l.status())
			renameTo(t, l.target, tomb)
			renameTo(t, l.wal, l.tombstone(l.wal, l.status()))
			removeAll(t, filepath.Join(tomb, "base"), filepath.Join(l.ts, "PG_18_202506291"))
		}, []int{0, 1}},
		{"after removing a tombstone", func(t *testing.T, l backupLayout) {
			removeAll(t, l.target, filepath.Join(l.ts, "PG_18_202506291"))
			renameTo(t, l.wal, l.tombstone(l.wal, l.status()))
			removeAll(t, filepath.Join(l.tombstone(l.wal, l.status()), "archive_status"))
		}, []int{1}},
		{"after removing the directories", func(t *testing.T, l backupLayout) {
			removeAll(t, l.target, l.wal, filepath.Join(l.ts, "PG_18_202506291"))
		}, nil},
		{"after renaming the temporary file", func(t *testing.T, l backupLayout) {
			removeAll(t, l.target, l.wal, filepath.Join(l.ts, "PG_18_202506291"))
			renameTo(t, TempPath(l.file, 1234), l.tombstone(TempPath(l.file, 1234), l.status()))
		}, []int{3}},
		{"after renaming the status file", func(t *testing.T, l backupLayout) {
			removeAll(t, l.target, l.wal, filepath.Join(l.ts, "PG_18_202506291"), TempPath(l.file, 1234))
			renameTo(t, l.file, l.tombstone(l.file, l.status()))
		}, []int{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := makeLayout(t)
			l.write(t, l.status())
			writeFile(t, filepath.Dir(l.file), "b1.status.1234.tmp", []byte("BACKUP STATUS FORMAT: 1\n"))
			tc.crash(t, l)
			before := tree(t, l.root)
			dry := RemoveIfDead(t.Context(), l.file, true, WithProcesses(realUsers{deadOnDB1()}))
			if dry.ExitCode != ExitRemoved {
				t.Fatalf("dry run: exit %d refused %q", dry.ExitCode, dry.Refused)
			}
			if diff := cmp.Diff(before, tree(t, l.root)); diff != "" {
				t.Fatalf("the dry run changed the tree:\n%s", diff)
			}
			var resumed []int
			for i, st := range dry.Steps {
				if st.Resumed {
					resumed = append(resumed, i)
					if !strings.Contains(st.String(), "where an interrupted removal had renamed it") {
						t.Errorf("step %d: %s", i, st)
					}
				}
			}
			if !slices.Equal(resumed, tc.resumed) {
				t.Errorf("steps found at their tombstones: %v, want %v (%+v)", resumed, tc.resumed, dry.Steps)
			}
			rm := RemoveIfDead(t.Context(), l.file, false, WithProcesses(realUsers{deadOnDB1()}))
			if rm.ExitCode != ExitRemoved {
				t.Fatalf("exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
			}
			want := treeAfterRemoval()
			if diff := cmp.Diff(want, tree(t, l.root)); diff != "" {
				t.Fatalf("after the second removal (-want +got):\n%s", diff)
			}
		})
	}
}
