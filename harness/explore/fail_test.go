package explore

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/status"
)

// A failing run, as the series ends one after SIGTERM during streaming:
// the WAL streaming child (pid 8) is stopped, the directories' contents
// removed (unlinks not synced), then "failed" written, synced and
// renamed. The tests drive the model in memory, correctly and with the
// mistakes the rules must catch.

const (
	runPID   = 7
	childPID = 8
)

// statusText returns a sealed status file of the run whose layer is
// mounted at mp.
func statusText(state, mp, reason string, pid int) []byte {
	lines := []string{
		"BACKUP STATUS FORMAT: 1", "STATUS: " + state, "START TIME: 2026-12-01 20:14:20 UTC",
		fmt.Sprintf("PID: %d", pid), "HOST: explorer-test", "LABEL: pg_basebackup base backup",
		"PROGRAM VERSION: pg_basebackup (PostgreSQL) 18.6", "FORMAT: plain", "WAL METHOD: stream", "SYNC: on",
		"UPDATE INTERVAL: 5", "DIRECTORY: existing " + mp + "/target", "DIRECTORY: existing " + mp + "/ts1",
		"START WAL LOCATION: 0/6000028", "START TIMELINE: 1", "SYSTEM IDENTIFIER: 7714431495870913250",
	}
	switch state {
	case "in progress":
		lines = append(lines, "PHASE: receiving data", "UPDATE TIME: 2026-12-01 20:14:21 UTC", "BYTES RECEIVED: 4096")
	case "failed":
		lines = append(lines, "END TIME: 2026-12-01 20:14:22 UTC", "REASON: "+reason)
	}
	body := strings.Join(lines, "\n") + "\n"
	return fmt.Appendf([]byte(body), "CHECKSUM: %08X\n", crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)))
}

