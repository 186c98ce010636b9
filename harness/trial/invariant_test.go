package trial

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

func ptr(n int) *int { return &n }

func completed(durable string) StatusFile {
	return StatusFile{Present: true, Valid: true, State: "completed", Durable: durable, ClaimsCompleted: true}
}

func TestCheckFlagsViolations(t *testing.T) {
	synced := scenario.Defaults()
	unsynced := scenario.Defaults()
	unsynced.Sync = false
	stdout := scenario.Defaults()
	stdout.Format, stdout.WALMethod, stdout.Stdout = "tar", "fetch", true
	readOnly := scenario.Defaults()
	readOnly.ReadOnlyFile = true
	readOnlyTar := readOnly
	readOnlyTar.Format = "tar"
	readOnlyNoSync := readOnly
	readOnlyNoSync.Sync = false
	good := &oracle.Verdict{Complete: true}
	bad := &oracle.Verdict{Complete: false, Reason: "start: WAL ends before end of online backup"}
	cases := []struct {
		name string
		rec  Record
		sc   scenario.Scenario
		want []string
	}{
		{"clean run", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("yes"), Oracle: good}, synced, nil},
		{"killed in progress", Record{StatusFile: true, Exit: Exit{Code: -1, Signal: "killed"}, Status: StatusFile{Present: true, Valid: true, State: "in progress"}}, synced, nil},
		{"killed after completion", Record{StatusFile: true, Exit: Exit{Code: -1, Signal: "killed"}, Status: completed("yes"), Oracle: good}, synced, nil},
		{"error exit failed", Record{StatusFile: true, Exit: Exit{Code: 1}, Status: StatusFile{Present: true, Valid: true, State: "failed"}}, synced, nil},
		{"completed but incomplete", Record{StatusFile: true, Exit: Exit{Code: -1, Signal: "killed"}, Status: completed("yes"), Oracle: bad}, synced, []string{InvCompletedVerified}},
		{"completed unverified", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("yes")}, synced, []string{InvCompletedVerified}},
		{"exit 0 in progress", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: StatusFile{Present: true, Valid: true, State: "in progress"}, Oracle: good}, synced, []string{InvExit0Completed}},
		{"exit 0 no file", Record{StatusFile: true, Exit: Exit{Code: 0}, Oracle: good}, synced, []string{InvExit0Completed}},
		{"error exit completed", Record{StatusFile: true, Exit: Exit{Code: 1}, Status: completed("yes"), Oracle: good}, synced, []string{InvErrorNotCompleted}},
		{"torn completed", Record{StatusFile: true, Exit: Exit{Code: -1, Signal: "killed"}, Status: StatusFile{Present: true, ClaimsCompleted: true, Error: "checksum"}}, synced, []string{InvNotTorn}},
		{"durable under no-sync", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("yes"), Oracle: good}, unsynced, []string{InvDurable}},
		{"not durable with sync", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("no"), Oracle: good}, synced, []string{InvDurable}},
		{"stock build: no status invariants", Record{StatusFile: false, Exit: Exit{Code: 0}, Oracle: bad}, synced, nil},
		{"hung is not exit 0", Record{StatusFile: true, Exit: Exit{Code: 0, Hung: true}, Status: StatusFile{Present: true, Valid: true, State: "in progress"}}, synced, nil},
		// -D -: nothing written to standard output is synced.
		{"stdout not durable", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("no"), Oracle: good}, stdout, nil},
		{"stdout claims durable", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("yes"), Oracle: good}, stdout, []string{InvDurable}},
		// A file of mode 0400 in a plain backup is synced through a
		// read-only descriptor: the backup is durable, and DURABLE: no is
		// wrong. In a tar archive it is only bytes.
		{"read-only file synced, durable", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("yes"), Oracle: good}, readOnly, nil},
		{"read-only file synced, not durable", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("no"), Oracle: good}, readOnly, []string{InvDurable}},
		{"read-only file synced, --no-sync", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("yes"), Oracle: good}, readOnlyNoSync, []string{InvDurable}},
		{"read-only file in a tar backup", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("yes"), Oracle: good}, readOnlyTar, nil},
		{"read-only file in a tar backup not durable", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("no"), Oracle: good}, readOnlyTar, []string{InvDurable}},
		// Exit 0 over a status file that cannot say completed, with the
		// warning that says so: the status file could not be written,
		// the exit code is the signal. Without the warning, or over an
		// invalid file, it is still a violation.
		{"exit 0 warned, no file", Record{StatusFile: true, StatusUnsaid: true, Exit: Exit{Code: 0}, Oracle: good}, synced, nil},
		{"exit 0 warned, in progress", Record{StatusFile: true, StatusUnsaid: true, Exit: Exit{Code: 0}, Status: StatusFile{Present: true, Valid: true, State: "in progress"}, Oracle: good}, synced, nil},
		{"exit 0 warned, invalid", Record{StatusFile: true, StatusUnsaid: true, Exit: Exit{Code: 0}, Status: StatusFile{Present: true, Error: "checksum"}, Oracle: good}, synced, []string{InvNotTorn}},
		{"exit 0 not warned, in progress", Record{StatusFile: true, Exit: Exit{Code: 0}, Status: StatusFile{Present: true, Valid: true, State: "in progress"}, Oracle: good}, synced, []string{InvExit0Completed}},
		{"error exit warned, no file", Record{StatusFile: true, StatusUnsaid: true, Exit: Exit{Code: 1}}, synced, nil},
		// --remove-if-dead --dry-run while the run's group outlived the
		// process started: it must refuse.
		{"orphans, removal refused", Record{StatusFile: true, Exit: Exit{Code: -1, Signal: "killed"}, Status: StatusFile{Present: true, Valid: true, State: "in progress"},
			Orphans: Orphans{Alive: true, PIDs: []int{7}, RemoveExit: ptr(status.ExitRefused)}}, synced, nil},
		{"orphans, removal allowed", Record{StatusFile: true, Exit: Exit{Code: -1, Signal: "killed"}, Status: StatusFile{Present: true, Valid: true, State: "in progress"},
			Orphans: Orphans{Alive: true, PIDs: []int{7}, RemoveExit: ptr(status.ExitRemoved)}}, synced, []string{InvOrphanNotRemoved}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, v := range Check(&c.rec, c.sc) {
				got = append(got, v.Invariant)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("violations %v, want %v", got, c.want)
			}
		})
	}
}

