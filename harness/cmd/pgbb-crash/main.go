// Command pgbb-crash runs the crash campaign: it builds (or reuses) the
// PostgreSQL under test, runs the scenarios' trials with their fault
// plans, prints a summary table and writes one JSON record per trial, a
// summary, an HTML report with a chart and a JUnit XML report into the run
// directory. It exits 1 when any invariant was violated, 2 when the
// campaign could not run.
//
// With -shard i/n it runs the i-th of n shares of the seeded campaign's
// trials; -merge then writes, from the n run directories, what one run of
// the whole campaign would have (summary, reports, exit code).
//
// With -compare it runs nothing: it loads the given run directories and
// prints, per fault plan, how each operator signal did in each of their
// builds, side by side, and writes comparison.json and comparison.html.
//
//	pgbb-crash [-scenarios scenarios/smoke] [-pg 18] [-variant patched|stock] [-patches DIR]
//	           [-backend auto|native|container] [-parallel N] [-seed N] [-replay ID] [-keep]
//	           [-trials N] [-times K] [-keep-failing N] [-shard i/n]
//	pgbb-crash -merge RUNDIR,RUNDIR[,RUNDIR...] [-out DIR]
//	pgbb-crash -compare RUNDIR[,RUNDIR...] [-out DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/pgsrc"
	"github.com/pgbb/pgbb/harness/report"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgbb-crash: %v\n", err)
	}
	os.Exit(code)
}

type options struct {
	scenarios string
	pg        string
	variant   string
	patches   string
	backend   string
	parallel  int
	seed      int64
	trials    int
	times     int
	replay    string
	keep      bool
	out       string
	scratch   string
	install   string
	image     string
	// keepFailing bounds the failing trials kept per invariant and plan.
	keepFailing int
	// shard is the share of the trials to run (-shard).
	shard campaign.Shard
	// compare lists run directories to compare instead of running a
	// campaign; merge the run directories of shards to merge.
	compare []string
	merge   []string
}

// parseOptions parses the command line. -compare and -merge run no
// campaign, so only -out goes with them.
func parseOptions(fs *flag.FlagSet, args []string) (options, error) {
	var o options
	var compare, merge, shard string
	fs.StringVar(&o.scenarios, "scenarios", "scenarios/smoke", "scenario files or directories, comma-separated")
	fs.StringVar(&o.pg, "pg", "18", "PostgreSQL major version: "+pgsrc.SupportedMajors())
	fs.StringVar(&o.variant, "variant", string(build.Patched), "patched or stock")
	fs.StringVar(&o.patches, "patches", "", "patch series directory (default patches/pg<version>)")
	fs.StringVar(&o.backend, "backend", envOr("BACKEND", build.BackendAuto), "auto, native or container (env BACKEND)")
	fs.IntVar(&o.parallel, "parallel", runtime.GOMAXPROCS(0), "trials run in parallel (one source cluster each)")
	fs.Int64Var(&o.seed, "seed", 0, "campaign seed (0: from the clock, printed)")
	fs.IntVar(&o.trials, "trials", 0, "run at most this many trials of each scenario (0: as many as it says)")
	fs.IntVar(&o.times, "times", 1, "run K times the trials each scenario says, with K times its budget (before -trials)")
	fs.StringVar(&o.replay, "replay", "", "run only this trial (<scenario>/<index>), keeping its directories")
	fs.BoolVar(&o.keep, "keep", false, "keep every trial's directories, not only failing ones")
	fs.IntVar(&o.keepFailing, "keep-failing", 3, "keep the directories of only the first N failing trials of each invariant and fault plan (0: all)")
	fs.StringVar(&shard, "shard", "", "run only the i-th of n shares of the campaign's trials (i/n, 1 <= i <= n; give every shard the same -seed), to -merge later")
	fs.StringVar(&o.out, "out", "", "run directory for records and report (default .cache/crash/<time>-<pg>-<variant>); with -compare or -merge, where the comparison or merged run goes (default .cache/crash/compare-<time> or <time>-merged)")
	fs.StringVar(&o.install, "install", "", "use this PostgreSQL installation prefix (with amcheck) instead of building")
	fs.StringVar(&o.image, "image", "", "with -backend container: use this existing image of the container build instead of building")
	fs.StringVar(&o.scratch, "scratch", "", "scratch directory for clusters and backups (default a new directory in /dev/shm when it is a tmpfs with room, else in $TMPDIR)")
	fs.StringVar(&compare, "compare", "", "run no campaign: compare the operator signals of these run directories (comma-separated), one column each")
	fs.StringVar(&merge, "merge", "", "run no campaign: merge the run directories of every shard of one campaign (comma-separated) into one run's records, summary and reports; exit 1 on violations")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	var err error
	if o.shard, err = campaign.ParseShard(shard); err != nil {
		return o, fmt.Errorf("-shard: %w", err)
	}
	if !o.shard.Whole() && o.seed == 0 {
		return o, errors.New("-shard needs -seed: every shard of a campaign must run the same seed")
	}
	var mode string
	var campaignFlags []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "compare", "merge":
			mode += "-" + f.Name
		case "out":
		default:
			campaignFlags = append(campaignFlags, "-"+f.Name)
		}
	})
	switch mode {
	case "":
		return o, nil
	case "-compare-merge", "-merge-compare":
		return o, errors.New("-compare and -merge cannot go together")
	}
	dirs := splitList(compare + merge)
	if len(dirs) == 0 {
		return o, fmt.Errorf("%s: no run directories given", mode)
	}
	if len(campaignFlags) > 0 {
		return o, fmt.Errorf("%s runs no campaign: %s cannot go with it (only -out can)", mode, strings.Join(campaignFlags, ", "))
	}
	if mode == "-compare" {
		o.compare = dirs
	} else {
		o.merge = dirs
	}
	return o, nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

