package status

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// InitialPIDNamespace is the inode number of the initial PID namespace, the
// host's (PROC_PID_INIT_INO in the kernel's include/linux/proc_ns.h). It is
// fixed; every other PID namespace gets a number of its own.
const InitialPIDNamespace uint64 = 0xEFFFFFFC

// PIDNamespaces is implemented by Processes that know PID namespaces. The
// liveness check asks it before it calls a run on this host dead, because a
// pid is only a number within one PID namespace: a reader outside the
// writer's namespace sees another process, or none, under the recorded pid.
// A Processes without it is trusted to see pids as the writer does.
type PIDNamespaces interface {
	// PIDNamespace returns the inode number of the PID namespace whose
	// pids Process describes (InitialPIDNamespace on the host). An error
	// means it cannot be told.
	PIDNamespace() (uint64, error)
	// NestedWriters returns the live pg_basebackup processes that run in
	// a PID namespace nested in that one and have pid there (at any level
	// below). An error means it cannot be told.
	NestedWriters(pid int) ([]NestedProcess, error)
}

// NestedProcess is a process that runs in a PID namespace nested in the
// reader's.
type NestedProcess struct {
	// PID is its pid in the reader's namespace.
	PID int `json:"pid"`
	// NSpid is its pid in each namespace it is in, the reader's first
	// and its own last.
	NSpid []int `json:"nspid"`
	// StartTime is when it started, on the wall clock as it is now.
	StartTime time.Time `json:"start_time"`
	// StartTicks and TicksAsOwn are as in ProcessInfo.
	StartTicks uint64 `json:"start_ticks,omitzero"`
	TicksAsOwn bool   `json:"ticks_as_own,omitempty"`
	// Namespace is its PID namespace, "pid:[INODE]", or empty if this
	// reader may not see it (another user's process, to a reader other
	// than root).
	Namespace string `json:"pid_namespace,omitempty"`
}

// Boots is implemented by Processes that know which boot of the machine
// they describe. A pid names a process only during one boot, so the
// liveness check compares it with the BOOT ID of the status file.
type Boots interface {
	// BootID returns the boot ID of the running kernel. An error means
	// it cannot be told.
	BootID() (string, error)
}

var _ Boots = Procfs{}

// BootID reads /proc/sys/kernel/random/boot_id, which Linux sets anew at
// every boot.
func (p Procfs) BootID() (string, error) {
	data, err := os.ReadFile(filepath.Join(p.root(), "sys", "kernel", "random", "boot_id"))
	if err != nil {
		return "", fmt.Errorf("boot ID: %w", err)
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

var _ PIDNamespaces = Procfs{}

// PIDNamespace reads the link /proc/self/ns/pid, "pid:[INODE]". It
// resolves only if the reader has a pid in the namespace of that /proc,
// so on the host it proves both are the initial namespace.
func (p Procfs) PIDNamespace() (uint64, error) {
	path := filepath.Join(p.root(), "self", "ns", "pid")
	link, err := os.Readlink(path)
	if err != nil {
		return 0, fmt.Errorf("PID namespace: %w", err)
	}
	n, err := parsePIDNamespace(link)
	if err != nil {
		return 0, fmt.Errorf("PID namespace: %s: %w", path, err)
	}
	return n, nil
}

// parsePIDNamespace returns the inode number of a PID namespace link,
// "pid:[INODE]", as /proc/PID/ns/pid links to it and the status file
// records it in PID NAMESPACE.
func parsePIDNamespace(link string) (uint64, error) {
	v, ok := strings.CutPrefix(link, "pid:[")
	v, ok2 := strings.CutSuffix(v, "]")
	n, err := parseDecimal(v, 64)
	if !ok || !ok2 || err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a PID namespace (pid:[INODE])", link)
	}
	return n, nil
}

// NestedWriters reads /proc/PID/stat and, for every live pg_basebackup,
// the NSpid line of /proc/PID/status: one pid per namespace level, the
// reader's first. A pg_basebackup whose status cannot be read or has no
// NSpid (Linux before 4.1), and a /proc that hides other users' processes
// from a reader other than root, are errors.
func (p Procfs) NestedWriters(pid int) ([]NestedProcess, error) {
	root := p.root()
	if err := hiddenProcesses(p.Root); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var found []NestedProcess
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n <= 0 {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		st, err := parseProcStat(data)
		if err != nil || st.name != WriterName || st.state == "Z" || st.state == "X" || st.state == "x" {
			continue
		}
		nspid, err := readNSpid(filepath.Join(root, e.Name(), "status"))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // gone meanwhile
		case err != nil:
			return nil, fmt.Errorf("%s pid %d: %w", WriterName, n, err)
		case !nestedHas(nspid, pid):
			continue
		}
		start, err := p.startTime(st.startTicks)
		if err != nil {
			return nil, err
		}
		// Another user's namespace link is hidden from a reader other
		// than root; the caller then cannot tell which namespace it is.
		ns, _ := os.Readlink(filepath.Join(root, e.Name(), "ns", "pid"))
		found = append(found, NestedProcess{PID: n, NSpid: nspid, StartTime: start, Namespace: ns,
			StartTicks: st.startTicks, TicksAsOwn: p.sameTimeNamespace(n)})
	}
	return found, nil
}

// nestedHas says whether pid is one of the pids of nspid after the first,
// the reader's own.
func nestedHas(nspid []int, pid int) bool {
	for _, n := range nspid[1:] {
		if n == pid {
			return true
		}
	}
	return false
}

// readNSpid reads the NSpid line of a /proc/PID/status file.
func readNSpid(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		v, ok := strings.CutPrefix(line, "NSpid:")
		if !ok {
			continue
		}
		var pids []int
		for _, f := range strings.Fields(v) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("%s: NSpid %q: %w", path, v, err)
			}
			pids = append(pids, n)
		}
		if len(pids) == 0 {
			return nil, fmt.Errorf("%s: empty NSpid line", path)
		}
		return pids, nil
	}
	return nil, fmt.Errorf("%s: no NSpid line (Linux before 4.1 cannot tell PID namespaces)", path)
}

// hiddenProcesses returns an error when the real /proc (root "") is
// mounted with hidepid, which hides other users' processes from a reader
// other than root: a pg_basebackup in a container would go unseen.
func hiddenProcesses(root string) error {
	if root != "" || os.Geteuid() == 0 {
		return nil
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("cannot tell whether /proc hides processes: %w", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - TYPE SOURCE SUPEROPTIONS
		fields := strings.Fields(line)
		_, after, ok := strings.Cut(line, " - ")
		if len(fields) < 5 || fields[4] != "/proc" || !ok {
			continue
		}
		super := strings.Fields(after)
		if len(super) < 3 || super[0] != "proc" {
			continue
		}
		for opt := range strings.SplitSeq(super[2], ",") {
			if v, ok := strings.CutPrefix(opt, "hidepid="); ok && v != "0" && v != "off" {
				return fmt.Errorf("/proc is mounted with %s and this reader is not root: other users' processes cannot be seen", opt)
			}
		}
	}
	return nil
}
