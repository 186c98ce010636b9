package trial

import (
	"fmt"
	"hash/fnv"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// InvFieldsTrue: every field of a valid status file whose truth the trial
// knows says it: PID is the process the trial started, HOST this machine,
// START TIME between that process's start and its exit (whatever time
// zone it ran in), BOOT ID and PID NAMESPACE (Linux) this machine's boot
// and the trial's namespace, FORMAT, WAL METHOD and SYNC the scenario's, and each
// DIRECTORY one the run was given (-D first, then -T mappings and
// --waldir), all of them once the file says completed (none with -D -),
// UPDATE INTERVAL the one it was given; and, followed while the run
// lasts, BYTES RECEIVED never beyond what the server sent and UPDATE TIME
// rewritten every interval while data arrives (progress.go).
const InvFieldsTrue = "status-fields-true"

// trialZones are the time zones trials run pg_basebackup in: UTC and
// zones whose offsets are not whole hours, far east and west, with and
// without daylight saving time.
var trialZones = []string{"UTC", "America/St_Johns", "Asia/Kathmandu", "Pacific/Chatham", "America/Los_Angeles",
	"Australia/Lord_Howe", "Europe/Berlin", "Asia/Tokyo"}

// TrialTZ is the time zone (TZ) of the trial with this seed: seeded, and
// drawn apart from the trial's other random choices so that adding it
// changed none of them.
func TrialTZ(seed uint64) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "tz-%d", seed)
	return trialZones[h.Sum64()%uint64(len(trialZones))]
}

// ReaderTZ is the time zone the trial's built pgbb-status runs in: another
// than TrialTZ's, half the list away, so that a reader and a writer in
// different zones are the rule.
func ReaderTZ(seed uint64) string {
	i := slices.Index(trialZones, TrialTZ(seed))
	return trialZones[(i+len(trialZones)/2)%len(trialZones)]
}

// fieldTruth is what a trial knows of its run.
type fieldTruth struct {
	// target is -D; dirs the -T mapping directories; wal the --waldir
	// ("" without one). stdout says the run was given -D - instead, and
	// fills no directory.
	target string
	dirs   []string
	wal    string
	stdout bool
	// pid is the process started, between started and ended.
	pid            int
	started, ended time.Time
	scenario       scenario.Scenario
}

// check reads the status file at path and returns what in it is not true;
// nothing for a file that is missing or invalid (other invariants judge
// those).
func (ft fieldTruth) check(path string) []string {
	st, err := status.ReadFile(path)
	if err != nil {
		return nil
	}
	var wrong []string
	bad := func(format string, args ...any) { wrong = append(wrong, fmt.Sprintf(format, args...)) }
	if st.PID != ft.pid {
		bad("PID %d, but the trial started pid %d", st.PID, ft.pid)
	}
	if host, err := os.Hostname(); err == nil && st.Host != host {
		bad("HOST %q, but this machine is %q", st.Host, host)
	}
	wrong = append(wrong, checkPIDIdentity(st)...)
	from, to := ft.started.Truncate(time.Second).Add(-time.Second), ft.ended.Add(time.Second)
	if !st.StartTime.IsZero() && (st.StartTime.Before(from) || st.StartTime.After(to)) {
		bad("START TIME %s, but the process ran from %s to %s (UTC)", st.StartTime.Format(time.DateTime),
			ft.started.UTC().Format(time.DateTime), ft.ended.UTC().Format(time.DateTime))
	}
	if st.Format != ft.scenario.Format || st.WALMethod != ft.scenario.WALMethod || st.Sync != ft.scenario.Sync {
		bad("FORMAT %s, WAL METHOD %s, SYNC %t, but the run was given %s, %s, %t", st.Format, st.WALMethod, st.Sync,
			ft.scenario.Format, ft.scenario.WALMethod, ft.scenario.Sync)
	}
	if want := int(ft.scenario.UpdateInterval() / time.Second); st.Progress && st.UpdateInterval != want {
		bad("UPDATE INTERVAL %d, but the run was given %d", st.UpdateInterval, want)
	}
	if st.Progress {
		wrong = append(wrong, ft.checkDirectories(st)...)
	}
	return wrong
}

// checkPIDIdentity compares BOOT ID and PID NAMESPACE with this machine's
// boot and the trial's PID namespace, where pg_basebackup runs (its PID is
// the one the trial started): on Linux, where the series records both,
// a file without them, or with others, misleads a reader in another
// namespace or boot.
func checkPIDIdentity(st *status.Status) []string {
	if runtime.GOOS != "linux" {
		return nil
	}
	var wrong []string
	boot, err := status.Procfs{}.BootID()
	if err == nil && st.BootID != boot {
		wrong = append(wrong, fmt.Sprintf("BOOT ID %q, but this machine's is %q", st.BootID, boot))
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err == nil && st.PIDNamespace != ns {
		wrong = append(wrong, fmt.Sprintf("PID NAMESPACE %q, but pg_basebackup ran in %q", st.PIDNamespace, ns))
	}
	return wrong
}

// checkDirectories compares the DIRECTORY lines with the directories the
// run was given.
func (ft fieldTruth) checkDirectories(st *status.Status) []string {
	var wrong []string
	if ft.stdout {
		for _, d := range st.Directories {
			wrong = append(wrong, fmt.Sprintf("DIRECTORY %s, but the run wrote to standard output (-D -) and filled no directory", d.Path))
		}
		return wrong
	}
	given := append([]string{}, ft.dirs...)
	if ft.wal != "" {
		given = append(given, ft.wal)
	}
	seen := map[string]bool{}
	for i, d := range st.Directories {
		switch {
		case d.Unprintable:
			wrong = append(wrong, fmt.Sprintf("DIRECTORY %d unprintable, but every directory given is printable", i+1))
		case i == 0 && d.Path != ft.target:
			wrong = append(wrong, fmt.Sprintf("first DIRECTORY %s, but the target is %s", d.Path, ft.target))
		case i > 0 && !slices.Contains(given, d.Path):
			wrong = append(wrong, fmt.Sprintf("DIRECTORY %s was never given to the run (given: %v)", d.Path, given))
		case seen[d.Path]:
			wrong = append(wrong, fmt.Sprintf("DIRECTORY %s twice", d.Path))
		}
		seen[d.Path] = true
	}
	if st.State == status.StateCompleted {
		if len(st.Directories) == 0 {
			wrong = append(wrong, "completed without a DIRECTORY line for the target "+ft.target)
		}
		for _, g := range given {
			if !seen[g] {
				wrong = append(wrong, fmt.Sprintf("completed, but the DIRECTORY %s it filled is not recorded", g))
			}
		}
	}
	return wrong
}
