package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/report"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

func parse(args ...string) (options, error) {
	fs := flag.NewFlagSet("pgbb-crash", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return parseOptions(fs, args)
}

func TestParseOptions(t *testing.T) {
	o, err := parse("-pg", "15", "-variant", "stock", "-seed", "42")
	if err != nil || o.pg != "15" || o.variant != "stock" || o.seed != 42 || o.compare != nil || o.scenarios != "scenarios/smoke" {
		t.Fatalf("campaign flags: %+v, %v", o, err)
	}
	o, err = parse("-compare", "a, b,,c", "-out", "x")
	if err != nil || !reflect.DeepEqual(o.compare, []string{"a", "b", "c"}) || o.out != "x" {
		t.Fatalf("-compare: %+v, %v", o, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-compare", "a", "-pg", "15", "-keep"}, "-keep, -pg cannot go with it"},
		{[]string{"-compare", "a", "-scenarios", "scenarios/smoke"}, "-scenarios cannot go with it"},
		{[]string{"-compare", " , "}, "no run directories"},
		{[]string{"-compare", "a", "b"}, "unexpected arguments [b]"},
		{[]string{"-nosuchflag"}, "not defined"},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := parse("-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// runDir writes a run directory as a campaign does: run.json and the
// records.
func runDir(t *testing.T, dir string, info *report.RunInfo, recs ...*trial.Record) string {
	t.Helper()
	if info != nil {
		if err := report.SaveRunInfo(dir, *info); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		if err := campaign.SaveRecord(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func record(id, variant string, statusFile bool, exit int, state string, complete bool) *trial.Record {
	r := &trial.Record{ID: id, Scenario: "plain-stream", Plan: "kill", Variant: variant, StatusFile: statusFile,
		Exit: trial.Exit{Code: exit}, TargetPresent: true, ManifestPresent: true, Oracle: &oracle.Verdict{Complete: complete}}
	if exit < 0 {
		r.Exit.Signal = "killed"
	}
	if state != "" {
		r.Status = trial.StatusFile{Present: true, Valid: true, State: state}
	}
	return r
}

func TestCompare(t *testing.T) {
	root := t.TempDir()
	stock := runDir(t, filepath.Join(root, "15-stock"), &report.RunInfo{Version: "15.18", Major: 15, Variant: "stock", Backend: "native", Seed: 7},
		record("plain-stream/0", "stock", false, 0, "", false))
	patched := runDir(t, filepath.Join(root, "18-patched"), &report.RunInfo{Version: "18.6", Major: 18, Variant: "patched", Backend: "native", Seed: 7},
		record("plain-stream/0", "patched", true, -1, "in progress", true))
	out := filepath.Join(root, "out")
	var stdout strings.Builder
	code, err := compare(options{compare: []string{stock, patched}, out: out}, &stdout)
	if code != 0 || err != nil {
		t.Fatalf("compare: %d, %v", code, err)
	}
	text := stdout.String()
	for _, want := range []string{"15.18 stock", "18.6 patched", "n/a", "1/1/1/0", "1/0/0/1", filepath.Join(out, "comparison.html")} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "comparison.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c report.Comparison
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Builds) != 2 || c.Builds[0].Label != "15.18 stock" || c.Builds[1].Source != patched {
		t.Errorf("builds %+v", c.Builds)
	}
	if _, err := os.Stat(filepath.Join(out, "comparison.html")); err != nil {
		t.Error(err)
	}

	// A directory without trials: exit 2, named.
	empty := filepath.Join(root, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "trials"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, err = compare(options{compare: []string{stock, empty}, out: filepath.Join(root, "out2")}, io.Discard)
	if code != 2 || err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "no trial records") {
		t.Errorf("empty run directory: %d, %v", code, err)
	}
	if _, err := os.Stat(filepath.Join(root, "out2")); !os.IsNotExist(err) {
		t.Errorf("a failed comparison wrote %s: %v", filepath.Join(root, "out2"), err)
	}
}

func TestParseMergeOptions(t *testing.T) {
	o, err := parse("-merge", "a,,b", "-out", "x")
	if err != nil || !reflect.DeepEqual(o.merge, []string{"a", "b"}) || o.compare != nil || o.out != "x" {
		t.Fatalf("-merge: %+v, %v", o, err)
	}
	o, err = parse("-shard", "2/3", "-seed", "7")
	if err != nil || o.shard.String() != "2/3" {
		t.Fatalf("-shard: %+v, %v", o, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-merge", "a", "-shard", "1/2", "-seed", "1"}, "-merge runs no campaign: -seed, -shard cannot go with it"},
		{[]string{"-merge", "a", "-compare", "b"}, "cannot go together"},
		{[]string{"-merge", ""}, "-merge: no run directories"},
		{[]string{"-shard", "3/2"}, "-shard: shard 3/2"},
		{[]string{"-shard", "1/2"}, "-shard needs -seed"},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestMerge writes a run directory as one run of a campaign would, and
// the same records as two shards, and merges the shards: the merged run
// directory's summary.json, report.html and junit.xml are byte for byte
// the one run's, and the exit code is 1 for its violation. A missing
// shard is exit 2.
func TestMerge(t *testing.T) {
	root := t.TempDir()
	recs := []*trial.Record{
		record("plain-stream/0", "patched", true, 0, "completed", true),
		record("plain-stream/1", "patched", true, -1, "in progress", false),
		record("plain-stream/2", "patched", true, 0, "completed", false),
		record("plain-stream/3", "patched", true, 1, "failed", false),
	}
	recs[1].Index, recs[2].Index, recs[3].Index = 1, 2, 3
	recs[2].Violations = []trial.Violation{{Invariant: trial.InvCompletedVerified, Message: "pg_verifybackup failed"}}
	recs[2].Replay = "go run ./harness/cmd/pgbb-crash -seed 7 -replay plain-stream/2"
	info := report.RunInfo{Version: "18.6", Major: 18, Variant: "patched", Backend: "native", Seed: 7,
		Scenarios: []string{"scenarios/smoke/plain-stream.json"}, Trials: map[string]int{"plain-stream": 4}}
	whole := runDir(t, filepath.Join(root, "whole"), &info, recs...)
	if err := saveReports(whole, recs, report.Summarize(recs), campaignTitle("18.6", "patched", "native", 7)); err != nil {
		t.Fatal(err)
	}
	var shards []string
	for i, part := range [][]*trial.Record{{recs[1], recs[2]}, {recs[0], recs[3]}} {
		si := info
		si.ShardIndex, si.ShardCount = i+1, 2
		shards = append(shards, runDir(t, filepath.Join(root, fmt.Sprintf("shard%d", i+1)), &si, part...))
	}
	out := filepath.Join(root, "merged")
	var stdout strings.Builder
	code, err := merge(options{merge: shards, out: out}, &stdout)
	if code != 1 || err != nil {
		t.Fatalf("merge: %d, %v\n%s", code, err, stdout.String())
	}
	for _, f := range []string{"summary.json", "report.html", "junit.xml"} {
		a, err := os.ReadFile(filepath.Join(whole, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Errorf("%s of the merged shards differs from one run's:\n%s\n---\n%s", f, a, b)
		}
	}
	if merged, err := report.LoadRun(out); err != nil || len(merged.Records) != 4 || merged.Info.ShardCount != 0 {
		t.Errorf("merged run directory: %+v, %v", merged, err)
	}
	if !strings.Contains(stdout.String(), "1 INVARIANT VIOLATIONS") {
		t.Errorf("summary:\n%s", stdout.String())
	}
	code, err = merge(options{merge: shards, out: out}, io.Discard)
	if code != 2 || err == nil || !strings.Contains(err.Error(), "already holds trial records") {
		t.Errorf("merge into a used directory: %d, %v", code, err)
	}
	code, err = merge(options{merge: shards[1:], out: filepath.Join(root, "m2")}, io.Discard)
	if code != 2 || err == nil || !strings.Contains(err.Error(), "shard 1/2 missing") {
		t.Errorf("merge of one shard of two: %d, %v", code, err)
	}
}

func TestSizeScenarios(t *testing.T) {
	scs := []scenario.Scenario{{Name: "a", Trials: 112, Budget: 4 * time.Minute}, {Name: "b", Trials: 3}}
	if err := sizeScenarios(scs, 10, 500); err != nil {
		t.Fatal(err)
	}
	if scs[0].Trials != 500 || scs[0].Budget != 40*time.Minute || scs[1].Trials != 30 || scs[1].Budget != 0 {
		t.Errorf("-times 10 -trials 500: %+v", scs)
	}
	if err := sizeScenarios(scs, 0, 0); err == nil {
		t.Error("-times 0: no error")
	}
	if err := sizeScenarios(scs, 1, -1); err == nil {
		t.Error("-trials -1: no error")
	}
	if got := replayCommand(options{variant: "patched", scenarios: "scenarios/smoke", seed: 7, times: 10}, 18, "tar/900"); !strings.Contains(got, "-times 10 ") {
		t.Errorf("replay command %q has no -times 10", got)
	}
}

// TestRunBadInput: a bad command line exits 2 before anything is built,
// says on stderr what was wrong, and writes nothing on stdout; -h exits 0.
func TestRunBadInput(t *testing.T) {
	const scen = "../../../scenarios/smoke/plain-stream.json"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-pg", "12", "-scenarios", scen}, "12"},
		{[]string{"-backend", "cloud", "-scenarios", scen}, `unknown backend "cloud"`},
		{[]string{"-keep-failing", "-1", "-scenarios", scen}, "-keep-failing -1"},
		{[]string{"-variant", "stock", "-patches", "x", "-scenarios", scen}, "-patches applies to the patched variant only"},
		{[]string{"-variant", "wrapper", "-patches", "x", "-scenarios", scen}, "-patches applies to the patched variant only"},
		{[]string{"-variant", "wrapper", "-backend", "container", "-scenarios", scen}, "-variant wrapper runs natively only"},
		{[]string{"-variant", "stock", "-wrapper-patches", "x", "-scenarios", scen}, "-wrapper-patches applies to -variant wrapper only"},
		{[]string{"-wrapper-patches", "x", "-scenarios", scen}, "-wrapper-patches applies to -variant wrapper only"},
		{[]string{"-variant", "shrink-wrapped", "-scenarios", scen}, "or wrapper"},
		{[]string{"-scenarios", "no/such/dir"}, "no/such/dir"},
		{[]string{"-compare", "/nonexistent/run"}, "-compare"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-no-such-flag"}, "no-such-flag"},
	}
	for _, tc := range cases {
		var stdout, stderr strings.Builder
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", tc.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: stderr %q does not say %q", tc.args, stderr.String(), tc.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("%q: stdout %q", tc.args, stdout.String())
		}
	}
	var stderr strings.Builder
	if code := run(context.Background(), []string{"-h"}, io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), "-scenarios") {
		t.Errorf("-h: exit %d, stderr %q", code, stderr.String())
	}
}

// TestWrapperVariant: -variant wrapper runs the stock build, natively,
// labelled wrapper (wrapper-NAME with -wrapper-patches .../NAME); its
// replay command names the variant and the patches again.
func TestWrapperVariant(t *testing.T) {
	o := options{pg: "18", variant: "wrapper", scenarios: "../../../scenarios/smoke/plain-stream.json", backend: "auto", times: 1, seed: 3}
	var stderr strings.Builder
	major, spec, label, _, err := checkCampaign(&o, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if major != 18 || spec.Variant != "stock" || spec.PatchDir != "" || label != "wrapper" || o.backend != "native" {
		t.Errorf("wrapper: major %d, spec %+v, label %q, backend %q", major, spec, label, o.backend)
	}
	if got := replayCommand(o, major, "plain-stream/1"); !strings.Contains(got, "-variant wrapper") {
		t.Errorf("replay command %q does not name the wrapper variant", got)
	}
	o.wrapperPatches = "../../testdata/knownbad/wrapper/ignore-exit-code/"
	if _, spec, label, _, err := checkCampaign(&o, io.Discard); err != nil || spec.Variant != "stock" || label != "wrapper-ignore-exit-code" {
		t.Errorf("-wrapper-patches: spec %+v, label %q, %v; want stock, labelled wrapper-ignore-exit-code", spec, label, err)
	}
	if got := replayCommand(o, 18, "plain-stream/1"); !strings.Contains(got, "-wrapper-patches "+o.wrapperPatches) {
		t.Errorf("replay command %q does not name the wrapper's patches", got)
	}
	for _, v := range []string{"stock", "patched"} {
		o := options{pg: "18", variant: v, scenarios: "../../../scenarios/smoke/plain-stream.json", backend: "native", times: 1, seed: 3}
		if _, spec, label, _, err := checkCampaign(&o, io.Discard); err != nil || string(spec.Variant) != v || label != v {
			t.Errorf("%s: spec %+v, label %q, %v", v, spec, label, err)
		}
	}
}
