package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/build/buildtest"
	"github.com/pgbb/pgbb/harness/report"
)

// trialVerdict is what must not depend on which shard ran a real trial:
// its identity (plan, seed) and which invariants it broke. When a fault
// fires relative to the backup's progress, and so whether the backup
// completed, depends on the machine's timing in any two runs.
type trialVerdict struct {
	Plan       string
	Seed       uint64
	Invariants []string
}

func verdicts(t *testing.T, dir string) map[string]trialVerdict {
	t.Helper()
	recs, err := report.LoadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]trialVerdict{}
	for _, r := range recs {
		if r.Index < 0 {
			continue
		}
		v := trialVerdict{Plan: r.Plan, Seed: r.Seed}
		for _, x := range r.Violations {
			v.Invariants = append(v.Invariants, x.Invariant)
		}
		out[r.ID] = v
	}
	return out
}

func outcomesOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	recs, err := report.LoadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range recs {
		if r.Index >= 0 {
			out[r.ID] = report.Outcome(r) + " @" + report.PhaseOf(r)
		}
	}
	return out
}

// TestIntegrationShards runs a tiny real campaign on patched 18 (native)
// with seed 42 and -parallel 1 whole, then as shards 1/2 and 2/2, merges
// the shards with -merge, and checks that the merged run has the same
// trials (ids, plans, seeds) with the same invariant verdicts as the whole
// one, and exits the same. Opt in with PGBB_INTEGRATION=1 (make test sets
// it); with it set, a missing prerequisite fails the test.
func TestIntegrationShards(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") != "1" {
		t.Skip("set PGBB_INTEGRATION=1 to run real crash trials")
	}
	root, err := build.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	scen := filepath.Join(root, "scenarios", "smoke", "plain-stream.json")
	if _, err := os.Stat(scen); err != nil {
		t.Fatalf("the scenario of this test: %v", err)
	}
	tmp := t.TempDir()
	campaignRun := func(name string, extra ...string) (string, int) {
		t.Helper()
		dir := filepath.Join(tmp, name)
		args := append([]string{"-backend", "native", "-pg", "18", "-variant", "patched", "-scenarios", scen,
			"-seed", "42", "-parallel", "1", "-trials", "2", "-out", dir}, extra...)
		start := time.Now()
		var stderr strings.Builder
		code := run(context.Background(), args, os.Stdout, io.MultiWriter(os.Stderr, &stderr))
		t.Logf("pgbb-crash %s: exit %d in %s", strings.Join(args, " "), code, time.Since(start).Round(time.Second))
		if code > 1 {
			t.Fatalf("pgbb-crash %s: exit %d: %s", strings.Join(args, " "), code, lastLine(stderr.String()))
		}
		return dir, code
	}
	whole, wholeCode := campaignRun("whole")
	s1, _ := campaignRun("shard1", "-shard", "1/2")
	s2, _ := campaignRun("shard2", "-shard", "2/2")
	merged := filepath.Join(tmp, "merged")
	code, err := merge(options{merge: []string{s1, s2}, out: merged}, os.Stdout)
	if code > 1 {
		t.Fatalf("merge: exit %d: %v", code, err)
	}
	if code != wholeCode {
		t.Errorf("merge exited %d, the whole campaign %d", code, wholeCode)
	}
	want := verdicts(t, whole)
	if len(want) != 2 {
		t.Fatalf("the whole campaign ran %d trials, want 2: %v", len(want), want)
	}
	for _, dir := range []string{s1, s2} {
		if n := len(verdicts(t, dir)); n != 1 {
			t.Errorf("%s ran %d trials, want 1", dir, n)
		}
	}
	if diff := cmp.Diff(want, verdicts(t, merged)); diff != "" {
		t.Errorf("the merged shards' trials differ from the whole campaign's (-whole +merged):\n%s", diff)
	}
	t.Logf("outcomes (timing-dependent, not compared): whole %v, merged %v", outcomesOf(t, whole), outcomesOf(t, merged))
	for _, f := range []string{"run.json", "summary.json", "report.html", report.JUnitFile} {
		if _, err := os.Stat(filepath.Join(merged, f)); err != nil {
			t.Errorf("merged run directory: %v", err)
		}
	}
}

// TestIntegrationContainerReaders runs a few stop trials with the
// container backend, as `make crash BACKEND=container` does, and checks
// that the stop plan's reader ran there as on the native backend: as
// another OS user, from another PID namespace, in a time zone of its own,
// with nothing left uncovered. It runs when a Docker engine answers
// (BACKEND=auto) or is required (BACKEND=container); BACKEND=native leaves
// it out. Opt in with PGBB_INTEGRATION=1.
func TestIntegrationContainerReaders(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") != "1" {
		t.Skip("set PGBB_INTEGRATION=1 to run real crash trials")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	buildtest.Container(ctx, t)
	root, err := build.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	args := []string{"-backend", "container", "-pg", "18", "-variant", "patched",
		"-scenarios", filepath.Join(root, "scenarios", "smoke", "plain-stop.json"),
		"-seed", "42", "-parallel", "1", "-trials", "3", "-out", dir}
	var stderr strings.Builder
	code := run(ctx, args, os.Stdout, io.MultiWriter(os.Stderr, &stderr))
	if code > 1 {
		t.Fatalf("pgbb-crash %s: exit %d: %s", strings.Join(args, " "), code, lastLine(stderr.String()))
	}
	recs, err := report.LoadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := report.Summarize(recs)
	if len(sum.Violations) > 0 {
		t.Errorf("invariant violations:\n%s", strings.Join(sum.Violations, "\n"))
	}
	c := sum.Coverage
	var b strings.Builder
	report.WriteCoverage(&b, c)
	if c.OtherUser == 0 || c.OtherNamespace == 0 || c.NamespaceErrors > 0 || len(c.ReaderZones) == 0 || len(c.NotCovered) > 0 {
		t.Fatalf("in the container the stop plan's reader did not run as another user, from another namespace and in its own time zone:\n%s", b.String())
	}
	t.Logf("\n%s", b.String())
}

// lastLine is the last line of s, where a command says why it failed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
