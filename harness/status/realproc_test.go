package status

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/proc/proctest"
)

// fakeWriter starts a process named pg_basebackup (a copy of sleep) with
// the given arguments, in dir if not empty; it is killed when the test ends.
func fakeWriter(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	return proctest.StartSleeper(t, WriterName, dir, args...)
}

// ownNamespace returns opts, and, when the test runs in a PID namespace
// other than the host's (a container), a Processes that reads /proc without
// the namespace check: there the check never calls a run dead, but the
// test's processes are in the test's own namespace.
func ownNamespace(t *testing.T, opts ...Option) []Option {
	t.Helper()
	if ns, err := (Procfs{}).PIDNamespace(); err == nil && ns == InitialPIDNamespace {
		return opts
	}
	t.Log("not in the host's PID namespace: reading /proc without the namespace check")
	return append([]Option{WithProcesses(oneNamespace{})}, opts...)
}

// oneNamespace is Procfs without PIDNamespaces.
type oneNamespace struct{}

func (oneNamespace) Hostname() (string, error)            { return Procfs{}.Hostname() }
func (oneNamespace) Process(pid int) (ProcessInfo, error) { return Procfs{}.Process(pid) }
func (oneNamespace) DirUsers(dirs []string, ids map[FileID]bool, pid int) ([]DirUser, error) {
	return Procfs{}.DirUsers(dirs, ids, pid)
}

// statusBeside makes the target directory dir and writes s as its status
// file next to it (outside it, as --status-file must be), returning the
// file's path.
func statusBeside(t *testing.T, dir string, s *Status) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, filepath.Dir(dir), filepath.Base(dir)+".status", s.Encode())
}

// liveStatus is an "in progress" file of pid on this host, receiving data,
// just updated, recording dir as its created target.
func liveStatus(t *testing.T, pid int, dir string) *Status {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	s := withProgress(inProgressStatus(true))
	s.Host, s.PID = host, pid
	s.StartTime = time.Now().UTC().Truncate(time.Second)
	s.UpdateTime = s.StartTime
	s.Directories = []Directory{{Path: dir, Created: true}}
	return s
}

// waitState waits until /proc says pid is stopped (or not).
func waitState(t *testing.T, pid int, stopped bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := Procfs{}.Process(pid)
		if err != nil {
			t.Fatal(err)
		}
		if info.Stopped == stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: stopped is %v, want %v", pid, info.Stopped, stopped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStoppedWriter: a SIGSTOPped pg_basebackup is stalled (exit 5) however
// fresh its file, never dead or completed, and its directory is not
// removed; after SIGCONT it is running again.
func TestStoppedWriter(t *testing.T) {
	cmd := fakeWriter(t, "", "60")
	root := t.TempDir()
	dir := filepath.Join(root, "b1")
	s := liveStatus(t, cmd.Process.Pid, dir)
	file := statusBeside(t, dir, s)
	now := at(s.UpdateTime.Add(time.Second))

	if r := Check(file, ownNamespace(t, now)...); r.Verdict != Running || r.ExitCode != 3 {
		t.Fatalf("before SIGSTOP: %v (%s)", r.Verdict, r.Summary)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, cmd.Process.Pid, true)
	for i := 0; i < 3; i++ {
		r := Check(file, ownNamespace(t, now)...)
		if r.Verdict != Stalled || r.ExitCode != 5 || r.Final || !strings.Contains(r.Summary, "stopped") {
			t.Fatalf("stopped: %v exit %d final %v (%s)", r.Verdict, r.ExitCode, r.Final, r.Summary)
		}
	}
	before := tree(t, root)
	rm := RemoveIfDead(t.Context(), file, false, ownNamespace(t)...)
	if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "the run is alive") {
		t.Fatalf("remove while stopped: exit %d refused %q", rm.ExitCode, rm.Refused)
	}
	if after := tree(t, root); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("tree changed: %v -> %v", before, after)
	}

	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitState(t, cmd.Process.Pid, false)
	if r := Check(file, ownNamespace(t, now)...); r.Verdict != Running || r.ExitCode != 3 {
		t.Fatalf("after SIGCONT: %v (%s)", r.Verdict, r.Summary)
	}

	// Dead now: removed.
	cmd.Process.Kill()
	cmd.Wait()
	rm = RemoveIfDead(t.Context(), file, false, ownNamespace(t)...)
	if rm.ExitCode != ExitRemoved {
		t.Fatalf("remove after kill: exit %d refused %q error %q", rm.ExitCode, rm.Refused, rm.Error)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s: %v", dir, err)
	}
}