func run(args []string) (int, error) {
	o, err := parseOptions(flag.NewFlagSet("pgbb-crash", flag.ExitOnError), args)
	if err != nil {
		return 2, err
	}
	if len(o.compare) > 0 {
		return compare(o, os.Stdout)
	}
	if len(o.merge) > 0 {
		return merge(o, os.Stdout)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	major, err := pgsrc.ParseMajor(o.pg)
	if err != nil {
		return 2, err
	}
	variant, err := build.ParseVariant(o.variant)
	if err != nil {
		return 2, err
	}
	if variant == build.Stock && o.patches != "" {
		return 2, errors.New("-patches applies to the patched variant only")
	}
	paths := splitList(o.scenarios)
	scs, err := scenario.LoadPaths(paths...)
	if err != nil {
		return 2, err
	}
	if err := sizeScenarios(scs, o.times, o.trials); err != nil {
		return 2, err
	}
	if o.keepFailing < 0 {
		return 2, fmt.Errorf("-keep-failing %d: want 0 or more", o.keepFailing)
	}
	if o.replay != "" && !o.shard.Whole() {
		return 2, errors.New("-replay runs one trial: it cannot go with -shard")
	}
	if err := campaign.Validate(scs); err != nil {
		return 2, err
	}
	switch o.backend {
	case build.BackendAuto:
		// The container when a Docker engine answers (the builder
		// decides below), except for what only runs natively.
		if o.install != "" {
			fmt.Fprintln(os.Stderr, "pgbb-crash: backend: native (auto, with -install)")
			o.backend = build.BackendNative
		}
	case build.BackendNative, build.BackendContainer:
	default:
		return 2, fmt.Errorf("unknown backend %q: auto, native or container", o.backend)
	}
	if o.install != "" && o.backend == build.BackendContainer {
		return 2, errors.New("-install works with the native backend only")
	}
	if o.image != "" && o.backend != build.BackendContainer {
		return 2, errors.New("-image works with -backend container only")
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano() % 1_000_000_007
	}

	b, err := build.New(ctx, append(build.FromEnv(), build.WithBackend(o.backend), build.WithLog(os.Stderr))...)
	if err != nil {
		return 2, err
	}
	// auto: the campaign runs where the builder builds.
	o.backend = b.Backend()
	spec := build.Spec{Major: major, Variant: variant}
	label := string(variant)
	if o.patches != "" {
		// A series may stack directories (dir1:dir2): each is made
		// absolute, and the last names the build.
		var dirs []string
		for _, d := range filepath.SplitList(o.patches) {
			abs, err := filepath.Abs(d)
			if err != nil {
				return 2, err
			}
			dirs = append(dirs, abs)
		}
		spec.PatchDir = strings.Join(dirs, string(filepath.ListSeparator))
		spec.Name = "series-" + filepath.Base(dirs[len(dirs)-1])
		label = spec.Name
	}
	runDir := o.out
	if runDir == "" {
		runDir = filepath.Join(b.CacheDir(), "crash", time.Now().UTC().Format("20060102-150405")+"-"+fmt.Sprintf("%d-%s", major, label))
		if !o.shard.Whole() {
			runDir += fmt.Sprintf("-shard%dof%d", o.shard.Index, o.shard.Count)
		}
	}
	total := 0
	for k, indices := range campaign.ShardTrials(scs, o.seed, o.shard) {
		s := scs[k]
		if len(indices) == 0 {
			continue
		}
		workers := min(o.parallel, len(indices))
		total += len(indices) + workers
		if slices.Contains(s.Faults, scenario.PlanSyscallKill) {
			total += workers
		}
		if campaign.NeedsDiskCalibration(s) {
			total += workers
		}
	}
	if o.replay != "" {
		total = 2
		o.parallel = 1
	}
	prog := &progress{w: os.Stderr, total: total}
	replay := func(id string) string { return replayCommand(o, major, id) }

	var (
		result  *campaign.Result
		runErr  error
		version string
	)
	// run.json says what this run directory holds (report.LoadRun).
	saveRunInfo := func() error {
		trials := map[string]int{}
		for _, s := range scs {
			trials[s.Name] = s.Trials
		}
		return report.SaveRunInfo(runDir, report.RunInfo{
			Version: version, Major: major, Variant: label, Backend: o.backend, Seed: o.seed,
			Scenarios: paths, Trials: trials, ShardIndex: o.shard.Index, ShardCount: o.shard.Count,
			Replay: o.replay, Started: time.Now().UTC(),
		})
	}
	if o.backend == build.BackendContainer {
		var res build.Result
		if o.image != "" {
			res = build.Result{Image: o.image, Version: o.pg + " (image)", Prefix: "/usr/local/pgsql", BuildTree: "/home/pgbuild/src"}
		} else if res, err = b.Build(ctx, spec); err != nil {
			return 2, err
		}
		version = res.Version
		if err := saveRunInfo(); err != nil {
			return 2, err
		}
		root, err := build.FindRepoRoot(".")
		if err != nil {
			return 2, err
		}
		tmp, err := os.MkdirTemp("", "pgbb-agent-")
		if err != nil {
			return 2, err
		}
		defer os.RemoveAll(tmp)
		agent, err := campaign.BuildAgent(ctx, root, tmp)
		if err != nil {
			return 2, err
		}
		fmt.Fprintf(os.Stderr, "pgbb-crash: PostgreSQL %s %s in a container from %s, seed %d, %d scenarios, parallel %d\n",
			res.Version, label, res.Image, o.seed, len(scs), o.parallel)
		// The agent's scratch is a directory of the host, bind-mounted,
		// so that the failing trials it keeps outlive the container.
		hostScratch, err := os.MkdirTemp(scratchRoot(o.scratch), "pgbb-crash-c")
		if err != nil {
			return 2, err
		}
		if err := os.Chmod(hostScratch, 0o755); err != nil {
			return 2, err
		}
		defer removeEmpty(hostScratch, true)
		fmt.Fprintf(os.Stderr, "pgbb-crash: run directory %s, scratch %s (bind-mounted into the container)\n", runDir, hostScratch)
		job := campaign.Job{Scenarios: scs, Seed: o.seed, Parallel: o.parallel, Replay: o.replay, Keep: o.keep, Variant: label,
			Prefix: res.Prefix, BuildTree: res.BuildTree, KeepFailing: o.keepFailing, Shard: o.shard, Scratch: hostScratch}
		result, runErr = campaign.RunContainer(ctx, res.Image, agent, job, func(r *trial.Record) {
			if len(r.Violations) > 0 {
				r.Replay = replay(r.ID)
			}
			if err := campaign.SaveRecord(runDir, r); err != nil {
				fmt.Fprintf(os.Stderr, "pgbb-crash: %v\n", err)
			}
			prog.record(r)
		}, os.Stderr)
	} else {
		var tgt campaign.Target
		if o.install != "" {
			prefix, err := filepath.Abs(o.install)
			if err != nil {
				return 2, err
			}
			tgt, err = campaign.Installed(ctx, build.Result{Spec: spec, Backend: build.BackendNative, Version: o.pg + " (installed)",
				Prefix: prefix, BinDir: filepath.Join(prefix, "bin"), User: os.Getenv("PGBB_BUILD_USER")}, os.Stderr)
			if err != nil {
				return 2, err
			}
			label = "installed-" + label
		} else if tgt, err = campaign.Prepare(ctx, b, spec, os.Stderr); err != nil {
			return 2, err
		}
		version = tgt.Build.Version
		if err := saveRunInfo(); err != nil {
			return 2, err
		}
		scratch := o.scratch
		ownScratch := false
		scratchWhy := "given"
		if scratch == "" {
			if scratch, scratchWhy, err = campaign.MakeScratch("pgbb-crash-", scs, o.parallel); err != nil {
				return 2, err
			}
			ownScratch = true
		}
		reader, err := readerForStopPlans(ctx, scs)
		if err != nil {
			return 2, err
		}
		var otherUser *osuser.Account
		if reader != "" {
			defer os.RemoveAll(filepath.Dir(reader))
			if otherUser, err = readerUser(ctx, tgt.Acct, reader); err != nil {
				return 2, err
			}
		}
		fmt.Fprintf(os.Stderr, "pgbb-crash: PostgreSQL %s %s (native), status file %t, seed %d, %d scenarios, parallel %d\n",
			version, label, tgt.StatusFile, o.seed, len(scs), o.parallel)
		fmt.Fprintf(os.Stderr, "pgbb-crash: run directory %s, scratch %s (%s)\n", runDir, scratch, scratchWhy)
		result, runErr = campaign.Run(ctx, campaign.Config{
			Scenarios: scs, BinDir: tgt.Build.BinDir, Acct: tgt.Acct, Variant: label, StatusFile: tgt.StatusFile,
			Parallel: o.parallel, Seed: o.seed, Scratch: scratch, RunDir: runDir, Keep: o.keep || o.replay != "",
			KeepFailing: o.keepFailing, Shard: o.shard, Replay: o.replay, Log: os.Stderr, OnRecord: prog.record, ReplayCommand: replay,
			ReaderBin: reader, OtherUser: otherUser,
		})
		removeEmpty(scratch, ownScratch)
	}
	sum := report.Summarize(result.Records)
	fmt.Println()
	report.WriteTable(os.Stdout, sum)
	for name, n := range result.Skipped {
		fmt.Printf("scenario %s: %d trials skipped (budget)\n", name, n)
	}
	elapsed := result.Elapsed
	if n := len(result.Records); n > 0 && elapsed > 0 {
		fmt.Printf("%d trials in %s (%.1f trials/min)\n", n, elapsed.Round(time.Second), float64(n)/elapsed.Minutes())
	}
	title := campaignTitle(version, label, o.backend, o.seed)
	if !o.shard.Whole() {
		title += fmt.Sprintf(", shard %s", o.shard)
	}
	if err := saveReports(runDir, result.Records, sum, title); err != nil {
		fmt.Fprintf(os.Stderr, "pgbb-crash: %v\n", err)
	} else {
		fmt.Printf("records and report: %s\n", filepath.Join(runDir, "report.html"))
	}
	if runErr != nil {
		if ctx.Err() != nil {
			return 2, errors.New("interrupted; servers stopped, scratch removed except kept trials")
		}
		return 2, runErr
	}
	if len(sum.Violations) > 0 {
		return 1, nil
	}
	return 0, nil
}

// sizeScenarios multiplies each scenario's trials and budget by times
// (-times), then caps its trials at trials when not 0 (-trials).
func sizeScenarios(scs []scenario.Scenario, times, trials int) error {
	if times < 1 {
		return fmt.Errorf("-times %d: want 1 or more", times)
	}
	if trials < 0 {
		return fmt.Errorf("-trials %d: want 0 or more", trials)
	}
	for i := range scs {
		scs[i].Trials *= times
		scs[i].Budget *= time.Duration(times)
		if trials > 0 && scs[i].Trials > trials {
			scs[i].Trials = trials
		}
	}
	return nil
}

// campaignTitle is the title of a campaign's reports, the same for one run
// and for its shards merged.
func campaignTitle(version, label, backend string, seed int64) string {
	return fmt.Sprintf("pgbb crash campaign: PostgreSQL %s %s (%s backend), seed %d", version, label, backend, seed)
}

// saveReports writes the summary (summary.json), the HTML report and the
// JUnit report of a campaign's records into dir.
func saveReports(dir string, recs []*trial.Record, sum report.Summary, title string) error {
	if err := report.Save(dir, sum, title); err != nil {
		return err
	}
	return report.SaveJUnit(dir, recs, title)
}

// compare loads the run directories of o.compare, prints their operator
// signals side by side and saves the comparison into o.out. A directory
// without trial records is an error (exit 2).
func compare(o options, stdout io.Writer) (int, error) {
	var runs []report.Run
	for _, dir := range o.compare {
		r, err := report.LoadRun(dir)
		if err != nil {
			return 2, fmt.Errorf("-compare: %w", err)
		}
		runs = append(runs, r)
	}
	out := o.out
	if out == "" {
		var err error
		if out, err = cacheOut("compare-" + time.Now().UTC().Format("20060102-150405")); err != nil {
			return 2, err
		}
	}
	c := report.Compare(report.BuildsOf(runs))
	report.WriteComparison(stdout, c)
	if err := report.SaveComparison(out, c, "pgbb crash campaign: operator signals across builds"); err != nil {
		return 2, err
	}
	fmt.Fprintf(stdout, "comparison: %s\n", filepath.Join(out, "comparison.html"))
	return 0, nil
}

// replayCommand is the one command that replays a trial.
func replayCommand(o options, major int, id string) string {
	parts := []string{"go run ./harness/cmd/pgbb-crash", "-backend", "native", "-pg", fmt.Sprint(major), "-variant", o.variant}
	if o.patches != "" {
		parts = append(parts, "-patches", o.patches)
	}
	if o.install != "" {
		parts = append(parts, "-install", o.install)
	}
	if o.times > 1 {
		// Trials past the scenario's own number exist only with -times.
		parts = append(parts, "-times", fmt.Sprint(o.times))
	}
	parts = append(parts, "-scenarios", o.scenarios, "-seed", fmt.Sprint(o.seed), "-replay", id)
	return strings.Join(parts, " ")
}

// progress prints a bar and one line per trial.
type progress struct {
	mu         sync.Mutex
	w          io.Writer
	done       int
	total      int
	violations int
}

func (p *progress) record(r *trial.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	p.violations += len(r.Violations)
	const width = 20
	n := min(width, p.done*width/max(1, p.total))
	bar := strings.Repeat("#", n) + strings.Repeat(".", width-n)
	at := "no fault"
	if r.Fault.Fired {
		at = "@" + r.Fault.Phase
	}
	exit := fmt.Sprint(r.Exit.Code)
	if r.Exit.Signal != "" {
		exit = r.Exit.Signal
	}
	st := "-"
	switch {
	case r.Status.Valid:
		st = r.Status.State
	case r.Status.Present:
		st = "INVALID"
	}
	or := "-"
	if r.Oracle != nil {
		or = "incomplete"
		if r.Oracle.Complete {
			or = "complete"
		}
	}
	mark := "ok"
	if len(r.Violations) > 0 {
		mark = "VIOLATION " + r.Violations[0].Invariant
	}
	orphan := ""
	if r.Orphans.Alive {
		orphan = " orphan"
	}
	fmt.Fprintf(p.w, "[%s] %d/%d %-28s %-20s %-14s exit=%-8s status=%-11s oracle=%-10s%s %s (%s)\n", bar, p.done, p.total, r.ID, r.Plan, at,
		exit, st, or, orphan, mark, r.Elapsed.Round(100*time.Millisecond))
}

// removeEmpty removes empty directories under root, bottom up, and root
// itself when it ends up empty and self is set.
func removeEmpty(root string, self bool) {
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if dirs[i] != root || self {
			os.Remove(dirs[i])
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// readerUser returns, when the campaign runs as root with a build account
// to switch to, another user in that account's group (made if needed) for
// the stop plan to run the reader bin as, and lets it run bin; nil
// otherwise.
func readerUser(ctx context.Context, owner osuser.Account, bin string) (*osuser.Account, error) {
	if os.Geteuid() != 0 || !owner.Switch {
		return nil, nil
	}
	u, err := osuser.EnsureReader(ctx, owner, osuser.DefaultReaderUser)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		return nil, err
	}
	return &u, nil
}

// readerForStopPlans builds pgbb-status into a temporary directory when a
// scenario has the stop plan, which also runs the reader in a PID
// namespace of its own; it returns "" otherwise.
func readerForStopPlans(ctx context.Context, scs []scenario.Scenario) (string, error) {
	if !slices.ContainsFunc(scs, func(s scenario.Scenario) bool { return slices.Contains(s.Faults, scenario.PlanStop) }) {
		return "", nil
	}
	root, err := build.FindRepoRoot(".")
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "pgbb-reader-")
	if err != nil {
		return "", err
	}
	bin, err := campaign.BuildTool(ctx, root, tmp, "pgbb-status")
	if err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return bin, nil
}

// scratchRoot is where the container backend's scratch goes: -scratch if
// given, else memory (campaign.MemoryDir) where there is one, else the
// temporary directory.
func scratchRoot(flag string) string {
	if flag != "" {
		return flag
	}
	if fi, err := os.Stat(campaign.MemoryDir); err == nil && fi.IsDir() {
		return campaign.MemoryDir
	}
	return os.TempDir()
}
