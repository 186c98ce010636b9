package report

import (
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/trial"
)

func rec(id, plan string, exit int, state string, manifest bool, complete *bool, phase string, violations ...string) *trial.Record {
	r := &trial.Record{ID: id, Scenario: "s", Plan: plan, StatusFile: true, Exit: trial.Exit{Code: exit}, ManifestPresent: manifest, TargetPresent: true}
	if exit < 0 {
		r.Exit.Signal = "killed"
	}
	if state != "" {
		r.Status = trial.StatusFile{Present: true, Valid: true, State: state}
	}
	if complete != nil {
		r.Oracle = &oracle.Verdict{Complete: *complete}
	}
	if phase != "" {
		r.Fault = fault.Injection{Plan: plan, Fired: true, Phase: phase}
	}
	for _, v := range violations {
		r.Violations = append(r.Violations, trial.Violation{Invariant: v, Message: "m"})
	}
	return r
}

func TestSummarize(t *testing.T) {
	yes, no := true, false
	recs := []*trial.Record{
		rec("s/0", "kill", 0, "completed", true, &yes, ""),
		rec("s/1", "kill", -1, "in progress", false, nil, "receiving"),
		// Killed after the manifest rename, before the status rewrite:
		// the manifest claims, the oracle agrees, the status misses it.
		rec("s/2", "kill", -1, "in progress", true, &yes, "rename"),
		// A lying manifest (hypothetical): the manifest claims, the
		// oracle rejects.
		rec("s/3", "kill", -1, "in progress", true, &no, "sync"),
		rec("s/4", "term", 1, "completed", true, &no, "sync", trial.InvCompletedVerified, trial.InvErrorNotCompleted),
	}
	s := Summarize(recs)
	if s.Total.Trials != 5 || s.Total.Exit0 != 1 || s.Total.Completed != 2 || s.Total.InProgress != 3 || s.Total.Checked != 4 || s.Total.Complete != 2 || s.Total.Violations != 2 || s.Total.Late != 3 {
		t.Fatalf("total %+v", s.Total)
	}
	if len(s.Rows) != 2 || s.Rows[0].Plan != "kill" || s.Rows[0].Trials != 4 {
		t.Fatalf("rows %+v", s.Rows)
	}
	get := func(sig string) SignalRow {
		for _, r := range s.Signals {
			if r.Signal == sig && r.Plan == "all" {
				return r
			}
		}
		t.Fatalf("no row for %s", sig)
		return SignalRow{}
	}
	if r := get(SignalManifest); r.Checked != 4 || r.Claims != 4 || r.FalseClaims != 2 || r.Misses != 0 {
		t.Errorf("manifest %+v", r)
	}
	if r := get(SignalStatus); r.Claims != 2 || r.FalseClaims != 1 || r.Misses != 1 {
		t.Errorf("status %+v", r)
	}
	if r := get(SignalExit); r.Claims != 1 || r.FalseClaims != 0 || r.Misses != 1 {
		t.Errorf("exit %+v", r)
	}
	if len(s.Violations) != 2 || !strings.Contains(s.Violations[0], "s/4") {
		t.Errorf("violations %v", s.Violations)
	}
	if s.Phases["no fault"]["completed"] != 1 || s.Phases["sync"]["violation"] != 1 {
		t.Errorf("phases %v", s.Phases)
	}
	var b strings.Builder
	WriteTable(&b, s)
	if !strings.Contains(b.String(), "2 INVARIANT VIOLATIONS") {
		t.Errorf("table does not announce the violations:\n%s", b.String())
	}
	if svg := Chart(s); !strings.Contains(svg, "<svg") || !strings.Contains(svg, "rename") {
		t.Errorf("chart: %s", svg)
	}
}
