package trial

import (
	"slices"
	"testing"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/scenario"
)

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
