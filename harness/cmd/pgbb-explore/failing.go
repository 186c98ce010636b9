package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/explore"
	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
	"github.com/pgbb/pgbb/harness/workload"
)

// parseFailing parses -failing: kind names, comma-separated, or "none".
func parseFailing(s string) ([]failKind, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []failKind
	for _, name := range strings.Split(s, ",") {
		found := false
		for _, k := range failKinds {
			if k.name == name {
				out, found = append(out, k), true
			}
		}
		if !found {
			var names []string
			for _, k := range failKinds {
				names = append(names, k.name)
			}
			return nil, fmt.Errorf("-failing %q: want none or some of %s", name, strings.Join(names, ","))
		}
	}
	return out, nil
}

// failRun is one journaled failing run.
type failRun struct {
	kind    failKind
	rec     *trial.Record
	journal string
	took    time.Duration
}

// source is the source cluster of the failing runs, with its workload.
type source struct {
	cl *cluster.Cluster
	wl *workload.Workload
}

// startSource makes, starts and loads a source cluster in dir, as the
// campaign does for its workers, and starts the write workload.
func startSource(ctx context.Context, tgt campaign.Target, s scenario.Scenario, seed uint64, dir string) (*source, error) {
	if err := tgt.Acct.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := tgt.Acct.CheckReachable(dir); err != nil {
		return nil, err
	}
	src := &source{cl: cluster.New(tgt.Build.BinDir, tgt.Acct, filepath.Join(dir, "cluster"), "", cluster.WithTCP(true))}
	err := src.cl.Init(ctx)
	if err == nil {
		err = src.cl.Start(ctx, 60*time.Second)
	}
	if err == nil {
		err = src.cl.LoadDataset(ctx, filepath.Join(dir, "cluster"), s.Scale, s.Tablespaces)
	}
	if err == nil {
		src.wl, err = workload.Start(ctx, src.cl.ConnString(cluster.Database), s.Scale, s.Clients, seed)
	}
	if err != nil {
		src.stop()
		return nil, fmt.Errorf("source cluster: %w", err)
	}
	// Let the workload get going before the first run.
	time.Sleep(300 * time.Millisecond)
	return src, nil
}

// stop stops the workload and the cluster.
func (src *source) stop() {
	if src.wl != nil {
		src.wl.Stop()
	}
	src.cl.Cleanup()
}

// failingRuns makes one journaled run of each kind on a source cluster
// of their own, without --no-clean (the clean-up is what is explored),
// and copies each journal and record into o.out. It also returns how many
// invariants the runs' records broke (the trial's own checks).
func failingRuns(ctx context.Context, o options, tgt campaign.Target, s scenario.Scenario, kinds []failKind, stderr io.Writer) ([]failRun, int, error) {
	s.NoClean = false
	scratch, _, err := campaign.MakeScratch("pgbb-explore-fail-", []scenario.Scenario{s}, 1)
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(scratch)
	// The build user owns the scratch directory (MakeScratch makes it
	// mode 0700), as the campaign's.
	if err := tgt.Acct.MkdirAll(scratch, 0o755); err != nil {
		return nil, 0, err
	}
	src, err := startSource(ctx, tgt, s, campaign.TrialSeed(o.seed, s.Name, -300), filepath.Join(scratch, "source"))
	if err != nil {
		return nil, 0, err
	}
	defer src.stop()
	// The clean run's timeline bounds how long a run may take before the
	// trial calls it hung (ten times as long, plus a minute).
	var cal fault.Calibration
	if data, err := os.ReadFile(filepath.Join(o.out, s.Name+".record.json")); err == nil {
		var clean trial.Record
		if json.Unmarshal(data, &clean) == nil {
			cal.Timeline = clean.Timeline
		}
	}
	var runs []failRun
	broken := 0
	for i, k := range kinds {
		index := -301 - i
		start := time.Now()
		rec, err := trial.Run(ctx, trial.Spec{
			ID: s.Name + "/" + k.name, Index: index, Scenario: s, Fault: k.plan(), Seed: campaign.TrialSeed(o.seed, s.Name, index),
			BinDir: tgt.Build.BinDir, Acct: tgt.Acct, Variant: o.variant, StatusFile: true,
			Dir: filepath.Join(scratch, k.name), Cluster: src.cl, Workload: src.wl, Calibration: cal,
		})
		if err != nil {
			return runs, broken, fmt.Errorf("failing run %s: %w", k.name, err)
		}
		broken += len(rec.Violations)
		for _, v := range rec.Violations {
			fmt.Fprintf(stderr, "pgbb-explore: the failing run %s itself broke %s: %s\n", rec.ID, v.Invariant, v.Message)
		}
		if !rec.Fault.Fired {
			return runs, broken, fmt.Errorf("failing run %s: the fault did not fire: %s", k.name, rec.Fault.Detail)
		}
		if rec.Disk == nil || rec.Disk.Journal == "" {
			return runs, broken, fmt.Errorf("failing run %s: no journal", k.name)
		}
		journal := filepath.Join(o.out, s.Name+"."+k.name+".journal")
		if err := copyFile(rec.Disk.Journal, journal); err != nil {
			return runs, broken, err
		}
		rec.Disk.Journal = journal
		if err := saveJSON(strings.TrimSuffix(journal, ".journal")+".record.json", rec); err != nil {
			return runs, broken, err
		}
		runs = append(runs, failRun{kind: k, rec: rec, journal: journal, took: time.Since(start)})
	}
	return runs, broken, nil
}

