package wrapper

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Identity is what the status file records, on Linux, to say what its PID
// means: the boot, the PID namespace, and when the process started.
type Identity struct {
	// BootID is /proc/sys/kernel/random/boot_id.
	BootID string
	// PIDNamespace is the link /proc/self/ns/pid, "pid:[INODE]".
	PIDNamespace string
	// StartTicks is field 22 of /proc/self/stat: clock ticks since boot.
	StartTicks uint64
}

// SelfIdentity reads the identity of this process, as patch 0004 of the
// series does for pg_basebackup; what cannot be read stays empty.
func SelfIdentity() Identity {
	var id Identity
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		id.BootID = strings.TrimSpace(string(b))
	}
	if l, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		id.PIDNamespace = l
	}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		if st, err := parseStat(string(b)); err == nil {
			id.StartTicks = st.startTicks
		}
	}
	return id
}

// procStat is what the wrapper reads of /proc/PID/stat.
type procStat struct {
	name       string
	state      string
	ppid, pgid int
	startTicks uint64
}

// parseStat reads /proc/PID/stat: the name is between the first '(' and
// the last ')', the other fields follow, separated by spaces.
func parseStat(s string) (procStat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("short stat %q", s)
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	ticks, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	return procStat{name: s[open+1 : end], state: f[0], ppid: ppid, pgid: pgid, startTicks: ticks}, nil
}

// SetProcessName sets this process's name (Linux comm, what
// /proc/PID/stat shows) to name, cut to 15 bytes.
func SetProcessName(name string) error {
	if len(name) > 15 {
		name = name[:15]
	}
	if err := os.WriteFile("/proc/self/comm", []byte(name), 0); err != nil {
		return fmt.Errorf("set process name: %w", err)
	}
	return nil
}
