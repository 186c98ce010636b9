package trial

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCheckRerun: the same command run again over a completed backup must
// fail and leave the backup's directories and no temporary file behind. Its
// status file must then say failed with the rerun's PID (or be gone), never
// completed.
func TestCheckRerun(t *testing.T) {
	const earlier, rerun = 100, 200
	failed := Rerun{Exit: 1, PID: rerun, Status: "failed", StatusPID: rerun, Changed: true}
	kept := Rerun{Exit: 1, PID: rerun, Status: "completed", StatusPID: earlier}
	with := func(r Rerun, f func(*Rerun)) Rerun { f(&r); return r }
	cases := []struct {
		name string
		r    Rerun
		want int // violations
	}{
		{"failed, with the rerun's pid", failed, 0},
		{"status file removed", with(failed, func(r *Rerun) { r.Status, r.StatusPID = "", 0 }), 0},
		{"the earlier run's completed left in place", kept, 1},
		{"rewritten as completed", with(kept, func(r *Rerun) { r.Changed, r.StatusPID = true, rerun }), 1},
		{"failed, another pid", with(failed, func(r *Rerun) { r.StatusPID = earlier }), 1},
		{"left in progress", with(failed, func(r *Rerun) { r.Status = "in progress" }), 1},
		{"invalid", with(failed, func(r *Rerun) { r.Status, r.StatusPID = "invalid", 0 }), 1},
		{"exit 0", with(failed, func(r *Rerun) { r.Exit = 0 }), 1},
		{"the backup emptied", with(failed, func(r *Rerun) { r.DirsChanged = []string{"removed /t/target/PG_VERSION"} }), 1},
		{"a temporary file left", with(failed, func(r *Rerun) { r.TmpFilesLeft = []string{"/t/status/backup_status.200.tmp"} }), 1},
		{"server down, failed with the rerun's pid", with(failed, func(r *Rerun) { r.Kind = RerunServerDown }), 0},
		{"server down, the earlier run's completed left in place", with(kept, func(r *Rerun) { r.Kind = RerunServerDown }), 1},
		{"server down, the fresh target left", with(failed, func(r *Rerun) { r.Kind, r.FreshTargetLeft = RerunServerDown, true }), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs := checkRerun(&c.r)
			if len(vs) != c.want {
				t.Fatalf("violations %+v, want %d", vs, c.want)
			}
			for _, v := range vs {
				if v.Invariant != InvRerunNotCompleted {
					t.Errorf("violation of %s", v.Invariant)
				}
			}
		})
	}
}

// TestSnapshotDirs: what a rerun does to the completed backup's
// directories shows: a file removed, changed or added, a directory gone.
func TestSnapshotDirs(t *testing.T) {
	root := t.TempDir()
	target, ts := filepath.Join(root, "target"), filepath.Join(root, "ts1")
	for _, p := range []string{"target/PG_VERSION", "target/base/1", "ts1/PG_18_1/5/1"} {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dirs := []string{target, ts, filepath.Join(root, "nowaldir")}
	before, err := snapshotDirs(dirs)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := snapshotDirs(dirs)
	if d := diffSnapshots(before, after); len(d) != 0 {
		t.Fatalf("nothing changed, got %v", d)
	}
	if err := os.RemoveAll(ts); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(target, "PG_VERSION")); err != nil {
		t.Fatal(err)
	}
	after, _ = snapshotDirs(dirs)
	d := diffSnapshots(before, after)
	for _, want := range []string{"removed " + ts, "removed " + filepath.Join(ts, "PG_18_1", "5", "1"), "removed " + filepath.Join(target, "PG_VERSION")} {
		if !slices.Contains(d, want) {
			t.Errorf("diff %v lacks %q", d, want)
		}
	}
}

// TestRemovable: the clean-up check lets --remove-if-dead change the
// status file, the run's temporary files (FILE.PID.tmp of its pid, the
// legacy FILE.tmp) and the recorded directories, and nothing else: not
// another pid's temporary file.
func TestRemovable(t *testing.T) {
	st := filepath.Join("/t", "status", "backup_status")
	under := removable(st, 1234, map[string]bool{"/t/target": true})
	for p, want := range map[string]bool{
		st:                          true,
		st + ".1234.tmp":            true,
		st + ".tmp":                 true,
		st + ".4321.tmp":            false,
		"/t/target":                 true,
		"/t/target/base/1":          true,
		"/t/target2":                false,
		"/t/status":                 false,
		"/t/status/backup_status.x": false,
	} {
		if got := under(p); got != want {
			t.Errorf("removable(%q) = %t, want %t", p, got, want)
		}
	}
}

// TestCheckRetry: the retry after the clean-up must exit 0 with a completed
// status, or exit 0 having warned that the status file could not say so.
func TestCheckRetry(t *testing.T) {
	for _, c := range []struct {
		c    Cleanup
		want int
	}{
		{Cleanup{RetryExit: 0, RetryStatus: "completed"}, 0},
		{Cleanup{RetryExit: 0, RetryUnsaid: true}, 0},
		{Cleanup{RetryExit: 0, RetryStatus: "in progress", RetryUnsaid: true}, 0},
		{Cleanup{RetryExit: 0}, 1},
		{Cleanup{RetryExit: 0, RetryStatus: "in progress"}, 1},
		{Cleanup{RetryExit: 1, RetryStatus: "failed"}, 1},
		{Cleanup{RetryExit: 1, RetryUnsaid: true}, 1},
	} {
		if vs := checkRetry(&c.c); len(vs) != c.want || (len(vs) > 0 && vs[0].Invariant != InvRetrySucceeds) {
			t.Errorf("%+v: violations %+v, want %d", c.c, vs, c.want)
		}
	}
}

// TestServerDownArgs: the rerun with the server down keeps the command
// but for a fresh target and a port nothing listens on.
func TestServerDownArgs(t *testing.T) {
	args := []string{"/bin/pg_basebackup", "-D", "/t/target", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "--status-file=/t/s"}
	got, err := serverDownArgs(args, "/t/fresh")
	if err != nil {
		t.Fatal(err)
	}
	if got[2] != "/t/fresh" || got[6] == "5432" || got[6] == "" || args[2] != "/t/target" || !slices.Equal(got[7:], args[7:]) {
		t.Errorf("serverDownArgs = %q", got)
	}
	if _, err := serverDownArgs([]string{"/bin/pg_basebackup", "-D", "-"}, "/t/fresh"); err == nil {
		t.Error("a command without -p: no error")
	}
}

// TestKeptWhole: a removal that refused a target holding backup_manifest
// must have changed nothing in the trial's directory.
func TestKeptWhole(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "target"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "target", "backup_manifest"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := snapshot(dir, nothing)
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	if err := keptWhole(dir, before, &rec); err != nil || len(rec.Violations) != 0 {
		t.Fatalf("unchanged: %v, %v", err, rec.Violations)
	}
	if err := os.Remove(filepath.Join(dir, "target", "backup_manifest")); err != nil {
		t.Fatal(err)
	}
	if err := keptWhole(dir, before, &rec); err != nil || len(rec.Violations) != 1 || rec.Violations[0].Invariant != InvRemoveExact {
		t.Fatalf("manifest removed: %v, %v", err, rec.Violations)
	}
}