// exploreFailingRuns makes the scenario's failing runs and explores each
// from its failure on. Run after the scratch directory of the runs is
// gone: --remove-if-dead is judged on states written at the paths the
// runs used.
func exploreFailingRuns(ctx context.Context, o options, tgt campaign.Target, s scenario.Scenario, stdout, stderr io.Writer) (int, error) {
	kinds, err := parseFailing(o.failing)
	if err != nil {
		return 0, err
	}
	if !s.Sync {
		// --no-sync: no version after the first is durable, so what a
		// failing run promises after a crash ("failed", durable at the
		// exit) does not hold by design; only its clean run is explored.
		fmt.Fprintf(stdout, "\n== %s: no failing runs with --no-sync (no version of the status file after the first is durable)\n", s.Name)
		return 0, nil
	}
	if len(kinds) == 0 {
		return 0, nil
	}
	runs, broken, err := failingRuns(ctx, o, tgt, s, kinds, stderr)
	if err != nil {
		return 2, asFinding(broken, err)
	}
	worst := 0
	if broken > 0 {
		worst = 1
	}
	for _, r := range runs {
		j, err := powerfs.ReadJournalFile(r.journal)
		if err != nil {
			return 2, err
		}
		res, err := exploreFailing(ctx, o, j, r.kind.reason)
		if err != nil {
			return 2, err
		}
		fmt.Fprintf(stdout, "\n== %s / %s (failing run, %s, exit %s): run %s, journal %d ops, %.1f MB\n", s.Name, r.kind.name,
			r.rec.Fault.Detail, exitText(r.rec), r.took.Round(time.Millisecond), len(j.Log), fileMB(r.journal))
		printFailResult(stdout, res)
		if err := saveJSON(filepath.Join(o.out, s.Name+"."+r.kind.name+".explore.json"), res); err != nil {
			return 2, err
		}
		if res.ViolationCount > 0 {
			worst = 1
		}
	}
	return worst, nil
}

// exploreFailing explores a failing run's journal from its failure on,
// judging --remove-if-dead on its states at the run's mount point.
func exploreFailing(ctx context.Context, o options, j *powerfs.Journal, reason string) (*explore.Result, error) {
	rel := statusRel(o, j)
	cfg := explore.Config{Status: rel, K: o.k, From: o.from, Failing: &explore.Failing{Reason: reason,
		Remover: &explore.TreeRemover{Root: j.Meta["mountpoint"], Status: rel}}}
	return explore.Explore(ctx, j, cfg)
}

// exitText says how a run ended.
func exitText(rec *trial.Record) string {
	if rec.Exit.Signal != "" {
		return rec.Exit.Signal
	}
	return fmt.Sprint(rec.Exit.Code)
}

// printFailResult prints a failing run's exploration.
func printFailResult(w io.Writer, res *explore.Result) {
	f := res.Fail
	fmt.Fprintf(w, "  from the failure: operations %d-%d of %d (%d prefixes, %d change the model), K=%d\n",
		res.From+1, res.Ops, res.Ops, res.Prefixes, res.Changing, res.K)
	fmt.Fprintf(w, "  status at the exit: %s; pid %d; WAL child: %d operations, the last #%d; \"failed\" seen live after #%d; last change of the backup directories #%d\n",
		f.FinalState, f.RunPID, f.WALChildOps, f.LastChildOp, f.FailedVisible, f.LastBackupOp)
	fmt.Fprintf(w, "  states built %d (pessimistic %d, unsynced subsets %d, torn status writes %d, end of run 1, live view %d)\n",
		res.States, res.Pessimistic, res.Subsets, res.Torn, res.States-res.Pessimistic-res.Subsets-res.Torn-1)
	fmt.Fprintf(w, "  retry: directories empty or gone %d, --remove-if-dead clears %d (%d shapes judged on disk); undecided %d; violations %d\n",
		f.RetryFree, f.Removable, f.Judged, res.UndecidedCount, res.ViolationCount)
	var why []string
	for k, n := range f.UndecidedWhy {
		why = append(why, fmt.Sprintf("%d: %s", n, k))
	}
	sort.Strings(why)
	for _, s := range why {
		fmt.Fprintf(w, "  undecided %s\n", s)
	}
	fmt.Fprintf(w, "  time %s (replay of the reference %s), %.0f states/s\n",
		res.Elapsed.Round(time.Millisecond), res.Replay.Round(time.Millisecond), res.PerSecond())
	printViolations(w, res)
}

// printViolations prints the violations per rule and the first ones.
func printViolations(w io.Writer, res *explore.Result) {
	rules := make([]string, 0, len(res.ByRule))
	for rule := range res.ByRule {
		rules = append(rules, rule)
	}
	sort.Strings(rules)
	for _, rule := range rules {
		fmt.Fprintf(w, "  VIOLATION %s: %d states (first after %s of exploring)\n", rule, res.ByRule[rule], res.FirstViolation.Round(time.Millisecond))
	}
	for i, v := range res.Violations {
		if i == 5 {
			fmt.Fprintf(w, "    ... (%d more kept in the results)\n", len(res.Violations)-5)
			break
		}
		fmt.Fprintf(w, "    %s %s: %s\n", v.State, v.Rule, v.Message)
	}
}