// TestRemoveReusedPid: the recorded pid belongs to a live pg_basebackup
// that started at another tick since boot than START TICKS: another run
// reused the pid, so the recorded run is dead and its directory is
// removed. The same file with a matching start time is refused, and so is
// one without START TICKS whose START TIME is before the process started
// (the wall clock may have been set forward since).
func TestRemoveReusedPid(t *testing.T) {
	cmd := fakeWriter(t, "", "60")
	dir := filepath.Join(t.TempDir(), "b1")
	s := liveStatus(t, cmd.Process.Pid, dir)
	file := statusBeside(t, dir, s)
	if rm := RemoveIfDead(t.Context(), file, false, ownNamespace(t)...); rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "alive") {
		t.Fatalf("matching start: exit %d refused %q", rm.ExitCode, rm.Refused)
	}

	// Later by the wall clock alone: it may have been set forward.
	s.StartTime = s.StartTime.Add(-time.Minute)
	s.UpdateTime = s.StartTime
	statusBeside(t, dir, s)
	if rm := RemoveIfDead(t.Context(), file, false, ownNamespace(t)...); rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "set forward") {
		t.Fatalf("later by the clock: exit %d refused %q", rm.ExitCode, rm.Refused)
	}
	// START TICKS of another tick: reused.
	info, err := Procfs{}.Process(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	s.StartTicks = info.StartTicks - 1
	statusBeside(t, dir, s)
	rm := RemoveIfDead(t.Context(), file, false, ownNamespace(t)...)
	if rm.ExitCode != ExitRemoved || !strings.Contains(rm.Over, "pid was reused") {
		t.Fatalf("reused pid: exit %d refused %q over %q", rm.ExitCode, rm.Refused, rm.Over)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s: %v", dir, err)
	}
	if cmd.ProcessState != nil {
		t.Fatal("the process that reused the pid was touched")
	}
}

// TestRemoveRefusedForDirUsers: a process whose working directory is in
// the target, and a pg_basebackup left in the process group of a dead run
// (the WAL streaming child), make the removal refuse.
func TestRemoveRefusedForDirUsers(t *testing.T) {
	t.Run("working directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "b1")
		writeFile(t, dir, "PG_VERSION", []byte("18\n"))
		other := fakeWriter(t, dir, "60")
		s := liveStatus(t, 1, dir)
		s.PID = other.Process.Pid + 100000 // no such process
		file := statusBeside(t, dir, s)
		rm := RemoveIfDead(t.Context(), file, false, ownNamespace(t)...)
		if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "working directory") {
			t.Fatalf("exit %d refused %q", rm.ExitCode, rm.Refused)
		}
	})
	t.Run("orphaned WAL child", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("needs Linux /proc")
		}
		bin := proctest.Sleeper(t, WriterName)
		// A parent in its own process group forks a pg_basebackup and
		// is killed: the child lives on in the parent's group.
		parent := exec.Command("sh", "-c", `"$0" 60 & echo $! ; wait`, bin)
		parent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := parent.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := parent.Start(); err != nil {
			t.Skipf("no sh: %v", err)
		}
		pgid := parent.Process.Pid
		t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
		buf := make([]byte, 32)
		if _, err := out.Read(buf); err != nil {
			t.Fatal(err)
		}
		parent.Process.Kill()
		parent.Wait()

		dir := filepath.Join(t.TempDir(), "b1")
		s := liveStatus(t, pgid, dir)
		file := statusBeside(t, dir, s)
		rm := RemoveIfDead(t.Context(), file, false, ownNamespace(t)...)
		if rm.ExitCode != ExitRefused || !strings.Contains(rm.Refused, "WAL streaming child") {
			t.Fatalf("exit %d refused %q over %q", rm.ExitCode, rm.Refused, rm.Over)
		}
	})
}
