package wrapper

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// LeadGroup makes this process the leader of a process group, unless it
// is one already, so that pg_basebackup and its WAL streaming child,
// which stay in that group, carry this process's pid (the status file's
// PID) as their process group: the reader looks there for a WAL child
// that outlived the run. It stays in its group, and says why in note,
// when that group is the foreground job of its terminal (a script run
// at a terminal): leaving it would keep Ctrl-C from reaching the run.
func LeadGroup() (note string, err error) {
	pid, pgrp := os.Getpid(), syscall.Getpgrp()
	if pid == pgrp {
		return "", nil
	}
	if foreground(pgrp) {
		return "process group left as it is (the terminal's foreground job): a WAL streaming child left by a killed run is not in the process group of the status file's PID, where pgbb-status looks for it", nil
	}
	if err := syscall.Setpgid(0, 0); err != nil {
		return "", err
	}
	return "", nil
}

// foreground says whether process group pgrp is the foreground job of
// this process's controlling terminal.
func foreground(pgrp int) bool {
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return false // no controlling terminal
	}
	defer tty.Close()
	fg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	return err == nil && fg == pgrp
}

// ProcessGroup is this process's process group.
func ProcessGroup() int { return syscall.Getpgrp() }

// groupMembers lists the live processes (not zombies) of process group
// pgid other than this one; with name set, only those of that name.
func groupMembers(pgid int, name string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st, err := parseStat(string(b))
		if err != nil || st.pgid != pgid || st.state == "Z" || st.state == "X" {
			continue
		}
		if name == "" || st.name == name {
			out = append(out, pid)
		}
	}
	return out
}

// signalAll sends sig to each pid; a process gone meanwhile is no error.
func signalAll(pids []int, sig syscall.Signal) {
	for _, p := range pids {
		_ = syscall.Kill(p, sig)
	}
}

// childAttr makes pg_basebackup die with the wrapper (the parent-death
// signal: the thread that starts it must stay alive as long as it runs).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// ioCounter is the sum of the characters process pid read and wrote
// (rchar and wchar of /proc/PID/io); ok is false if it cannot be read.
func ioCounter(pid int) (n uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		if k == "rchar" || k == "wchar" {
			x, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, false
			}
			n += x
		}
	}
	return n, true
}
