package campaign

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/report"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

func TestParseShard(t *testing.T) {
	for in, want := range map[string]Shard{"": {}, "1/1": {1, 1}, "2/4": {2, 4}} {
		if got, err := ParseShard(in); err != nil || got != want || got.String() != in {
			t.Errorf("ParseShard(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"0/2", "3/2", "1/0", "1", "a/b", "1/2/3", "-1/2"} {
		if _, err := ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q): no error", in)
		}
	}
}

// fakeScenarios are scenarios of several sizes and numbers of plans, one
// with its own seed.
func fakeScenarios() []scenario.Scenario {
	return []scenario.Scenario{
		{Name: "a", Faults: []string{"kill", "term", "int", "kill-syscall"}, Trials: 13},
		{Name: "b", Faults: []string{"kill", "term"}, Trials: 6, Seed: 99},
		{Name: "c", Faults: []string{"powerloss"}, Trials: 1},
		{Name: "d", Faults: []string{"kill", "term", "int"}, Trials: 20},
	}
}

// TestShardTrials checks that n shards together run every trial of the
// campaign once, in index order, no shard more than one trial more than
// another, each with a mix of plans, and that the deal depends on the seed.
func TestShardTrials(t *testing.T) {
	scs := fakeScenarios()
	whole := ShardTrials(scs, 42, Shard{})
	for k, s := range scs {
		if len(whole[k]) != s.Trials || !slices.IsSorted(whole[k]) {
			t.Fatalf("whole campaign, scenario %s: %v", s.Name, whole[k])
		}
	}
	for n := 1; n <= 8; n++ {
		union := make([][]int, len(scs))
		minN, maxN := 1<<30, 0
		for i := 1; i <= n; i++ {
			got := ShardTrials(scs, 42, Shard{i, n})
			if !cmp.Equal(got, ShardTrials(scs, 42, Shard{i, n})) {
				t.Fatalf("shard %d/%d: not deterministic", i, n)
			}
			count := 0
			for k := range scs {
				if !slices.IsSorted(got[k]) {
					t.Errorf("shard %d/%d, scenario %s: %v not in index order", i, n, scs[k].Name, got[k])
				}
				union[k] = append(union[k], got[k]...)
				count += len(got[k])
			}
			minN, maxN = min(minN, count), max(maxN, count)
		}
		for k := range scs {
			slices.Sort(union[k])
			if !slices.Equal(union[k], whole[k]) {
				t.Errorf("%d shards, scenario %s: together %v, want %v", n, scs[k].Name, union[k], whole[k])
			}
		}
		if maxN-minN > 1 {
			t.Errorf("%d shards: from %d to %d trials each", n, minN, maxN)
		}
	}
	// Two shards of scenario a (4 plans): each gets more than two plans.
	for i := 1; i <= 2; i++ {
		plans := map[string]bool{}
		for _, index := range ShardTrials(scs, 42, Shard{i, 2})[0] {
			plans[TrialPlan(scs[0], index)] = true
		}
		if len(plans) < 3 {
			t.Errorf("shard %d/2 of scenario a runs only plans %v", i, plans)
		}
	}
	if cmp.Equal(ShardTrials(scs, 42, Shard{1, 2}), ShardTrials(scs, 43, Shard{1, 2})) {
		t.Error("seeds 42 and 43 deal the same trials to shard 1/2")
	}
}

// fakeWork is a worker that runs no PostgreSQL: a control run, then for
// each trial a record whose outcome is drawn from the trial's seed alone,
// as a real trial's random choices are. Every seventh breaks an invariant.
func fakeWork(c *campaign, scratch string) workFunc {
	return func(ctx context.Context, s scenario.Scenario, seed int64, w int, queue <-chan int, deadline time.Time) error {
		c.finish(&trial.Record{ID: c.runID(s, "control", w), Scenario: s.Name, Index: -1 - w, Plan: scenario.PlanNone})
		for index := range queue {
			ts := TrialSeed(seed, s.Name, index)
			rng := rand.New(rand.NewPCG(ts, 0x9bb))
			r := &trial.Record{ID: TrialID(s, index), Scenario: s.Name, Index: index, Plan: TrialPlan(s, index), Seed: ts,
				Exit: trial.Exit{Code: rng.IntN(3)}, Dir: filepath.Join(scratch, fmt.Sprintf("%s-%d", s.Name, index))}
			if err := os.MkdirAll(r.Dir, 0o755); err != nil {
				return err
			}
			if rng.IntN(7) == 0 {
				r.Violations = []trial.Violation{{Invariant: trial.InvErrorNotCompleted, Message: fmt.Sprintf("exit %d", r.Exit.Code)}}
			}
			c.finish(r)
		}
		return nil
	}
}

// fakeRun runs a campaign of fakeScenarios with fake workers into a new
// run directory with its run.json, as pgbb-crash does, and returns it.
func fakeRun(t *testing.T, seed int64, parallel int, sh Shard) string {
	t.Helper()
	dir := t.TempDir()
	scs := fakeScenarios()
	trials := map[string]int{}
	for _, s := range scs {
		trials[s.Name] = s.Trials
	}
	info := report.RunInfo{Version: "18.6", Major: 18, Variant: "patched", Backend: "native", Seed: seed,
		Scenarios: []string{"fake"}, Trials: trials, ShardIndex: sh.Index, ShardCount: sh.Count}
	if err := report.SaveRunInfo(dir, info); err != nil {
		t.Fatal(err)
	}
	c := newCampaign(Config{Scenarios: scs, Seed: seed, Parallel: parallel, Shard: sh, RunDir: dir, KeepFailing: 2,
		ReplayCommand: func(id string) string { return "replay " + id }})
	c.work = fakeWork(c, t.TempDir())
	if err := c.run(context.Background()); err != nil {
		t.Fatalf("campaign (shard %v): %v", sh, err)
	}
	return dir
}

