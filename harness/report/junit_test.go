package report

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgbb/pgbb/harness/trial"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

func junitRecords() []*trial.Record {
	yes := true
	failing := rec("s/10", "kill", -1, "completed", true, &yes, "sync", trial.InvCompletedVerified)
	failing.Replay = "go run ./harness/cmd/pgbb-crash -seed 42 -replay s/10"
	failing.Dir = "/dev/shm/pgbb-crash-1/s/w0/t10"
	dropped := rec("s/12", "kill", -1, "completed", true, &yes, "sync", trial.InvCompletedVerified, trial.InvErrorNotCompleted)
	dropped.Replay = "go run ./harness/cmd/pgbb-crash -seed 42 -replay s/12"
	recs := []*trial.Record{
		rec("s/2", "kill", -1, "in progress", false, nil, "receiving"),
		rec("s/control-w0", "none", 0, "completed", true, &yes, ""),
		dropped,
		rec("s/1", "term", 1, "failed", false, nil, "receiving"),
		failing,
		rec("t/0", "none", 0, "completed", true, &yes, ""),
	}
	for i, r := range recs {
		r.Elapsed = time.Duration(i+1) * 1500 * time.Millisecond
	}
	recs[len(recs)-1].Scenario = "t"
	return recs
}

// TestJUnit compares the report with testdata/junit.golden (go test
// -run TestJUnit -update rewrites it) and checks its structure.
func TestJUnit(t *testing.T) {
	data, err := JUnit(junitRecords(), "pgbb crash campaign: PostgreSQL 18.6 patched, seed 42")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "junit.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(data)); diff != "" {
		t.Errorf("junit.xml differs from %s (-want +got):\n%s", golden, diff)
	}

	var got junitSuites
	if err := xml.Unmarshal(data, &got); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	if got.Tests != 4 || got.Failures != 1 || len(got.Suites) != 2 || got.Time != "31.500" {
		t.Fatalf("testsuites: tests %d, failures %d, %d suites, time %s", got.Tests, got.Failures, len(got.Suites), got.Time)
	}
	s := got.Suites[0]
	var names []string
	for _, c := range s.Cases {
		names = append(names, c.Classname+"/"+c.Name)
	}
	if s.Name != "s" || strings.Join(names, " ") != "s/none s/kill s/term" || s.Failures != 1 {
		t.Fatalf("suite %s: cases %v, failures %d", s.Name, names, s.Failures)
	}
	f := s.Cases[1].Failure
	if f == nil || f.Type != "completed-is-complete,error-exit-not-completed" || !strings.HasPrefix(f.Message, "2 of 3 trials broke invariants") {
		t.Fatalf("kill's failure: %+v", f)
	}
	for _, want := range []string{
		"s/10: completed-is-complete: m\n    replay: go run ./harness/cmd/pgbb-crash -seed 42 -replay s/10\n    kept:   /dev/shm/pgbb-crash-1/s/w0/t10\n",
		"s/12: error-exit-not-completed: m\n    replay: go run ./harness/cmd/pgbb-crash -seed 42 -replay s/12\n    kept:   no",
	} {
		if !strings.Contains(f.Text, want) {
			t.Errorf("no %q in the failure's text:\n%s", want, f.Text)
		}
	}
	if strings.Index(f.Text, "s/10:") > strings.Index(f.Text, "s/12:") {
		t.Errorf("trials not in index order:\n%s", f.Text)
	}
	if s.Cases[0].Failure != nil || s.Cases[2].Failure != nil || got.Suites[1].Failures != 0 {
		t.Errorf("passing cases failed: %+v", got.Suites)
	}

	dir := t.TempDir()
	if err := SaveJUnit(dir, junitRecords(), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, JUnitFile)); err != nil {
		t.Error(err)
	}
}
