package campaign

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/report"
	"github.com/pgbb/pgbb/harness/trial"
)

// failing makes a record of trial index with a directory holding a file,
// breaking the invariants given.
func failing(t *testing.T, root, plan string, index int, invariants ...string) *trial.Record {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprintf("t%d", index))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pg_basebackup.log"), []byte("log"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &trial.Record{ID: fmt.Sprintf("s/%d", index), Scenario: "s", Index: index, Plan: plan, Dir: dir}
	for _, inv := range invariants {
		r.Violations = append(r.Violations, trial.Violation{Invariant: inv, Message: "m"})
	}
	return r
}

func TestKeepFailing(t *testing.T) {
	scratch := t.TempDir()
	c := &campaign{cfg: Config{RunDir: t.TempDir(), KeepFailing: 2}, res: &Result{Skipped: map[string]int{}}}
	type tc struct {
		rec  *trial.Record
		kept bool
	}
	const a, b = trial.InvCompletedVerified, trial.InvErrorNotCompleted
	var cases []tc
	add := func(kept bool, plan string, invs ...string) {
		cases = append(cases, tc{failing(t, scratch, plan, len(cases), invs...), kept})
	}
	add(true, "kill", a)
	add(true, "kill", a)
	add(false, "kill", a)
	add(true, "kill", a, b) // b's first
	add(false, "kill", a)
	add(true, "term", a) // another plan
	add(false, "kill", a)
	add(false, "kill") // passes: removed as always
	add(true, "kill", b)
	add(false, "kill", a, b)
	for _, x := range cases {
		dir := x.rec.Dir
		c.finish(x.rec)
		_, err := os.Stat(dir)
		if x.kept != (err == nil) || x.kept != (x.rec.Dir != "") {
			t.Errorf("%s (%s %v): directory kept %v (record says %q), want %v", x.rec.ID, x.rec.Plan, x.rec.Violations, err == nil, x.rec.Dir, x.kept)
		}
	}
	if c.res.Dropped != 4 {
		t.Errorf("Dropped %d, want 4", c.res.Dropped)
	}
	recs, err := report.LoadRecords(c.cfg.RunDir)
	if err != nil || len(recs) != len(cases) {
		t.Fatalf("%d records saved, want %d: %v", len(recs), len(cases), err)
	}
	sum := report.Summarize(recs)
	if sum.Total.Dropped != 4 || sum.Rows[0].Plan != "kill" || sum.Rows[0].Dropped != 4 {
		t.Errorf("summary: total %+v, rows %+v", sum.Total, sum.Rows)
	}
	var text strings.Builder
	report.WriteTable(&text, sum)
	for _, want := range []string{"4 failing trials' directories not kept", "kept:   no (over -keep-failing"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("no %q in\n%s", want, text.String())
		}
	}

	// 0 keeps every failing trial, Keep every trial.
	for _, cfg := range []Config{{KeepFailing: 0}, {KeepFailing: 1, Keep: true}} {
		cfg.RunDir = t.TempDir()
		c := &campaign{cfg: cfg, res: &Result{}}
		for i := range 3 {
			r := failing(t, scratch, "kill", 100+i, a)
			c.finish(r)
			if r.Dir == "" {
				t.Errorf("%+v: %s not kept", cfg, r.ID)
			}
		}
		if c.res.Dropped != 0 {
			t.Errorf("%+v: Dropped %d", cfg, c.res.Dropped)
		}
	}
}