func statusText(state string, extra ...string) string {
	body := "BACKUP STATUS FORMAT: 1\nSTATUS: " + state + "\nSTART TIME: 2026-11-25 09:18:00 UTC\nPID: 1\nHOST: h\nLABEL: l\n" +
		"PROGRAM VERSION: pg_basebackup (PostgreSQL) 18.6\nFORMAT: plain\nWAL METHOD: stream\nSYNC: on\n" + strings.Join(extra, "")
	return body + fmt.Sprintf("CHECKSUM: %08X\n", crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)))
}

const completedExtra = "START WAL LOCATION: 0/2000028\nSTART TIMELINE: 1\nSYSTEM IDENTIFIER: 7441234567890123456\n" +
	"END WAL LOCATION: 0/2000100\nEND TIME: 2026-11-25 09:20:00 UTC\nDURABLE: yes\n"

func TestStatusReaders(t *testing.T) {
	for name, r := range map[string]StatusReader{"harness/status": DefaultStatusReader(), "local": LocalStatusReader()} {
		t.Run(name, func(t *testing.T) { testStatusReader(t, r) })
	}
}

func testStatusReader(t *testing.T, r StatusReader) {
	dir := t.TempDir()
	p := filepath.Join(dir, "backup_status")
	if sf := r.Read(p); sf.Present {
		t.Fatalf("absent file read as %+v", sf)
	}
	ok := statusText("completed", completedExtra)
	os.WriteFile(p, []byte(ok), 0o644)
	if sf := r.Read(p); !sf.Valid || sf.State != "completed" || sf.Durable != "yes" {
		t.Fatalf("valid file read as %+v", sf)
	}
	for name, text := range map[string]string{
		"truncated":   ok[:len(ok)-5],
		"no checksum": ok[:strings.Index(ok, "CHECKSUM")],
		"damaged":     strings.Replace(ok, "PID: 1", "PID: 2", 1),
		"bad state":   statusText("done"),
	} {
		os.WriteFile(p, []byte(text), 0o644)
		sf := r.Read(p)
		if sf.Valid || !sf.Present || sf.Error == "" {
			t.Errorf("%s: read as %+v", name, sf)
		}
		rec := &Record{StatusFile: true, Status: sf, Exit: Exit{Code: -1, Signal: "killed"}}
		if vs := Check(rec, scenario.Defaults()); len(vs) != 1 || vs[0].Invariant != InvNotTorn {
			t.Errorf("%s: violations %v", name, vs)
		}
	}
}

