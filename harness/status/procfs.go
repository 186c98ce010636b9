package status

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WriterName is the process name (Linux comm) of pg_basebackup.
const WriterName = "pg_basebackup"

// Processes answers the questions the liveness check asks about the machine
// it runs on. Procfs is the real one; tests use a fake.
type Processes interface {
	// Hostname returns this machine's host name, as gethostname(2) does.
	Hostname() (string, error)
	// Process describes the process with this pid. A process that does
	// not exist is no error (Exists is false); an error means that it
	// cannot be told.
	Process(pid int) (ProcessInfo, error)
}

// ProcessInfo describes one process.
type ProcessInfo struct {
	// Exists says the pid belongs to a process, maybe a zombie.
	Exists bool `json:"exists"`
	// Zombie says the process has exited and waits to be reaped.
	Zombie bool `json:"zombie,omitempty"`
	// Name is the process name (Linux comm, at most 15 bytes).
	Name string `json:"name,omitempty"`
	// StartTime is when the process started, on the wall clock as it is
	// now (the boot time, /proc/stat btime, moves when it is set).
	StartTime time.Time `json:"start_time,omitzero"`
	// StartTicks is when the process started, in clock ticks since boot
	// (field 22 of /proc/PID/stat, as this reader sees it); 0 if unknown.
	StartTicks uint64 `json:"start_ticks,omitzero"`
	// TicksAsOwn says the process sees its start as StartTicks too, so
	// that it compares with the START TICKS it would record: it is in
	// this reader's time namespace, or the kernel has none.
	TicksAsOwn bool `json:"ticks_as_own,omitempty"`
	// Stopped says the process is stopped (state T, by SIGSTOP or job
	// control, or t, by a debugger): it makes no progress until continued.
	Stopped bool `json:"stopped,omitempty"`
	// PPID is the parent's process id, PGID the process group.
	PPID int `json:"ppid,omitempty"`
	PGID int `json:"pgid,omitempty"`
}

// errNoProcess says a pid belongs to no process.
var errNoProcess = errors.New("no such process")

// Procfs is the Processes of this Linux machine, read from /proc.
type Procfs struct {
	// Root is the proc file system, "/proc" if empty. When it is set to
	// anything else (tests), a pid missing there is taken as gone without
	// asking the kernel.
	Root string
}

var _ Processes = Procfs{}

// Hostname returns os.Hostname.
func (p Procfs) Hostname() (string, error) { return os.Hostname() }

// Process reads /proc/PID/stat: the name (field 2), the state (field 3) and
// the start time (field 22, clock ticks after boot, with the boot time from
// /proc/stat btime).
func (p Procfs) Process(pid int) (ProcessInfo, error) {
	if pid <= 0 {
		return ProcessInfo{}, fmt.Errorf("invalid pid %d", pid)
	}
	root := p.root()
	statPath := filepath.Join(root, strconv.Itoa(pid), "stat")
	data, err := os.ReadFile(statPath)
	if errors.Is(err, fs.ErrNotExist) {
		if p.Root != "" {
			return ProcessInfo{}, nil
		}
		// /proc mounted with hidepid hides other users' processes:
		// ask the kernel before calling the process gone.
		switch err := signalZero(pid); {
		case errors.Is(err, errNoProcess):
			return ProcessInfo{}, nil
		case err == nil:
			return ProcessInfo{}, fmt.Errorf("process %d exists but %s is not readable (/proc mounted with hidepid?)", pid, statPath)
		default:
			return ProcessInfo{}, fmt.Errorf("process %d: %s missing, and kill(0): %w", pid, statPath, err)
		}
	}
	if err != nil {
		return ProcessInfo{}, err
	}
	st, err := parseProcStat(data)
	if err != nil {
		return ProcessInfo{}, fmt.Errorf("%s: %w", statPath, err)
	}
	start, err := p.startTime(st.startTicks)
	if err != nil {
		return ProcessInfo{}, err
	}
	return ProcessInfo{
		Exists:     true,
		Zombie:     st.state == "Z" || st.state == "X" || st.state == "x",
		Stopped:    st.state == "T" || st.state == "t",
		Name:       st.name,
		StartTime:  start,
		StartTicks: st.startTicks,
		TicksAsOwn: p.sameTimeNamespace(pid),
		PPID:       st.ppid,
		PGID:       st.pgid,
	}, nil
}

// sameTimeNamespace says whether process pid is in this reader's time
// namespace (/proc/PID/ns/time, Linux 5.6): the kernel shows every
// process's start in ticks shifted by the reader's namespace's offset, so
// only then is it what the process saw itself. True on a kernel without
// time namespaces; false if it cannot be told (another user's process, to
// a reader other than root).
func (p Procfs) sameTimeNamespace(pid int) bool {
	mine, err := os.Readlink(filepath.Join(p.root(), "self", "ns", "time"))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	theirs, err := os.Readlink(filepath.Join(p.root(), strconv.Itoa(pid), "ns", "time"))
	return err == nil && theirs == mine
}

