package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/powerfs"
)

func TestParseOptions(t *testing.T) {
	for _, bad := range [][]string{
		{"-k", "13"}, {"-ksweep", "6-1"}, {"-ksweep", "x"}, {"-materialise", "p1"},
		{"-judge"}, {"extra"},
	} {
		if _, err := parseOptions(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	o, err := parseOptions([]string{"-ksweep", "1-3"}, &bytes.Buffer{})
	if err != nil || !slices.Equal(o.ksweep, []int{1, 2, 3}) || o.k != 4 || o.from != -1 {
		t.Fatalf("%+v %v", o, err)
	}
}

// savedJournal journals a status file written to a temporary file and
// renamed, without the temporary file's fsync (a known-bad variant's
// mistake), and saves it.
func savedJournal(t *testing.T) string {
	data, err := os.ReadFile("../../status/testdata/real/0003/completed_plain_tablespace_waldir")
	if err != nil {
		t.Fatal(err)
	}
	fs := powerfs.New(powerfs.Journaled())
	fs.MkdirAll("target", 0o700)
	c := powerfs.Caller{PID: 1}
	dir, _ := fs.Lookup(powerfs.RootIno, "target")
	tmp, _ := fs.Create(c, dir.Ino, "backup_status.tmp", 0o600)
	fs.Write(c, tmp.Ino, 0, data)
	fs.Rename(c, dir.Ino, "backup_status.tmp", dir.Ino, "backup_status", 0)
	fs.Fsync(c, dir.Ino)
	j, err := fs.Journal(map[string]string{"mountpoint": "/mnt/disk", "target": "/mnt/disk/target"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "run.journal")
	if err := j.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExploreSavedJournalAndMaterialise(t *testing.T) {
	journal := savedJournal(t)
	var out bytes.Buffer
	code, err := run(context.Background(), []string{"-journal", journal, "-from", "0", "-k", "2", "-ksweep", "0-2"}, &out, &out)
	if err != nil || code != 1 || !strings.Contains(out.String(), "VIOLATION status-not-torn") {
		t.Fatalf("exit %d, %v:\n%s", code, err, out.String())
	}
	dir := filepath.Join(t.TempDir(), "state")
	out.Reset()
	code, err = run(context.Background(), []string{"-journal", journal, "-materialise", "p4", "-out", dir}, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v: %s", code, err, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "target", "backup_status")); err != nil || len(b) != 0 {
		t.Fatalf("the materialised status file holds %q, %v; want it empty (its data was never synced)", b, err)
	}
}

// TestStatusRel: the status file is the one the journal names (the run's
// --status-file, outside the target); -status wins; a journal that names
// none has the target's backup_status.
func TestStatusRel(t *testing.T) {
	j := &powerfs.Journal{JournalHeader: powerfs.JournalHeader{Meta: map[string]string{"mountpoint": "/mnt/disk",
		"target": "/mnt/disk/target", "status": "/mnt/disk/status/backup_status"}}}
	if got := statusRel(options{}, j); got != "status/backup_status" {
		t.Errorf("journal with a status file: %q", got)
	}
	if got := statusRel(options{status: "x/y"}, j); got != "x/y" {
		t.Errorf("-status: %q", got)
	}
	delete(j.Meta, "status")
	if got := statusRel(options{}, j); got != "target/backup_status" {
		t.Errorf("journal without a status file: %q", got)
	}
}

// TestScenarioExit: a clean run that broke invariants is a violation
// (exit 1) even when nothing could be explored after it; any other error
// is exit 2.
func TestScenarioExit(t *testing.T) {
	var stderr bytes.Buffer
	boom := errors.New("no journaled clean run on the power-loss layer among 2 records")
	for _, tc := range []struct {
		code, want int
		err        error
		wantErr    bool
	}{
		{0, 0, nil, false},
		{1, 1, nil, false},
		{2, 1, asFinding(3, boom), false},
		{2, 2, asFinding(0, boom), true},
	} {
		got, err := scenarioExit("plain", &stderr)(tc.code, tc.err)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("scenarioExit(%d, %v) = %d, %v; want %d, error %v", tc.code, tc.err, got, err, tc.want, tc.wantErr)
		}
	}
	if !strings.Contains(stderr.String(), "broke 3 invariant(s)") {
		t.Errorf("stderr %q does not report the broken invariants", stderr.String())
	}
}

// savedFailingJournal journals a run that fails and writes "failed"
// (the sealed real file of a SIGTERM) before its clean-up unlinks a file
// of the target, and saves it.
func savedFailingJournal(t *testing.T, mp string) string {
	data, err := os.ReadFile("../../status/testdata/real/0003-signals/failed_sigterm")
	if err != nil {
		t.Fatal(err)
	}
	fs := powerfs.New(powerfs.Journaled())
	fs.MkdirAll("target", 0o700)
	fs.MkdirAll("status", 0o700)
	c := powerfs.Caller{PID: 11311}
	dir, _ := fs.Lookup(powerfs.RootIno, "target")
	sdir, _ := fs.Lookup(powerfs.RootIno, "status")
	f, _ := fs.Create(c, dir.Ino, "PG_VERSION", 0o600)
	fs.Fsync(c, f.Ino)
	fs.Fsync(c, dir.Ino)
	fs.Mark("failing")
	tmp, _ := fs.Create(c, sdir.Ino, "backup_status.11311.tmp", 0o600)
	fs.Write(c, tmp.Ino, 0, data)
	fs.Fsync(c, tmp.Ino)
	fs.Rename(c, sdir.Ino, "backup_status.11311.tmp", sdir.Ino, "backup_status", 0)
	fs.Fsync(c, sdir.Ino)
	fs.Unlink(c, dir.Ino, "PG_VERSION")
	j, err := fs.Journal(map[string]string{"mountpoint": mp, "target": mp + "/target", "status": mp + "/status/backup_status"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "failing.journal")
	if err := j.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExploreSavedFailingJournal: -reason explores a saved journal as a
// failing run; "failed" before the clean-up is a violation (exit 1).
func TestExploreSavedFailingJournal(t *testing.T) {
	journal := savedFailingJournal(t, filepath.Join(t.TempDir(), "mnt"))
	var out bytes.Buffer
	code, err := run(context.Background(), []string{"-journal", journal, "-reason", "SIGTERM", "-k", "2"}, &out, &out)
	if err != nil || code != 1 || !strings.Contains(out.String(), "VIOLATION failed-is-last") {
		t.Fatalf("exit %d, %v:\n%s", code, err, out.String())
	}
	if _, err := parseOptions([]string{"-reason", "x"}, &bytes.Buffer{}); err == nil {
		t.Error("-reason without -journal accepted")
	}
	if _, err := parseOptions([]string{"-failing", "eio-sync,bogus"}, &bytes.Buffer{}); err == nil {
		t.Error("an unknown failing run accepted")
	}
	if ks, err := parseFailing("none"); err != nil || len(ks) != 0 {
		t.Errorf("-failing none: %v %v", ks, err)
	}
}
