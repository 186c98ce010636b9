package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/explore"
	"github.com/pgbb/pgbb/harness/pgsrc"
	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
	"github.com/pgbb/pgbb/harness/trial"
)

// prepare builds (or reuses) the PostgreSQL of the options.
func prepare(ctx context.Context, o options, log io.Writer) (campaign.Target, error) {
	major, err := pgsrc.ParseMajor(o.pg)
	if err != nil {
		return campaign.Target{}, err
	}
	variant, err := build.ParseVariant(o.variant)
	if err != nil {
		return campaign.Target{}, err
	}
	b, err := build.New(ctx, append(build.FromEnv(), build.WithBackend(build.BackendNative), build.WithLog(log))...)
	if err != nil {
		return campaign.Target{}, err
	}
	spec := build.Spec{Major: major, Variant: variant}
	if o.patches != "" {
		var dirs []string
		for _, d := range filepath.SplitList(o.patches) {
			abs, err := filepath.Abs(d)
			if err != nil {
				return campaign.Target{}, err
			}
			dirs = append(dirs, abs)
		}
		spec.PatchDir = strings.Join(dirs, string(filepath.ListSeparator))
		spec.Name = "series-" + filepath.Base(dirs[len(dirs)-1])
	}
	return campaign.Prepare(ctx, b, spec, log)
}

// exploreScenarios makes one clean run per scenario and explores it.
func exploreScenarios(ctx context.Context, o options, stdout, stderr io.Writer) (int, error) {
	scs, err := scenario.LoadPaths(strings.Split(o.scenarios, ",")...)
	if err != nil {
		return 2, err
	}
	tgt, err := prepare(ctx, o, stderr)
	if err != nil {
		return 2, err
	}
	if !tgt.StatusFile {
		return 2, fmt.Errorf("the %s build writes no status file: nothing to explore", o.variant)
	}
	if o.out == "" {
		o.out = filepath.Join(envOr("PGBB_CACHE", ".cache"), "explore", time.Now().UTC().Format("20060102-150405"))
	}
	worst := 0
	for _, s := range scs {
		if o.scale > 0 {
			s.Scale = o.scale
		}
		if o.clean {
			code, err := scenarioExit(s.Name, stderr)(exploreScenario(ctx, o, tgt, s, stdout, stderr))
			if err != nil {
				return 2, err
			}
			worst = max(worst, code)
		}
		code, err := scenarioExit(s.Name, stderr)(exploreFailingRuns(ctx, o, tgt, s, stdout, stderr))
		if err != nil {
			return 2, err
		}
		worst = max(worst, code)
	}
	fmt.Fprintf(stdout, "journals, records and results: %s\n", o.out)
	return worst, nil
}

// scenarioExit returns what a scenario's exploration means for the exit
// code: a clean run that broke invariants is a finding (1, reported on
// stderr, and the other scenarios are still explored), any other error a
// failure to judge (2).
func scenarioExit(name string, stderr io.Writer) func(int, error) (int, error) {
	return func(code int, err error) (int, error) {
		var broke *brokeError
		switch {
		case errors.As(err, &broke):
			fmt.Fprintf(stderr, "pgbb-explore: scenario %s: %v\n", name, err)
			return 1, nil
		case err != nil:
			return 2, fmt.Errorf("scenario %s: %w", name, err)
		}
		return code, nil
	}
}

// exploreScenario makes the clean run of one scenario and explores it.
func exploreScenario(ctx context.Context, o options, tgt campaign.Target, s scenario.Scenario, stdout, stderr io.Writer) (int, error) {
	t0 := time.Now()
	rec, journal, broken, err := cleanRun(ctx, o, tgt, s, stderr)
	if err != nil {
		return 2, asFinding(broken, err)
	}
	runTime := time.Since(t0)
	j, err := powerfs.ReadJournalFile(journal)
	if err != nil {
		return 2, err
	}
	cfg := explore.Config{Status: statusRel(o, j), K: o.k, From: -1}
	res, err := explore.Explore(ctx, j, cfg)
	if err != nil {
		return 2, asFinding(broken, err)
	}
	judged, err := judgeSample(ctx, o, tgt, rec, j, res, filepath.Join(o.out, s.Name+".states"))
	if err != nil {
		return 2, err
	}
	fmt.Fprintf(stdout, "\n== %s (scale %d, %s): clean run %s, journal %d ops, %.1f MB\n", s.Name, s.Scale, s.Format,
		runTime.Round(time.Millisecond), len(j.Log), fileMB(journal))
	printResult(stdout, res, judged)
	if err := sweep(ctx, o, j, cfg, stdout); err != nil {
		return 2, err
	}
	if err := saveJSON(filepath.Join(o.out, s.Name+".explore.json"), struct {
		*explore.Result
		Oracle []judgement `json:"oracle"`
	}{res, judged}); err != nil {
		return 2, err
	}
	if res.ViolationCount > 0 || failed(judged) || broken > 0 {
		return 1, nil
	}
	return 0, nil
}