// root is the proc file system: Root, or "/proc".
func (p Procfs) root() string {
	if p.Root == "" {
		return "/proc"
	}
	return p.Root
}

// startTime converts a start time in clock ticks after boot (field 22 of
// /proc/PID/stat) to a time, with the boot time from /proc/stat btime.
func (p Procfs) startTime(ticks uint64) (time.Time, error) {
	root := p.root()
	boot, err := bootTime(filepath.Join(root, "stat"))
	if err != nil {
		return time.Time{}, err
	}
	hz := clockTicks(root)
	return boot.Add(time.Duration(ticks/hz)*time.Second + time.Duration(ticks%hz)*time.Second/time.Duration(hz)), nil
}

// procStat is what is read from /proc/PID/stat.
type procStat struct {
	name       string
	state      string
	ppid, pgid int
	startTicks uint64
}

// parseProcStat reads the name, state, parent, process group and start
// time (in clock ticks after boot) from the contents of /proc/PID/stat. The
// name is in parentheses and may itself hold spaces and parentheses, so the
// fields after it are found from the last ')'.
func parseProcStat(data []byte) (procStat, error) {
	s := strings.TrimSuffix(string(data), "\n")
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("no process name in %q", truncate(s, 80))
	}
	st := procStat{name: s[open+1 : end]}
	fields := strings.Fields(s[end+1:])
	// fields[0] is field 3 (state), fields[1] and [2] fields 4 and 5
	// (ppid, pgrp); field 22 (starttime) is fields[19].
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("%d fields after the name, want at least 20", len(fields))
	}
	st.state = fields[0]
	var err error
	if st.ppid, err = strconv.Atoi(fields[1]); err != nil {
		return procStat{}, fmt.Errorf("parent pid %q: %w", fields[1], err)
	}
	if st.pgid, err = strconv.Atoi(fields[2]); err != nil {
		return procStat{}, fmt.Errorf("process group %q: %w", fields[2], err)
	}
	st.startTicks, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("start time %q: %w", fields[19], err)
	}
	return st, nil
}

// bootTime reads btime from /proc/stat.
func bootTime(path string) (time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("%s: btime %q: %w", path, v, err)
			}
			return time.Unix(n, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s: no btime line", path)
}

// clockTicks is the kernel's USER_HZ, the unit of the start time in
// /proc/PID/stat: AT_CLKTCK from /proc/self/auxv, else 100, which it is on
// every architecture Linux runs on today.
func clockTicks(root string) uint64 {
	const atClkTck = 17
	word := strconv.IntSize / 8
	data, err := os.ReadFile(filepath.Join(root, "self", "auxv"))
	if err == nil && len(data)%(2*word) == 0 {
		read := func(b []byte) uint64 {
			if word == 4 {
				return uint64(binary.NativeEndian.Uint32(b))
			}
			return binary.NativeEndian.Uint64(b)
		}
		for i := 0; i+2*word <= len(data); i += 2 * word {
			k, v := read(data[i:]), read(data[i+word:])
			if k == atClkTck && v > 0 && v < 1e6 {
				return v
			}
			if k == 0 {
				break
			}
		}
	}
	return 100
}

// DirUser is a process that may still write into a backup's directories.
type DirUser struct {
	PID  int    `json:"pid"`
	Name string `json:"name"`
	// Why says what ties it to the directories.
	Why string `json:"why"`
	// WALChild says it is tied to the run only by its parent or process
	// group, which is the run's pid: it may be the WAL streaming child.
	// Then UIDs are its real, effective, saved and file-system uids
	// (/proc/PID/status; none if unknown), and StartTicks and TicksAsOwn
	// when it started, as in ProcessInfo: whether it may be the run's
	// child is the caller's to judge (RemoveIfDead: a process of the
	// status file's owner that did not start before the writer).
	WALChild   bool     `json:"wal_child,omitempty"`
	UIDs       []uint32 `json:"uids,omitempty"`
	StartTicks uint64   `json:"start_ticks,omitzero"`
	TicksAsOwn bool     `json:"ticks_as_own,omitempty"`
}

// DirUsers is implemented by Processes that can tell which processes use
// directories; RemoveIfDead refuses without it.
type DirUsers interface {
	// DirUsers returns the live processes of this machine, other than
	// the calling one (whose open handles are the remover's), whose working
	// directory or an open file is in one of dirs (resolved absolute
	// paths) or below, and, if pid > 0, the pg_basebackup processes whose
	// parent or process group is pid (DirUser.WALChild, with their uids
	// and start): the WAL streaming child that survives its parent's
	// SIGKILL may be one of them. An error means it cannot be told.
	//
	// ids, if not nil, are the identities of the directories and of
	// everything in them: a working directory or an open file that is
	// one of them counts too, whatever path leads to it there (a bind
	// mount, another mount namespace).
	DirUsers(dirs []string, ids map[FileID]bool, pid int) ([]DirUser, error)
}

// FileID is the identity of a file on this machine: its device and inode.
type FileID struct{ Dev, Ino uint64 }

var _ DirUsers = Procfs{}

