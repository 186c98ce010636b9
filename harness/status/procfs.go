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
	// StartTime is when the process started.
	StartTime time.Time `json:"start_time,omitzero"`
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
	root := p.Root
	if root == "" {
		root = "/proc"
	}
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
	name, state, ticks, err := parseProcStat(data)
	if err != nil {
		return ProcessInfo{}, fmt.Errorf("%s: %w", statPath, err)
	}
	boot, err := bootTime(filepath.Join(root, "stat"))
	if err != nil {
		return ProcessInfo{}, err
	}
	hz := clockTicks(root)
	start := boot.Add(time.Duration(ticks/hz)*time.Second + time.Duration(ticks%hz)*time.Second/time.Duration(hz))
	return ProcessInfo{
		Exists:    true,
		Zombie:    state == "Z" || state == "X" || state == "x",
		Name:      name,
		StartTime: start,
	}, nil
}

// parseProcStat reads the name, state and start time (in clock ticks after
// boot) from the contents of /proc/PID/stat. The name is in parentheses and
// may itself hold spaces and parentheses, so the fields after it are found
// from the last ')'.
func parseProcStat(data []byte) (name, state string, startTicks uint64, err error) {
	s := strings.TrimSuffix(string(data), "\n")
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", "", 0, fmt.Errorf("no process name in %q", truncate(s, 80))
	}
	name = s[open+1 : end]
	fields := strings.Fields(s[end+1:])
	// fields[0] is field 3 (state); field 22 (starttime) is fields[19].
	if len(fields) < 20 {
		return "", "", 0, fmt.Errorf("%d fields after the name, want at least 20", len(fields))
	}
	startTicks, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return "", "", 0, fmt.Errorf("start time %q: %w", fields[19], err)
	}
	return name, fields[0], startTicks, nil
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