// brokeError is an exploration that could not be done because the clean
// run it starts from already broke invariants: the series under test is
// at fault, which is a violation (exit 1), not a failure to judge (2).
type brokeError struct {
	n   int
	err error
}

func (e *brokeError) Error() string {
	return fmt.Sprintf("the clean run itself broke %d invariant(s) (a violation), and its finishing part could not be explored: %v", e.n, e.err)
}

func (e *brokeError) Unwrap() error { return e.err }

// asFinding makes err a brokeError when the clean run broke invariants.
func asFinding(broken int, err error) error {
	if broken > 0 {
		return &brokeError{n: broken, err: err}
	}
	return err
}

// cleanRun runs the scenario's control and its journaled clean run on the
// power-loss layer (the campaign's calibration of the disk plans, and no
// trial), and copies the journal and the record into o.out.
//
// It also returns how many invariants the campaign's records (control,
// calibration and clean runs) broke, whatever else went wrong.
func cleanRun(ctx context.Context, o options, tgt campaign.Target, s scenario.Scenario, stderr io.Writer) (*trial.Record, string, int, error) {
	// One disk plan makes the campaign calibrate on the layer; a budget
	// that is over before the first trial skips the trials themselves.
	s.Faults = []string{scenario.PlanPowerLossRename}
	s.Trials, s.Budget = 1, time.Nanosecond
	scratch, _, err := campaign.MakeScratch("pgbb-explore-", []scenario.Scenario{s}, 1)
	if err != nil {
		return nil, "", 0, err
	}
	defer os.RemoveAll(scratch)
	res, err := campaign.Run(ctx, campaign.Config{
		Scenarios: []scenario.Scenario{s}, BinDir: tgt.Build.BinDir, Acct: tgt.Acct, Variant: o.variant,
		StatusFile: true, Parallel: 1, Seed: o.seed, Scratch: scratch, RunDir: o.out, Keep: true, Log: stderr,
	})
	if err != nil {
		return nil, "", 0, err
	}
	broken := 0
	for _, rec := range res.Records {
		broken += len(rec.Violations)
	}
	for _, rec := range res.Records {
		// The trial's own checks (its torn status views, say) can
		// already catch a mistake; the exploration goes on.
		for i, v := range rec.Violations {
			if i == 3 {
				fmt.Fprintf(stderr, "pgbb-explore: ... and %d more (the record has them)\n", len(rec.Violations)-3)
				break
			}
			fmt.Fprintf(stderr, "pgbb-explore: the clean run %s itself broke %s: %s\n", rec.ID, v.Invariant, v.Message)
		}
		if rec.Disk == nil || rec.Disk.Journal == "" {
			continue
		}
		journal := filepath.Join(o.out, s.Name+".journal")
		if err := copyFile(rec.Disk.Journal, journal); err != nil {
			return nil, "", broken, err
		}
		rec.Disk.Journal = journal
		return rec, journal, broken, saveJSON(strings.TrimSuffix(journal, ".journal")+".record.json", rec)
	}
	return nil, "", broken, fmt.Errorf("no journaled clean run on the power-loss layer among %d records", len(res.Records))
}

