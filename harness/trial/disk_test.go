package trial

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pgbb/pgbb/harness/explore"
	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/scenario"
)

// TestCheckDiskNoSync: with --no-sync on the power-loss layer, a run that
// exited 0 leaves only its first, "in progress", version after the power
// cut: no violation; with sync on it is one.
func TestCheckDiskNoSync(t *testing.T) {
	rec := &Record{StatusFile: true, Exit: Exit{Code: 0}, Status: StatusFile{Present: true, Valid: true, State: "in progress"},
		Disk: &DiskResult{DiskReport: &fault.DiskReport{}}}
	sc := scenario.Defaults()
	if vs := Check(rec, sc); len(vs) != 1 || vs[0].Invariant != InvExit0Completed {
		t.Errorf("sync on: %v", vs)
	}
	sc.Sync = false
	if vs := Check(rec, sc); len(vs) != 0 {
		t.Errorf("--no-sync: %v", vs)
	}
}

func TestCheckDiskTornStates(t *testing.T) {
	base := func(d *DiskResult) *Record {
		return &Record{StatusFile: true, Exit: Exit{Code: -1, Signal: "killed"},
			Status: StatusFile{Present: true, Valid: true, State: "in progress"}, Disk: d}
	}
	rep := &fault.DiskReport{}
	cases := []struct {
		name string
		disk *DiskResult
		want []string
	}{
		{"no torn trouble", &DiskResult{DiskReport: rep, TornViews: 3}, nil},
		{"invalid torn file", &DiskResult{DiskReport: rep, TornInvalid: []TornCheck{{State: "#5 target/backup_status: 10 of 300 bytes of a write",
			Status: StatusFile{Present: true, Error: "no checksum"}}}}, []string{InvNotTorn}},
		{"torn completed, complete backup", &DiskResult{DiskReport: rep, TornCompleted: []TornCheck{{State: "#9",
			Status: completed("yes"), Oracle: &oracle.Verdict{Complete: true}}}}, nil},
		{"torn completed, incomplete backup", &DiskResult{DiskReport: rep, TornCompleted: []TornCheck{{State: "#9",
			Status: completed("yes"), Oracle: &oracle.Verdict{Reason: "pg_verifybackup: missing file"}}}}, []string{InvCompletedVerified}},
		{"torn completed, not judged", &DiskResult{DiskReport: rep, TornCompleted: []TornCheck{{State: "#9", Status: completed("yes")}}},
			[]string{InvCompletedVerified}},
		{"first version lost", &DiskResult{DiskReport: rep, FirstVersionLost: "no status file survived"}, []string{InvFirstVersionDurable}},
	}
	for _, c := range cases {
		var got []string
		for _, v := range Check(base(c.disk), scenario.Defaults()) {
			got = append(got, v.Invariant)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: violations %v, want %v", c.name, got, c.want)
		}
	}
}

// TestCheckFirstVersion: after a power cut past the point where the
// run's first version of the status file had returned, no status file in
// the durable state is recorded; before that point, or with the file
// there, nothing is.
func TestCheckFirstVersion(t *testing.T) {
	fsys := powerfs.New()
	c := powerfs.Caller{PID: 7}
	if err := fsys.MkdirAll("status", 0o700); err != nil {
		t.Fatal(err)
	}
	dir, e := fsys.Lookup(powerfs.RootIno, "status")
	if e != 0 {
		t.Fatal(e)
	}
	tmp, e := fsys.Create(c, dir.Ino, "backup_status.7.tmp", 0o600)
	if e != 0 {
		t.Fatal(e)
	}
	fsys.Write(c, tmp.Ino, 0, []byte("first version"))
	fsys.Fsync(c, tmp.Ino)
	if e := fsys.Rename(c, dir.Ino, "backup_status.7.tmp", dir.Ino, "backup_status", 0); e != 0 {
		t.Fatal(e)
	}
	fsys.Fsync(c, dir.Ino)
	if _, e := fsys.Mkdir(c, powerfs.RootIno, "target", 0o700); e != 0 {
		t.Fatal(e)
	}
	first := explore.FirstVersionDoneLog(fsys.Log(), "status/backup_status")
	if first == 0 {
		t.Fatalf("no first version found in %v", fsys.Log())
	}
	there := filepath.Join(t.TempDir(), "backup_status")
	if err := os.WriteFile(there, []byte("first version"), 0o600); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(t.TempDir(), "backup_status")
	for _, tc := range []struct {
		name   string
		ops    int
		status string
		lost   bool
	}{
		{"cut before the first version returned", first - 1, gone, false},
		{"cut after, file there", first, there, false},
		{"cut after, file gone", first, gone, true},
	} {
		rec := &Record{Disk: &DiskResult{DiskReport: &fault.DiskReport{Ops: tc.ops}}}
		if err := checkFirstVersion(rec, &fault.Disk{FS: fsys, StatusFile: tc.status}, "status/backup_status"); err != nil {
			t.Fatal(err)
		}
		if lost := rec.Disk.FirstVersionLost != ""; lost != tc.lost {
			t.Errorf("%s: lost %t (%q), want %t", tc.name, lost, rec.Disk.FirstVersionLost, tc.lost)
		}
	}
}
