package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/report"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

// syncErrorScenario runs the EIO plans of the final sync under pgbb-run.
const syncErrorScenario = "testdata/wrapper-sync-errors.json"

// TestIntegrationWrapperSyncErrors runs the stock 18.6 pg_basebackup under
// pgbb-run with an EIO injected into its final sync (the power-loss
// layer's eio-on-open-during-sync and eio-on-fsync), and asserts what the
// invariants do not: that pgbb-run reports the error stock printed.
//
// Stock logs an open that fails during its sync walk and exits 0, over a
// file it never synced; pgbb-run's own sync pass then opens the file
// read-only, which the fault (an open for writing) does not hit, and
// syncs it, so a completed, durable status would be true and no invariant
// breaks. Only the watch on pg_basebackup's standard error makes it
// "failed", and it must: the REASON is the line stock printed. On an
// fsync that fails stock exits 1, and the REASON is that line too.
//
// The same campaign then runs pgbb-run built without that watch
// (testdata/no-sync-stderr-watch), on which the check must fail: it
// shows the check can. Opt in with PGBB_INTEGRATION=1; needs root and
// /dev/fuse.
func TestIntegrationWrapperSyncErrors(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") != "1" {
		t.Skip("set PGBB_INTEGRATION=1 to run real crash trials")
	}
	recs := syncErrorCampaign(t)
	reported := map[string]int{}
	for _, r := range recs {
		if err := syncErrorReported(r); err != nil {
			t.Errorf("%s (%s, %s): %v\nlog tail:\n%s", r.ID, r.Plan, r.Fault.Detail, err, r.LogTail)
		} else if stockSyncError(r.LogTail) != "" {
			reported[r.Plan]++
		}
	}
	// Without a trial where stock printed the error, the test proved
	// nothing.
	for _, plan := range []string{scenario.PlanEIOOpenSync, scenario.PlanEIOFsync} {
		if reported[plan] == 0 {
			t.Errorf("no %s trial where stock pg_basebackup printed a sync error (reported: %v)", plan, reported)
		}
	}
	t.Logf("trials whose sync error pgbb-run reported, per plan: %v", reported)

	unwatched := 0
	for _, r := range syncErrorCampaign(t, "-wrapper-patches", "testdata/no-sync-stderr-watch") {
		if err := syncErrorReported(r); err != nil {
			t.Logf("without the watch, as expected: %s (%s): %v", r.ID, r.Plan, err)
			unwatched++
		}
	}
	if unwatched == 0 {
		t.Error("pgbb-run without its watch on pg_basebackup's standard error passed the check too: the check cannot fail")
	}
}

// syncErrorCampaign runs the sync errors' scenario under pgbb-run (built
// with the extra flags' patches, if any) with seed 1, and returns the
// records of its trials whose fault fired. No invariant may break.
func syncErrorCampaign(t *testing.T, extra ...string) []*trial.Record {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	args := append([]string{"-backend", "native", "-pg", "18", "-variant", "wrapper", "-scenarios", syncErrorScenario,
		"-seed", "1", "-parallel", "1", "-out", dir}, extra...)
	start := time.Now()
	var stderr strings.Builder
	code := run(context.Background(), args, io.Discard, io.MultiWriter(os.Stderr, &stderr))
	t.Logf("pgbb-crash %s: exit %d in %s", strings.Join(args, " "), code, time.Since(start).Round(time.Second))
	if code != 0 {
		t.Fatalf("pgbb-crash: exit %d, want 0 (no invariant violated): %s", code, lastLine(stderr.String()))
	}
	recs, err := report.LoadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fired []*trial.Record
	for _, r := range recs {
		if r.Index >= 0 && r.Fault.Fired {
			fired = append(fired, r)
		}
	}
	return fired
}

// stockSyncError returns the message of the last line of a stock
// pg_basebackup in log that says a file of its final sync could not be
// opened or fsynced, "" if none does.
func stockSyncError(log string) string {
	msg := ""
	for _, l := range strings.Split(log, "\n") {
		m, ok := strings.CutPrefix(strings.TrimSpace(l), "pg_basebackup: error: ")
		if ok && (strings.HasPrefix(m, "could not open file ") || strings.HasPrefix(m, "could not fsync file ")) {
			msg = m
		}
	}
	return msg
}

// syncErrorReported checks what pgbb-run made of a sync error that stock
// printed: exit 1 and a failed status whose REASON is the message.
func syncErrorReported(r *trial.Record) error {
	msg := stockSyncError(r.LogTail)
	if msg == "" {
		return nil // the fault hit the status file, or nothing stock reports
	}
	// Stock goes on after a failed open (exit 0): pgbb-run's own
	// reason. It exits 1 on a failed fsync, in the sync walk or in the
	// manifest's durable rename after it: its last error, in that phase.
	reasonOK := func(reason string) bool {
		return reason == "error while syncing: pg_basebackup reported: "+msg
	}
	if strings.HasPrefix(msg, "could not fsync file ") {
		reasonOK = func(reason string) bool {
			return strings.HasPrefix(reason, "error while ") && strings.HasSuffix(reason, ": "+msg)
		}
	}
	switch {
	case r.Exit.Code != 1 || r.Exit.Signal != "":
		return fmt.Errorf("pgbb-run exited %+v, want 1", r.Exit)
	case !r.Status.Valid || r.Status.State != "failed":
		return fmt.Errorf("status %q (valid %v), want failed", r.Status.State, r.Status.Valid)
	case !reasonOK(r.Status.Reason):
		return fmt.Errorf("REASON %q does not report pg_basebackup's %q", r.Status.Reason, msg)
	case r.Status.Durable == "yes":
		return errors.New("DURABLE: yes")
	}
	return nil
}
