package main

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/status"
)

// TestMain runs this test binary as pgbb-run when PGBB_RUN_MAIN is set,
// so that the tests run the command as its own process.
func TestMain(m *testing.M) {
	if os.Getenv("PGBB_RUN_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// layout is one run of pgbb-run over the stand-in pg_basebackup.
type layout struct {
	dir, statusFile, target, pidFile string
}

func newLayout(t *testing.T, mode string) *layout {
	t.Helper()
	l := &layout{dir: t.TempDir()}
	l.statusFile = filepath.Join(l.dir, "b1.status")
	l.target = filepath.Join(l.dir, "b1")
	l.pidFile = filepath.Join(l.dir, "pid")
	control := filepath.Join(l.dir, "pg_control")
	b := binary.LittleEndian.AppendUint64(nil, 7441234567890123456)
	if err := os.WriteFile(control, binary.LittleEndian.AppendUint32(b, 1800), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKE_MODE", mode)
	t.Setenv("FAKE_CONTROL", control)
	t.Setenv("FAKE_STATUS", l.statusFile)
	t.Setenv("FAKE_PIDFILE", l.pidFile)
	t.Setenv("FAKE_WALCHILD", "1")
	t.Setenv("PGBB_RUN_MAIN", "1")
	return l
}

// command is pgbb-run over the stand-in, through sh so that pgbb-run
// starts as no process group's leader, in a session without a terminal.
func (l *layout) command(t *testing.T, flags ...string) *exec.Cmd {
	t.Helper()
	fake, err := filepath.Abs("../../wrapper/testdata/pg_basebackup")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-c", `"$@"; exit $?`, "sh", self, "--status-file=" + l.statusFile}, flags...)
	args = append(args, "--", fake, "-D", l.target)
	c := exec.Command("sh", args...)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return c
}

// waitRunning waits until the status file records the target directory
// and the WAL child started, and returns the status.
func (l *layout) waitRunning(t *testing.T) *status.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s, err := status.ReadFile(l.statusFile)
		_, werr := os.Stat(l.pidFile + ".walchild")
		if err == nil && len(s.Directories) > 0 && werr == nil {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the run never recorded its directory and started its WAL child")
	return nil
}

// groupMembers lists the live processes of process group pgid.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func killGroup(pgid int) {
	for _, p := range groupMembers(pgid) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// comm is the name of process pid.
func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestSIGTERM: the signal reaches pg_basebackup and its WAL child (which
// ignores SIGTERM and is killed after --stop-timeout), the target the run
// created is removed, and the file says failed with the signal.
func TestSIGTERM(t *testing.T) {
	l := newLayout(t, "sleep")
	c := l.command(t, "--stop-timeout=1s")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	s := l.waitRunning(t)
	t.Cleanup(func() { killGroup(s.PID) })
	if r := status.Check(l.statusFile); r.Verdict != status.Running {
		t.Errorf("while running: verdict %v (%s), want running", r.Verdict, r.Summary)
	}
	if err := syscall.Kill(s.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(c.Wait()); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %d, want 143", code)
	}
	if m := groupMembers(s.PID); len(m) != 0 {
		t.Errorf("processes left in the run's group: %v", m)
	}
	if _, err := os.Stat(l.target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target not removed: %v", err)
	}
	f, err := status.ReadFile(l.statusFile)
	if err != nil {
		t.Fatal(err)
	}
	if f.State != status.StateFailed || f.Reason != "terminated by signal SIGTERM while receiving data" {
		t.Errorf("status %v, reason %q", f.State, f.Reason)
	}
	if r := status.Check(l.statusFile); r.ExitCode != 2 {
		t.Errorf("pgbb-status exit %d, want 2", r.ExitCode)
	}
}

// TestSIGKILL: pgbb-run killed outright. pg_basebackup dies with it (the
// parent-death signal); its WAL child lives on in the process group of
// the recorded PID, where --remove-if-dead sees it and refuses until it
// is gone.
func TestSIGKILL(t *testing.T) {
	l := newLayout(t, "sleep")
	c := l.command(t)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	s := l.waitRunning(t)
	t.Cleanup(func() { killGroup(s.PID) })
	if got := comm(s.PID); got != status.WriterName {
		t.Errorf("pgbb-run's process name %q, want %q", got, status.WriterName)
	}
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	b, err := os.ReadFile(l.pidFile + ".sleep")
	if err != nil {
		t.Fatal(err)
	}
	main, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(main, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if syscall.Kill(main, 0) == nil && comm(main) == status.WriterName {
		t.Errorf("pg_basebackup %d outlived pgbb-run", main)
	}
	ctx := context.Background()
	rm := status.RemoveIfDead(ctx, l.statusFile, true)
	if rm.Refused == "" {
		t.Fatalf("--remove-if-dead would remove while the WAL child lives: %+v", rm)
	}
	t.Logf("refused while the WAL child lives: %s", rm.Refused)
	killGroup(s.PID)
	for len(groupMembers(s.PID)) > 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	rm = status.RemoveIfDead(ctx, l.statusFile, false)
	if rm.Refused != "" || rm.Error != "" {
		t.Fatalf("--remove-if-dead after the WAL child is gone: refused %q, error %q", rm.Refused, rm.Error)
	}
	if _, err := os.Stat(l.target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target not removed: %v", err)
	}
}

// TestSecondSignal: a second signal ends pgbb-run at once.
func TestSecondSignal(t *testing.T) {
	l := newLayout(t, "sleep")
	c := l.command(t, "--stop-timeout=30s")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	s := l.waitRunning(t)
	t.Cleanup(func() { killGroup(s.PID) })
	start := time.Now()
	_ = syscall.Kill(s.PID, syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	_ = syscall.Kill(s.PID, syscall.SIGINT)
	if code := exitCode(c.Wait()); code != 128+int(syscall.SIGINT) {
		t.Errorf("exit %d, want 130", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to exit after the second signal", d)
	}
}

func TestUsage(t *testing.T) {
	var out strings.Builder
	for _, args := range [][]string{{}, {"--status-file=x"}, {"--", "pg_basebackup"}} {
		if code := run(context.Background(), args, nil, &out, &out, nil); code != 64 {
			t.Errorf("%q: exit %d, want 64", args, code)
		}
	}
}

// TestPgBasebackupKilledAlone: pg_basebackup ended by a signal someone
// else sent it alone (an OOM kill, `pkill pg_basebackup`) while its WAL
// child lives on (this one ignores SIGTERM). pgbb-run must not wait for
// the WAL child forever: it stops what is left of the run's group
// (SIGTERM, then SIGKILL after --stop-timeout), removes what the run
// created and writes failed, naming the signal.
func TestPgBasebackupKilledAlone(t *testing.T) {
	l := newLayout(t, "sleep")
	c := l.command(t, "--stop-timeout=1s")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	s := l.waitRunning(t)
	t.Cleanup(func() { killGroup(s.PID) })
	b, err := os.ReadFile(l.pidFile + ".sleep")
	if err != nil {
		t.Fatal(err)
	}
	main, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(main, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	var code int
	select {
	case err := <-exited:
		code = exitCode(err)
	case <-time.After(20 * time.Second):
		killGroup(s.PID)
		<-exited
		t.Fatal("pgbb-run still running 20 s after pg_basebackup was killed (waiting for the WAL child?)")
	}
	if code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want 143", code)
	}
	if m := groupMembers(s.PID); len(m) != 0 {
		t.Errorf("processes left in the run's group: %v", m)
	}
	if _, err := os.Stat(l.target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target not removed: %v", err)
	}
	f, err := status.ReadFile(l.statusFile)
	if err != nil {
		t.Fatal(err)
	}
	if f.State != status.StateFailed || !strings.Contains(f.Reason, "pg_basebackup terminated by signal SIGTERM") {
		t.Errorf("status %v, reason %q", f.State, f.Reason)
	}
}
