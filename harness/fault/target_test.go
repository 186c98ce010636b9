package fault

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestBackupChild: among a wrapper's children, the pg_basebackup that
// runs the backup, not the `pg_basebackup --version` the wrapper asks
// first, nor a child of another program or one gone.
func TestBackupChild(t *testing.T) {
	cmdlines := map[int][]string{
		10: {"/pg/bin/pg_basebackup", "--version"},
		11: {"/bin/sh", "-c", "pg_basebackup -D x"},
		12: {"/pg/bin/pg_basebackup", "-D", "/t/target", "--verbose"},
	}
	cmdline := func(pid int) []string { return cmdlines[pid] }
	for _, tc := range []struct {
		kids []int
		want int
	}{
		{[]int{10, 11, 12}, 12},
		{[]int{10}, 0},
		{[]int{13, 12}, 12}, // 13 gone: no command line
		{nil, 0},
	} {
		if got := backupChild(tc.kids, cmdline); got != tc.want {
			t.Errorf("children %v: got %d, want %d", tc.kids, got, tc.want)
		}
	}
}

// TestSignalTarget: which pid each target signals, without a wrapper
// (pg_basebackup is the pid the trial started) and with one whose
// pg_basebackup child is not there.
func TestSignalTarget(t *testing.T) {
	done := make(chan struct{})
	close(done)
	plain := &Target{PID: 4242, Done: done}
	// A wrapper whose run has ended: no child to wait for.
	wrapped := &Target{PID: 4242, Done: done, Wrapped: true}
	for _, tc := range []struct {
		t    *Target
		to   SignalTo
		pid  int
		what string
	}{
		{plain, ToPID, 4242, "pg_basebackup 4242"},
		{plain, ToBackup, 4242, "pg_basebackup 4242"},
		{plain, ToGroup, -4242, "process group 4242"},
		{wrapped, ToPID, 4242, "the wrapper 4242"},
		{wrapped, ToBackup, 0, "the wrapper 4242's child"},
		{wrapped, ToGroup, -4242, "process group 4242"},
	} {
		pid, what := tc.t.signalTarget(tc.to)
		if pid != tc.pid || !strings.Contains(what, tc.what) {
			t.Errorf("wrapped %t, %s: pid %d %q, want %d %q", tc.t.Wrapped, tc.to, pid, what, tc.pid, tc.what)
		}
	}
	if _, err := wrapped.Signal(ToBackup, syscall.SIGTERM); !errors.Is(err, errNoProcess) {
		t.Errorf("signal to a wrapper's absent pg_basebackup: %v, want errNoProcess", err)
	}
}

// TestSignalPlans: the plans that signal name their target as the
// registry makes them.
func TestSignalPlans(t *testing.T) {
	want := map[string]SignalTo{"kill": ToPID, "term": ToPID, "int": ToPID,
		"kill-backup": ToBackup, "term-backup": ToBackup, "kill-group": ToGroup, "term-group": ToGroup}
	for name, to := range want {
		f, err := ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if sf, ok := f.(signalFault); !ok || sf.to != to {
			t.Errorf("plan %s: %#v, want a signal to %s", name, f, to)
		}
	}
}

// TestThreadsChildren: a child started from a thread other than the main
// one (as the wrapper starts pg_basebackup, from a locked thread) is
// found, which /proc/PID/task/PID/children alone would miss.
func TestThreadsChildren(t *testing.T) {
	started := make(chan *exec.Cmd)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		c := exec.Command("sleep", "30")
		if err := c.Start(); err != nil {
			started <- nil
			return
		}
		started <- c
		c.Wait()
	}()
	c := <-started
	if c == nil {
		t.Skip("cannot start sleep")
	}
	defer c.Process.Kill()
	if got := threadsChildren(os.Getpid()); !slices.Contains(got, c.Process.Pid) {
		t.Errorf("children of every thread %v, want %d among them", got, c.Process.Pid)
	}
}
