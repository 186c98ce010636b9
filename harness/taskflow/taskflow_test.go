package taskflow

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/status"
)

// TestLoadScenarios: the repository's task-flow scenarios load, and each
// leaves a patched run left alone enough attempts to finish a backup that
// lasts longer than one deadline.
func TestLoadScenarios(t *testing.T) {
	scs, err := Load(filepath.Join("..", "..", "scenarios", "taskflow"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 2 {
		t.Fatalf("%d scenarios, want seed and short", len(scs))
	}
	for _, sc := range scs {
		if len(sc.Flows()) < 2*len(sc.Policies) {
			t.Errorf("%s: %d flows for %d policies", sc.Name, len(sc.Flows()), len(sc.Policies))
		}
	}
}

// TestLoadRejects: bad values and unknown keys are errors naming the file
// and what is wrong.
func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ json, want string }{
		"unknown":  {`{"deadline": "5s", "max_rate": "1M", "timeout": "5s"}`, `unknown field "timeout"`},
		"deadline": {`{"max_rate": "1M"}`, "deadline: required"},
		"policy":   {`{"deadline": "5s", "max_rate": "1M", "policies": ["nohup"]}`, `policy "nohup"`},
		"attempts": {`{"deadline": "5s", "max_rate": "1M", "attempts": 1}`, "attempts 1"},
		"stall":    {`{"deadline": "5s", "max_rate": "1M", "refresh": 5, "stall": "10s"}`, "stall 10s"},
		"rate":     {`{"deadline": "5s"}`, "max_rate: required"},
		"duration": {`{"deadline": 5, "max_rate": "1M"}`, "want a duration"},
	} {
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, []byte(tc.json), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s and %q", name, err, path, tc.want)
		}
	}
}

// TestJudge: each broken promise of a patched flow is a violation; the
// same numbers in a stock flow are not (they are what the table shows);
// a flow that could not run is an error.
func TestJudge(t *testing.T) {
	sc := Scenario{Name: "t", Refresh: 2, Stall: Duration(10 * time.Second)}
	good := func(f Flow) Outcome {
		return Outcome{Flow: f, Converged: true, Oracle: &oracle.Verdict{Complete: true}}
	}
	cases := []struct {
		name   string
		modify func(o *Outcome)
		want   string
	}{
		{"kept", func(*Outcome) {}, ""},
		{"incomplete taken", func(o *Outcome) { o.TakenIncomplete, o.Oracle = true, &oracle.Verdict{Reason: "verifybackup: missing"} }, "incomplete backup"},
		{"live removed", func(o *Outcome) { o.LiveRemoved = 1 }, "live run"},
		{"false stall", func(o *Outcome) { o.FalseStalls, o.StallNotes = 2, []string{"+30s: alive but stalled"} }, "healthy run stalled"},
		{"cadence", func(o *Outcome) { o.MaxUpdateGap = 9 * time.Second }, "UPDATE TIME advanced by 9s"},
		{"not converged", func(o *Outcome) { o.Converged = false }, "did not converge"},
		{"exit 0 not completed", func(o *Outcome) { o.Problems = []string{"exit 0, but pgbb-status says failed"} }, "exit 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []Variant{Patched, Stock} {
				o := good(Flow{Variant: v, Policy: Leave})
				tc.modify(&o)
				res := &Result{Scenario: sc, Flows: []Outcome{o}}
				res.Judge()
				got := strings.Join(res.Violations, "; ")
				want := tc.want
				if v == Stock {
					want = ""
				}
				if (want == "") != (got == "") || !strings.Contains(got, want) {
					t.Errorf("%s: violations %q, want %q", v, got, want)
				}
			}
		})
	}
	stall := good(Flow{Variant: Patched, Policy: Leave, Stall: true})
	res := &Result{Scenario: sc, Flows: []Outcome{stall, {Flow: Flow{Variant: Stock, Policy: Kill}, Err: "start pg_basebackup: no such file"}}}
	res.Judge()
	if len(res.Violations) != 1 || !strings.Contains(res.Violations[0], "stall seen after 0s") {
		t.Errorf("an unseen stall: %q", res.Violations)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "stock-kill") {
		t.Errorf("errors %q, want the stock-kill flow's", res.Errors)
	}
	var b strings.Builder
	res.WriteTable(&b)
	for _, want := range []string{"patched-stall", "VIOLATION", "ERROR stock-kill"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestJudgeExit0: after a patched run that exited 0 the backup is taken
// when pgbb-status says completed, or when the run warned that the backup
// is complete but the status file could not say so (the file is then gone
// or does not say completed); anything else is a broken promise.
func TestJudgeExit0(t *testing.T) {
	warned := "pg_basebackup: warning: " + status.WarnCompleteUnsaid + "\n"
	for _, c := range []struct {
		verdict, out string
		converged    bool
	}{
		{verdictCompleted, "", true},
		{verdictNotDurable, "", true},
		{verdictNot, warned, true},
		{verdictNot, "", false},
		{verdictFailed, "", false},
		{verdictNot, "pg_basebackup: warning: could not create file \"s.1.tmp\": Permission denied\n", false},
	} {
		converged, problem := judgeExit0(Reading{Verdict: c.verdict, Summary: "s"}, c.out)
		if converged != c.converged || (problem == "") != c.converged {
			t.Errorf("%s after %q: converged %t, problem %q; want converged %t", c.verdict, c.out, converged, problem, c.converged)
		}
	}
}
