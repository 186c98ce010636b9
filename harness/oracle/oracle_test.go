package oracle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/workload"
)

func TestCheckCanary(t *testing.T) {
	seq := func(lo, hi int64) []int64 {
		var s []int64
		for i := lo; i <= hi; i++ {
			s = append(s, i)
		}
		return s
	}
	before := workload.Mark{Committed: 100, Attempted: 101}
	after := workload.Mark{Committed: 150, Attempted: 151}
	if d, p := CheckCanary(seq(1, 140), before, after); d != "" || p != "" {
		t.Fatalf("good rows flagged: %q %q", d, p)
	}
	if d, p := CheckCanary(seq(1, 100), before, after); d != "" || p != "" {
		t.Fatalf("rows up to the mark flagged: %q %q", d, p)
	}
	missing := append(seq(1, 49), seq(51, 120)...)
	d, p := CheckCanary(missing, before, after)
	if d == "" || !strings.Contains(p, "missing") {
		t.Fatalf("missing row 50 not flagged: %q %q", d, p)
	}
	if _, p := CheckCanary(seq(1, 90), before, after); !strings.Contains(p, "missing") {
		t.Fatalf("truncated rows not flagged: %q", p)
	}
	if _, p := CheckCanary(append(seq(1, 100), 999), before, after); !strings.Contains(p, "newer than any attempted") {
		t.Fatalf("future row not flagged: %q", p)
	}
}

func TestRanges(t *testing.T) {
	got := Ranges([]int64{1, 2, 3, 5, 7, 8})
	want := []Range{{1, 3}, {5, 5}, {7, 8}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
}

// TestVerifyMissingManifest: a run asked for a manifest that left none is
// not complete; without --no-manifest's promise the stage fails, with it
// the stage is skipped.
func TestVerifyMissingManifest(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "backup_manifest.tmp"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(j *judge) func() (string, error, bool) {
		return func() (string, error, bool) { return j.verify(dir, "plain") }
	}
	j := &judge{in: Input{Target: dir, Format: "plain", WALMethod: "stream", Manifest: true}}
	if j.stage("verifybackup", verify(j)) || j.v.Stages[0].Status != Fail {
		t.Errorf("manifest requested and missing: stage %+v, want failed", j.v.Stages[0])
	}
	if !strings.Contains(j.v.Reason, "backup_manifest.tmp is there") {
		t.Errorf("reason %q does not name the manifest left behind", j.v.Reason)
	}
	j = &judge{in: Input{Target: dir, Format: "plain", WALMethod: "stream", Manifest: false}}
	if !j.stage("verifybackup", verify(j)) || j.v.Stages[0].Status != Skip {
		t.Errorf("--no-manifest: stage %+v, want skipped", j.v.Stages[0])
	}
}