// outcome is what a trial's record says, apart from where and when it
// ran.
type outcome struct {
	Plan       string
	Seed       uint64
	Exit       int
	Violations []trial.Violation
	Replay     string
}

// outcomes returns the outcomes of the trials (not the control runs) of
// records, by trial id.
func outcomes(recs []*trial.Record) map[string]outcome {
	out := map[string]outcome{}
	for _, r := range recs {
		if r.Index >= 0 {
			out[r.ID] = outcome{r.Plan, r.Seed, r.Exit.Code, r.Violations, r.Replay}
		}
	}
	return out
}

// trialRows is the summary's table of the trials, without the control
// runs (one per worker, so per shard) and without what depends on the
// order trials finished in (which failing ones kept their directories).
func trialRows(recs []*trial.Record) []report.Row {
	var trials []*trial.Record
	for _, r := range recs {
		if r.Index >= 0 {
			trials = append(trials, r)
		}
	}
	rows := report.Summarize(trials).Rows
	for i := range rows {
		rows[i].Dropped = 0
	}
	return rows
}

// TestShardsMerge runs a seeded campaign of fake trials whole (-parallel
// 1) and as two and three shards, merges the shards, and finds the same
// trials with the same outcomes; then merges that must fail.
func TestShardsMerge(t *testing.T) {
	whole, err := report.LoadRecords(fakeRun(t, 42, 1, Shard{}))
	if err != nil {
		t.Fatal(err)
	}
	want := outcomes(whole)
	if len(want) != 40 {
		t.Fatalf("the whole campaign ran %d trials, want 40", len(want))
	}
	violations := 0
	for _, o := range want {
		violations += len(o.Violations)
	}
	if violations == 0 {
		t.Fatal("no fake trial broke an invariant: the comparison would miss failures")
	}
	shardDirs := map[int][]string{}
	for _, n := range []int{2, 3} {
		for i := 1; i <= n; i++ {
			shardDirs[n] = append(shardDirs[n], fakeRun(t, 42, 1+i%2, Shard{i, n}))
		}
		merged, err := report.MergeShards(shardDirs[n])
		if err != nil {
			t.Fatalf("merge %d shards: %v", n, err)
		}
		if diff := cmp.Diff(want, outcomes(merged.Records)); diff != "" {
			t.Errorf("%d shards merged differ from the whole campaign (-whole +merged):\n%s", n, diff)
		}
		if diff := cmp.Diff(trialRows(whole), trialRows(merged.Records)); diff != "" {
			t.Errorf("%d shards merged: summary differs (-whole +merged):\n%s", n, diff)
		}
		if merged.Info.ShardCount != 0 || merged.Info.Seed != 42 {
			t.Errorf("merged run.json %+v", merged.Info)
		}
	}

	other := fakeRun(t, 43, 1, Shard{2, 2})
	for _, tc := range []struct {
		dirs []string
		want string
	}{
		{shardDirs[2][:1], "shard 2/2 missing"},
		{[]string{shardDirs[2][0], shardDirs[2][0]}, "shard 1/2 given twice"},
		{[]string{shardDirs[2][0], other}, "ran another seed (42, 43)"},
		{[]string{shardDirs[2][0], shardDirs[3][1]}, "another number of shards (2, 3)"},
		{[]string{shardDirs[2][0], t.TempDir()}, "no run.json"},
	} {
		_, err := report.MergeShards(tc.dirs)
		if !errors.Is(err, report.ErrBadShards) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("merge %v: %v, want %q", tc.dirs, err, tc.want)
		}
	}
}

// TestCalibratorIndices: every calibration run a plan can ask for has an
// index of its own below the trials' (its seed), distinct from the
// control's and the other runs'.
func TestCalibratorIndices(t *testing.T) {
	seen := map[int]string{controlIndex: "control"}
	for _, c := range fault.Calibrators(scenario.Plans()) {
		i, ok := calibratorIndex[c.Label()]
		if !ok || i >= controlIndex {
			t.Errorf("calibration run %s has no index below the control's (%d)", c.Label(), i)
			continue
		}
		if other, dup := seen[i]; dup {
			t.Errorf("calibration run %s has the index of %s", c.Label(), other)
		}
		seen[i] = c.Label()
	}
	if len(seen) != 3 {
		t.Errorf("calibration runs: %v, want the control, count and disk-count", seen)
	}
}

// TestValidate: a scenario made in code, not parsed, still meets the
// scenario's rules (what each plan needs of the options) before a
// campaign starts, and is named by file and line when it does not.
func TestValidate(t *testing.T) {
	s := scenario.Defaults()
	s.Name, s.File, s.Line = "code", "made-in-code.json", 3
	s.Faults = []string{scenario.PlanKill}
	if err := Validate([]scenario.Scenario{s}); err != nil {
		t.Fatalf("a possible scenario: %v", err)
	}
	s.WALMethod, s.Faults = "fetch", []string{scenario.PlanKillWALChild}
	err := Validate([]scenario.Scenario{s})
	if err == nil || !strings.Contains(err.Error(), "made-in-code.json:3: fault plan kill-wal-child needs wal_method stream") {
		t.Fatalf("kill-wal-child without streaming: %v", err)
	}
	s.Faults = []string{"no-such-plan"}
	if err := Validate([]scenario.Scenario{s}); err == nil {
		t.Fatal("an unknown plan was accepted")
	}
}
