package fault

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SignalTo names which processes of the run a signal plan signals.
type SignalTo string

const (
	// ToPID is the process the trial started (Target.PID): pg_basebackup,
	// or the wrapper (pgbb-run) that runs it, as `kill PID`, systemd's
	// KillMode=process or Go's exec.CommandContext signal it.
	ToPID SignalTo = "pid"
	// ToBackup is the pg_basebackup process alone (Target.BackupPID): the
	// process the trial started, or with a wrapper its pg_basebackup
	// child, as an OOM killer or someone's `pkill pg_basebackup` would.
	ToBackup SignalTo = "backup"
	// ToGroup is the run's whole process group (kill -- -PID): the
	// wrapper, pg_basebackup and its WAL streaming child, as a terminal's
	// Ctrl-C or systemd's KillMode=control-group do.
	ToGroup SignalTo = "group"
)

// backupChildWait is how long BackupPID waits for a wrapper's
// pg_basebackup child to appear.
const backupChildWait = 2 * time.Second

// BackupPID returns the pid of the run's pg_basebackup: PID itself, or
// with a wrapper (Wrapped) its pg_basebackup child, waited for up to
// backupChildWait while the wrapper lives (it asks `pg_basebackup
// --version` before it starts the run); 0 when there is none.
func (t *Target) BackupPID() int {
	if !t.Wrapped {
		return t.PID
	}
	deadline := time.Now().Add(backupChildWait)
	for {
		if pid := BackupChild(t.PID); pid != 0 {
			return pid
		}
		if !time.Now().Before(deadline) {
			return 0
		}
		select {
		case <-t.Done:
			return 0
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// BackupChild returns the pid of the pg_basebackup child of the wrapper
// wrapperPID that runs the backup, without waiting; 0 when none is alive.
func BackupChild(wrapperPID int) int {
	return backupChild(threadsChildren(wrapperPID), procCmdline)
}

// threadsChildren returns the children of every thread of pid: the
// wrapper starts pg_basebackup from a thread of its own (locked to it, for
// the parent-death signal), whose children /proc lists under that thread
// only.
func threadsChildren(pid int) []int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, task := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// backupChild picks, among a wrapper's children, the pg_basebackup that
// runs the backup: not the `pg_basebackup --version` the wrapper asks
// first; 0 when none.
func backupChild(children []int, cmdline func(pid int) []string) int {
	for _, pid := range children {
		args := cmdline(pid)
		if len(args) == 0 || !strings.HasSuffix(args[0], "pg_basebackup") || slices.Contains(args[1:], "--version") {
			continue
		}
		return pid
	}
	return 0
}

// procCmdline is the command line of pid, from /proc (nil when gone).
func procCmdline(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
}

// signalTarget is the argument of kill(2) that reaches to: a pid, or
// the negated process group id; 0 when the process is not there (a
// wrapper's pg_basebackup not started or already gone). what describes
// it for the injection's detail.
func (t *Target) signalTarget(to SignalTo) (pid int, what string) {
	switch to {
	case ToGroup:
		return -t.PID, fmt.Sprintf("process group %d", t.PID)
	case ToBackup:
		if !t.Wrapped {
			return t.PID, fmt.Sprintf("pg_basebackup %d", t.PID)
		}
		pid := t.BackupPID()
		return pid, fmt.Sprintf("pg_basebackup %d (the wrapper %d's child)", pid, t.PID)
	}
	if t.Wrapped {
		return t.PID, fmt.Sprintf("the wrapper %d", t.PID)
	}
	return t.PID, fmt.Sprintf("pg_basebackup %d", t.PID)
}

// errNoProcess says the process a signal was for was not there.
var errNoProcess = errors.New("no such process at the scheduled time")

// Signal sends sig to the run's processes that to names and says what it
// signalled; errNoProcess when a wrapper's pg_basebackup was not there.
func (t *Target) Signal(to SignalTo, sig syscall.Signal) (string, error) {
	pid, what := t.signalTarget(to)
	detail := signalName(sig) + " to " + what
	if pid == 0 {
		return detail, errNoProcess
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return detail, fmt.Errorf("kill %d: %w", pid, err)
	}
	return detail, nil
}

// signalName is the name of the signals the plans send (SIGKILL), or
// Go's description of another.
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return sig.String()
}