// statusRel returns the status file's path relative to the layer's root:
// -status, else the one the journal names (the run's --status-file, in a
// directory of its own), else, for a journal that names none, the
// target's backup_status.
func statusRel(o options, j *powerfs.Journal) string {
	if o.status != "" {
		return o.status
	}
	if rel, err := filepath.Rel(j.Meta["mountpoint"], j.Meta["status"]); err == nil && j.Meta["status"] != "" && !strings.HasPrefix(rel, "..") {
		return filepath.ToSlash(rel)
	}
	target := "target"
	if rel, err := filepath.Rel(j.Meta["mountpoint"], j.Meta["target"]); err == nil && j.Meta["target"] != "" {
		target = filepath.ToSlash(rel)
	}
	return target + "/" + status.FileName
}

// sweep explores again with each K of -ksweep and prints the counts.
func sweep(ctx context.Context, o options, j *powerfs.Journal, cfg explore.Config, w io.Writer) error {
	if len(o.ksweep) == 0 {
		return nil
	}
	fmt.Fprintf(w, "  %3s %9s %9s %9s %9s %10s %9s %11s\n", "K", "states", "subsets", "torn", "undecided", "violations", "time", "states/s")
	for _, k := range o.ksweep {
		cfg.K = k
		res, err := explore.Explore(ctx, j, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %3d %9d %9d %9d %9d %10d %9s %11.0f\n", k, res.States, res.Subsets, res.Torn,
			res.UndecidedCount, res.ViolationCount, res.Elapsed.Round(time.Millisecond), res.PerSecond())
	}
	return nil
}

// printResult prints an exploration's counts.
func printResult(w io.Writer, res *explore.Result, judged []judgement) {
	fmt.Fprintf(w, "  finishing part: operations %d-%d of %d (%d prefixes, %d change the model), K=%d\n",
		res.From+1, res.Ops, res.Ops, res.Prefixes, res.Changing, res.K)
	fmt.Fprintf(w, "  states built %d (pessimistic %d, unsynced subsets %d, torn status writes %d, end of run 1)\n",
		res.States, res.Pessimistic, res.Subsets, res.Torn)
	fmt.Fprintf(w, "  judged cheaply %d (nothing claimed %d, completed and whole %d, violations %d); undecided %d, to the oracle %d\n",
		res.Cheap(), res.NothingClaimed, res.Complete, res.ViolationCount, res.UndecidedCount, len(judged))
	fmt.Fprintf(w, "  time %s (replay of the reference %s), %.0f states/s\n",
		res.Elapsed.Round(time.Millisecond), res.Replay.Round(time.Millisecond), res.PerSecond())
	for rule, n := range res.ByRule {
		fmt.Fprintf(w, "  VIOLATION %s: %d states (first after %s of exploring)\n", rule, n, res.FirstViolation.Round(time.Millisecond))
	}
	for i, v := range res.Violations {
		if i == 5 {
			fmt.Fprintf(w, "    ... (%d more kept in the results)\n", len(res.Violations)-5)
			break
		}
		fmt.Fprintf(w, "    %s %s: %s\n", v.State, v.Rule, v.Message)
	}
	for _, j := range judged {
		fmt.Fprintf(w, "  oracle on %s: complete=%v %s\n", j.State, j.Complete, j.Reason)
	}
}

// exploreSaved explores a saved journal.
func exploreSaved(ctx context.Context, o options, w io.Writer) (int, error) {
	j, err := powerfs.ReadJournalFile(o.journal)
	if err != nil {
		return 2, err
	}
	if o.reason != "" {
		res, err := exploreFailing(ctx, o, j, o.reason)
		if err != nil {
			return 2, err
		}
		fmt.Fprintf(w, "== %s: %d ops, status file %s, a failing run (REASON names %q)\n", o.journal, len(j.Log), statusRel(o, j), o.reason)
		printFailResult(w, res)
		if res.ViolationCount > 0 {
			return 1, nil
		}
		return 0, nil
	}
	cfg := explore.Config{Status: statusRel(o, j), K: o.k, From: o.from}
	res, err := explore.Explore(ctx, j, cfg)
	if err != nil {
		return 2, err
	}
	fmt.Fprintf(w, "== %s: %d ops, status file %s\n", o.journal, len(j.Log), cfg.Status)
	printResult(w, res, nil)
	if err := sweep(ctx, o, j, cfg, w); err != nil {
		return 2, err
	}
	if res.ViolationCount > 0 {
		return 1, nil
	}
	return 0, nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}

func saveJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func fileMB(path string) float64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return float64(st.Size()) / (1 << 20)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