// DirUsers reads /proc/PID/stat, cwd and fd/* of every process. A process
// whose cwd or fd cannot be read (another user's, when not root) is skipped
// unless it is pg_basebackup or postgres, which makes it an error.
func (p Procfs) DirUsers(dirs []string, ids map[FileID]bool, pid int) ([]DirUser, error) {
	root := p.root()
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	// known says whether the file a /proc link leads to is one of ids.
	known := func(link string) bool {
		fi, err := os.Stat(link)
		if err != nil {
			return false
		}
		id, ok := fileID(fi)
		return ok && ids[id]
	}
	inDirs := func(target string) bool {
		if !filepath.IsAbs(target) {
			return false // socket:[...], pipe:[...], anon_inode:...
		}
		target = strings.TrimSuffix(target, " (deleted)")
		for _, d := range dirs {
			if within(d, target) {
				return true
			}
		}
		return false
	}
	self := os.Getpid()
	selfExe, _ := os.Readlink("/proc/self/exe")
	var users []DirUser
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n <= 0 || n == self {
			continue // not a process, or this one (the remover's handles)
		}
		base := filepath.Join(root, e.Name())
		data, err := os.ReadFile(filepath.Join(base, "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		st, err := parseProcStat(data)
		if err != nil || st.state == "Z" || st.state == "X" || st.state == "x" {
			continue
		}
		if st.ppid == self && forkOfSelf(base, selfExe) {
			// A child of this process between fork and exec (another
			// goroutine starting a command): it holds copies of this
			// process's descriptors, the remover's own handles among
			// them, until exec closes them.
			continue
		}
		important := st.name == WriterName || st.name == "postgres"
		cwd, fds, err := processLinks(base, important)
		if err != nil && important {
			return nil, fmt.Errorf("cannot see the working directory and open files of pid %d (%s): %w", n, st.name, err)
		}
		u := DirUser{PID: n, Name: st.name, Why: usesDirs(base, cwd, fds, inDirs, known)}
		if u.Why == "" && pid > 0 && n != pid && st.name == WriterName && (st.ppid == pid || st.pgid == pid) {
			u.Why = fmt.Sprintf("a %s whose parent or process group is the run's pid %d (the WAL streaming child)", WriterName, pid)
			u.WALChild, u.StartTicks, u.TicksAsOwn = true, st.startTicks, p.sameTimeNamespace(n)
			u.UIDs = readUIDs(filepath.Join(base, "status"))
		}
		if u.Why != "" {
			users = append(users, u)
		}
	}
	return users, nil
}

// usesDirs says what ties the process at base (/proc/PID) to the
// directories: its working directory cwd, or one of its open files fds,
// in them (inDirs, by path) or one of them (known, by identity through
// the /proc link); "" if nothing.
func usesDirs(base, cwd string, fds []os.DirEntry, inDirs, known func(string) bool) string {
	if cwd != "" && (inDirs(cwd) || known(filepath.Join(base, "cwd"))) {
		return "working directory " + cwd
	}
	for _, fd := range fds {
		link := filepath.Join(base, "fd", fd.Name())
		target, err := os.Readlink(link)
		if err == nil && (inDirs(target) || (filepath.IsAbs(target) && known(link))) {
			return "open file " + target
		}
	}
	return ""
}

// readUIDs reads the real, effective, saved and file-system uids from the
// Uid line of a /proc/PID/status file; none if it cannot.
func readUIDs(path string) []uint32 {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		v, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		var uids []uint32
		for _, f := range strings.Fields(v) {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil
			}
			uids = append(uids, uint32(n))
		}
		return uids
	}
	return nil
}

// processLinks reads the working directory and the list of open files of
// the process at base (/proc/PID). A process that is gone, or whose links
// cannot be read (another user's, when not root), has none. For an
// important process an error other than its being gone is returned, but
// only after a few tries: a process that is starting or exiting can
// refuse for an instant, and a refusal makes the removal refuse.
func processLinks(base string, important bool) (string, []os.DirEntry, error) {
	var err error
	for try := range 5 {
		if try > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		var cwd string
		var fds []os.DirEntry
		if cwd, err = os.Readlink(filepath.Join(base, "cwd")); err == nil {
			fds, err = os.ReadDir(filepath.Join(base, "fd"))
		}
		switch {
		case err == nil:
			return cwd, fds, nil
		case errors.Is(err, fs.ErrNotExist):
			return "", nil, nil
		case !important:
			return "", nil, nil
		}
		if _, serr := os.Stat(filepath.Join(base, "stat")); errors.Is(serr, fs.ErrNotExist) {
			return "", nil, nil // it exited meanwhile
		}
	}
	return "", nil, err
}

// forkOfSelf says whether the process whose /proc directory is base runs
// the same executable as this one (selfExe, the link /proc/self/exe): a
// child that has not yet called exec.
func forkOfSelf(base, selfExe string) bool {
	exe, err := os.Readlink(filepath.Join(base, "exe"))
	return err == nil && selfExe != "" && exe == selfExe
}
