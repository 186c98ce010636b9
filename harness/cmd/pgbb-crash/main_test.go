package main

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/report"
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