// TestPhaseOrderViolation: status file samples that broke the writer's
// order over any run are a phases-forward violation.
func TestPhaseOrderViolation(t *testing.T) {
	r := &Record{StatusFile: true, Exit: Exit{Code: 1}, PhaseOrder: "phase went back from syncing to receiving data"}
	vs := Check(r, scenario.Scenario{Sync: true})
	if len(vs) != 1 || vs[0].Invariant != InvPhasesForward {
		t.Fatalf("violations %+v, want one %s", vs, InvPhasesForward)
	}
	r.PhaseOrder = ""
	if vs := Check(r, scenario.Scenario{Sync: true}); len(vs) != 0 {
		t.Fatalf("violations %+v for samples in order", vs)
	}
}

// TestCheckStatusFault: an I/O error on the status file alone must leave
// a run that exits 0 with a backup the oracle accepts; a plan that never
// struck, or another plan, is not judged by it.
func TestCheckStatusFault(t *testing.T) {
	good, bad := &oracle.Verdict{Complete: true}, &oracle.Verdict{Reason: "missing base/1/1259"}
	struck := func(exit int, v *oracle.Verdict) Record {
		r := Record{StatusFile: true, Exit: Exit{Code: exit}, Oracle: v}
		r.Fault.Plan, r.Fault.Fired, r.Fault.Detail = scenario.PlanStatusFileIOError, true, "EIO on fsync of backup_status.* at #2"
		return r
	}
	notFired := struck(1, nil)
	notFired.Fault.Fired = false
	other := struck(1, nil)
	other.Fault.Plan = scenario.PlanEIOFsync
	for _, c := range []struct {
		name string
		rec  Record
		want int
	}{
		{"exit 0, backup accepted", struck(0, good), 0},
		{"error exit", struck(1, nil), 1},
		{"killed", Record{StatusFile: true, Exit: Exit{Code: -1, Signal: "killed"}, Fault: struck(0, nil).Fault}, 1},
		{"exit 0, backup rejected", struck(0, bad), 1},
		{"exit 0, not judged", struck(0, nil), 1},
		{"never struck", notFired, 0},
		{"another plan", other, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			vs := checkStatusFault(&c.rec)
			if len(vs) != c.want || (len(vs) > 0 && vs[0].Invariant != InvStatusFaultHarmless) {
				t.Errorf("violations %+v, want %d of %s", vs, c.want, InvStatusFaultHarmless)
			}
		})
	}
}

// TestLiveRemoved: a build with a status file removed a live run when
// --remove-if-dead did not refuse while orphans lived, or while the stop
// plan held the run stopped (or changed the file); a stock record never
// says so (its clean-up is rm -rf, counted by the report).
func TestLiveRemoved(t *testing.T) {
	stop := func(exit int, intact bool) fault.Injection {
		return fault.Injection{Stop: &fault.StopObservation{Stopped: true, RemoveExit: exit, TargetIntact: intact}}
	}
	for _, c := range []struct {
		name string
		rec  Record
		want bool
	}{
		{"nothing asked", Record{StatusFile: true}, false},
		{"orphans, refused", Record{StatusFile: true, Orphans: Orphans{Alive: true, RemoveExit: ptr(status.ExitRefused)}}, false},
		{"orphans, removable", Record{StatusFile: true, Orphans: Orphans{Alive: true, RemoveExit: ptr(status.ExitRemoved)}}, true},
		{"orphans, removal failed half way", Record{StatusFile: true, Orphans: Orphans{Alive: true, RemoveExit: ptr(status.ExitRemoveFailed)}}, true},
		{"stopped, refused", Record{StatusFile: true, Fault: stop(status.ExitRefused, true)}, false},
		{"stopped, removed", Record{StatusFile: true, Fault: stop(status.ExitRemoved, false)}, true},
		{"stopped, refused but changed", Record{StatusFile: true, Fault: stop(status.ExitRefused, false)}, true},
		{"stock, stopped", Record{Fault: stop(0, true)}, false},
	} {
		if got := c.rec.LiveRemoved(); got != c.want {
			t.Errorf("%s: LiveRemoved %t, want %t", c.name, got, c.want)
		}
	}
}