// failingRun journals a run that fails after SIGTERM, with one mistake
// (or none), on a layer mounted at mp.
func failingRun(t *testing.T, mp, mistake string) *powerfs.Journal {
	w := &writer{t: t, fs: powerfs.New(powerfs.Journaled()), c: powerfs.Caller{PID: runPID},
		tmp: status.TempPath("status/backup_status", runPID)}
	for _, d := range []string{"target", "ts1", "status"} {
		w.fs.MkdirAll(d, 0o700)
	}
	writeStatus := func(data []byte, sync bool) {
		w.create(w.tmp, data)
		if sync {
			w.fsync(w.tmp)
		}
		w.rename(w.tmp, "status/backup_status")
		if sync {
			w.fsync("status")
		}
	}
	pid := runPID
	if mistake == "other-pid" {
		pid = 99
	}
	recorded := mp
	if mistake == "records-other-dirs" {
		recorded = mp + "-elsewhere"
	}
	writeStatus(statusText("in progress", recorded, "", pid), true)
	w.mkdir("target/base")
	w.mkdir("target/pg_wal")
	w.mkdir("ts1/PG_18_202506291")
	w.create("target/base/1", []byte("relation one"))
	w.create("ts1/PG_18_202506291/2", []byte("tablespace file"))
	child := &writer{t: t, fs: w.fs, c: powerfs.Caller{PID: childPID}}
	child.create("target/pg_wal/000000010000000000000006", make([]byte, 4096))
	// What was synced before the failure (the sync walk, up to an I/O
	// error) survives a power loss, and the clean-up's unlinks bring it
	// back.
	for _, p := range []string{"target/base/1", "target/base", "ts1/PG_18_202506291/2", "ts1/PG_18_202506291", "ts1", "target"} {
		w.fsync(p)
	}
	w.fs.Mark(MarkFailing)
	reason := "terminated by signal SIGTERM while receiving data"
	if mistake == "wrong-reason" {
		reason = "error while receiving data"
	}
	failed := statusText("failed", recorded, reason, pid)
	if mistake == "failed-before-wal-child" {
		writeStatus(failed, true)
	}
	child.fs.Write(child.c, child.ino("target/pg_wal/000000010000000000000006"), 4096, []byte("last WAL"))
	if mistake == "failed-before-cleanup" {
		writeStatus(failed, true)
	}
	// rmtree of the target's contents, not synced; the tablespace
	// directories are left as they are ("changes to tablespace
	// directories will not be undone").
	for _, p := range []string{"target/base/1", "target/pg_wal/000000010000000000000006"} {
		dir, name := w.split(p)
		if e := w.fs.Unlink(w.c, dir, name); e != 0 {
			t.Fatalf("unlink %s: %v", p, e)
		}
	}
	for _, p := range []string{"target/base", "target/pg_wal"} {
		dir, name := w.split(p)
		if e := w.fs.Rmdir(w.c, dir, name); e != 0 {
			t.Fatalf("rmdir %s: %v", p, e)
		}
	}
	switch mistake {
	case "failed-before-wal-child", "failed-before-cleanup", "no-failed":
	case "failed-not-synced":
		writeStatus(failed, false)
	default:
		writeStatus(failed, true)
	}
	j, err := w.fs.Journal(map[string]string{"mountpoint": mp, "target": mp + "/target",
		"tablespaces": mp + "/ts1", "status": mp + "/status/backup_status"})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// exploreFailing explores a failing run with the reader's real
// --remove-if-dead on each shape of state.
func exploreFailing(t *testing.T, j *powerfs.Journal, k int) *Result {
	t.Helper()
	res, err := Explore(context.Background(), j, Config{Status: "status/backup_status", K: k, From: -1,
		Failing: &Failing{Reason: "SIGTERM", Remover: &TreeRemover{Root: j.Meta["mountpoint"], Status: "status/backup_status"}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestFailingRunRightOrder: the series' order breaks no rule in any crash
// state, and the states whose directories hold something are those the
// reader's --remove-if-dead clears (the unsynced unlinks bring files back
// under a durable "failed").
func TestFailingRunRightOrder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--remove-if-dead on the materialised states acts as their owner: needs root")
	}
	mp := filepath.Join(t.TempDir(), "mnt")
	j := failingRun(t, mp, "")
	if from := FailStart(j); from == 0 || j.Log[from].PID != childPID {
		t.Fatalf("the failure starts at %d: %v", from, j.Log[from])
	}
	for k := 1; k <= 4; k++ {
		res := exploreFailing(t, j, k)
		if res.ViolationCount > 0 || res.UndecidedCount > 0 {
			t.Fatalf("K=%d: %d violations, %d undecided: %+v %v", k, res.ViolationCount, res.UndecidedCount, res.Violations, res.Fail.UndecidedWhy)
		}
		f := res.Fail
		if f.RunPID != runPID || f.WALChildOps != 3 || f.FailedVisible == 0 || f.FinalState != "failed" || f.Removable == 0 || f.Judged == 0 {
			t.Fatalf("K=%d: %+v", k, f)
		}
		if k >= 2 && f.Removable <= f.Judged {
			t.Fatalf("K=%d: the shapes judged were not shared: %+v", k, f)
		}
	}
	if _, err := os.Lstat(mp); !os.IsNotExist(err) {
		t.Fatalf("the materialised state is left at %s: %v", mp, err)
	}
}

// TestFailingRunMistakes: each mistake breaks its rule.
func TestFailingRunMistakes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--remove-if-dead on the materialised states acts as their owner: needs root")
	}
	for mistake, rule := range map[string]string{
		"failed-before-cleanup":   RuleFailedIsLast,
		"failed-before-wal-child": RuleFailedAfterWALChild,
		"failed-not-synced":       RuleFailedAtExit,
		"no-failed":               RuleFailedAtExit,
		"wrong-reason":            RuleFailedReason,
		"other-pid":               RuleThisRun,
		"records-other-dirs":      RuleRetryNotBlocked,
	} {
		t.Run(mistake, func(t *testing.T) {
			res := exploreFailing(t, failingRun(t, filepath.Join(t.TempDir(), "mnt"), mistake), 2)
			if testing.Verbose() && len(res.Violations) > 0 {
				t.Logf("%s: %s", res.Violations[0].Rule, res.Violations[0].Message)
			}
			if res.ByRule[rule] == 0 {
				t.Errorf("no %s violation; found %v %+v", rule, res.ByRule, res.Violations)
			}
		})
	}
}

// TestFailingRunLiveView: "failed" written before the clean-up is caught
// in the live view too, where a reader of the running system sees it,
// not only on disk after a crash.
func TestFailingRunLiveView(t *testing.T) {
	j := failingRun(t, "/nonexistent/mnt", "failed-before-cleanup")
	res, err := Explore(context.Background(), j, Config{Status: "status/backup_status", K: 1, From: -1, Failing: &Failing{Reason: "SIGTERM"}})
	if err != nil {
		t.Fatal(err)
	}
	var live bool
	for _, v := range res.Violations {
		live = live || (v.Rule == RuleFailedIsLast && strings.HasSuffix(v.State, "(live)"))
	}
	if !live || res.UndecidedCount == 0 || res.Fail.UndecidedWhy["no remover"] == 0 {
		t.Fatalf("live %v, undecided %d %v: %+v", live, res.UndecidedCount, res.Fail.UndecidedWhy, res.Violations)
	}
}

// TestRetryBlockedWithoutStatusFile: directories that hold something
// beside no status file at all block a retry (the series could have
// prevented it: it writes its first version before creating anything).
func TestRetryBlockedWithoutStatusFile(t *testing.T) {
	w := &writer{t: t, fs: powerfs.New(powerfs.Journaled()), c: powerfs.Caller{PID: runPID}}
	w.fs.MkdirAll("target", 0o700)
	w.fs.MkdirAll("status", 0o700)
	w.fs.Mark(MarkFailing)
	w.create("target/base", []byte("x"))
	w.fsync("target/base")
	w.fsync("target")
	j, err := w.fs.Journal(map[string]string{"mountpoint": "/nonexistent/mnt", "target": "/nonexistent/mnt/target"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Explore(context.Background(), j, Config{Status: "status/backup_status", K: 1, From: -1, Failing: &Failing{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ByRule[RuleRetryNotBlocked] == 0 || res.ByRule[RuleFailedAtExit] != 1 {
		t.Fatalf("%v %+v", res.ByRule, res.Violations)
	}
}
