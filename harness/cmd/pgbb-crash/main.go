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
// builds, and how often a run left a process alive and a clean-up removed
// a live run, side by side, and writes comparison.json and
// comparison.html.
//
// With -variant wrapper it runs the stock build's pg_basebackup under the
// wrapper pgbb-run (built from this repository), which writes the status
// file, and judges that file as the patched build's. -wrapper-patches DIR
// builds that pgbb-run from a copy of this tree with DIR's patches applied:
// a known-bad variant of the wrapper (harness/testdata/knownbad/wrapper).
//
//	pgbb-crash [-scenarios scenarios/smoke] [-pg 18] [-variant patched|stock|wrapper] [-patches DIR]
//	           [-wrapper-patches DIR]
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
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/cmd/internal/cli"
	"github.com/pgbb/pgbb/harness/pgsrc"
	"github.com/pgbb/pgbb/harness/report"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

func main() { cli.Main(run) }

// run runs the command with args and returns its exit code: 0, 1 when an
// invariant was violated, 2 when it could not run (its error on stderr).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgbb-crash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o, err := parseOptions(fs, args)
	var code int
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		code = 2
	case len(o.compare) > 0:
		code, err = compare(o, stdout)
	case len(o.merge) > 0:
		code, err = merge(o, stdout)
	default:
		code, err = runCampaign(ctx, o, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pgbb-crash: %v\n", err)
	}
	return code
}

type options struct {
	scenarios string
	pg        string
	variant   string
	patches   string
	// wrapperPatches is a directory of patches to the tree's Go code
	// that the wrapper variant's pgbb-run is built with.
	wrapperPatches string
	backend        string
	parallel       int
	seed           int64
	trials         int
	times          int
	replay         string
	keep           bool
	out            string
	scratch        string
	install        string
	image          string
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
	fs.StringVar(&o.variant, "variant", string(build.Patched), "patched, stock, or wrapper (stock pg_basebackup under pgbb-run, which writes the status file)")
	fs.StringVar(&o.patches, "patches", "", "patch series directory (default patches/pg<version>)")
	fs.StringVar(&o.wrapperPatches, "wrapper-patches", "", "with -variant wrapper: build pgbb-run from a copy of this tree with this directory's *.patch applied, in name order (a known-bad variant: harness/testdata/knownbad/wrapper/NAME)")
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

// runCampaign builds (or finds) the PostgreSQL under test, runs the
// campaign on the backend's runner, prints the summary and writes the
// run directory.
func runCampaign(ctx context.Context, o options, stdout, stderr io.Writer) (int, error) {
	major, spec, label, scs, err := checkCampaign(&o, stderr)
	if err != nil {
		return 2, err
	}
	b, err := build.New(ctx, append(build.FromEnv(), build.WithBackend(o.backend), build.WithLog(stderr))...)
	if err != nil {
		return 2, err
	}
	// auto: the campaign runs where the builder builds.
	o.backend = b.Backend()
	runDir := o.out
	if runDir == "" {
		runDir = filepath.Join(b.CacheDir(), "crash", time.Now().UTC().Format("20060102-150405")+"-"+fmt.Sprintf("%d-%s", major, label))
		if !o.shard.Whole() {
			runDir += fmt.Sprintf("-shard%dof%d", o.shard.Index, o.shard.Count)
		}
	}
	r, err := newRunner(ctx, b, job{o: o, scs: scs, spec: spec, label: label, stderr: stderr})
	if err != nil {
		return 2, err
	}
	defer r.close()
	if err := saveRunInfo(runDir, o, major, r.version(), label, scs); err != nil {
		return 2, err
	}
	fmt.Fprintf(stderr, "pgbb-crash: %s, seed %d, %d scenarios, parallel %d\n", r.describe(), o.seed, len(scs), o.parallel)
	fmt.Fprintf(stderr, "pgbb-crash: run directory %s\n", runDir)
	prog := &progress{w: stderr, total: expectedRecords(scs, o)}
	result, runErr := r.run(ctx, func(rec *trial.Record) {
		if len(rec.Violations) > 0 {
			rec.Replay = replayCommand(o, major, rec.ID)
		}
		if err := campaign.SaveRecord(runDir, rec); err != nil {
			fmt.Fprintf(stderr, "pgbb-crash: %v\n", err)
		}
		prog.record(rec)
	})
	// The kept trials move out of memory first, so that the summary,
	// the records and the reports name where they are now.
	scratch, own := r.keptIn()
	kept, err := keepOnDisk(scratch, own, filepath.Join(runDir, "kept"))
	if err != nil {
		fmt.Fprintf(stderr, "pgbb-crash: %v\n", err)
	}
	for _, rec := range kept.relocate(result.Records) {
		if err := campaign.SaveRecord(runDir, rec); err != nil {
			fmt.Fprintf(stderr, "pgbb-crash: %v\n", err)
		}
	}
	sum := report.Summarize(result.Records)
	writeSummary(stdout, result, sum)
	kept.write(stdout)
	title := campaignTitle(r.version(), r.label(), o.backend, o.seed)
	if !o.shard.Whole() {
		title += fmt.Sprintf(", shard %s", o.shard)
	}
	if err := saveReports(runDir, result.Records, sum, title); err != nil {
		fmt.Fprintf(stderr, "pgbb-crash: %v\n", err)
	} else {
		fmt.Fprintf(stdout, "records and report: %s\n", filepath.Join(runDir, "report.html"))
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return 2, errors.New("interrupted; servers stopped, scratch removed except kept trials")
	case runErr != nil:
		return 2, runErr
	case len(sum.Violations) > 0:
		return 1, nil
	}
	return 0, nil
}

// checkCampaign checks the campaign's options, loads and sizes its
// scenarios, settles the backend and the seed in o, and returns the
// build to test and its label.
func checkCampaign(o *options, stderr io.Writer) (major int, spec build.Spec, label string, scs []scenario.Scenario, err error) {
	if major, err = pgsrc.ParseMajor(o.pg); err != nil {
		return
	}
	variant, err := parseVariant(o.variant)
	if err != nil {
		return
	}
	if variant == build.Stock && o.patches != "" {
		err = errors.New("-patches applies to the patched variant only")
		return
	}
	if o.wrapperPatches != "" && o.variant != variantWrapper {
		err = errors.New("-wrapper-patches applies to -variant wrapper only")
		return
	}
	if scs, err = scenario.LoadPaths(splitList(o.scenarios)...); err != nil {
		return
	}
	if err = sizeScenarios(scs, o.times, o.trials); err != nil {
		return
	}
	if err = checkFlags(o, stderr); err != nil {
		return
	}
	if err = campaign.Validate(scs); err != nil {
		return
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano() % 1_000_000_007
	}
	spec, label, err = buildSpec(major, variant, o.patches)
	if o.variant == variantWrapper {
		label = wrapperLabel(o.wrapperPatches)
	}
	return
}

// wrapperLabel labels the wrapper variant: "wrapper", or
// "wrapper-NAME" for pgbb-run built with the patches of directory NAME.
func wrapperLabel(patches string) string {
	if patches == "" {
		return variantWrapper
	}
	return variantWrapper + "-" + filepath.Base(filepath.Clean(patches))
}

// variantWrapper is the -variant that runs the stock build's
// pg_basebackup under pgbb-run (harness/wrapper), whose status file the
// trials judge.
const variantWrapper = "wrapper"

// parseVariant returns the build a -variant runs: the wrapper runs the
// stock build.
func parseVariant(s string) (build.Variant, error) {
	if s == variantWrapper {
		return build.Stock, nil
	}
	v, err := build.ParseVariant(s)
	if err != nil {
		return "", fmt.Errorf("%w, or %s (stock under pgbb-run)", err, variantWrapper)
	}
	return v, nil
}

// checkFlags checks the flags that depend on one another and settles
// -backend auto when the options force it.
func checkFlags(o *options, stderr io.Writer) error {
	if o.keepFailing < 0 {
		return fmt.Errorf("-keep-failing %d: want 0 or more", o.keepFailing)
	}
	if o.replay != "" && !o.shard.Whole() {
		return errors.New("-replay runs one trial: it cannot go with -shard")
	}
	switch o.backend {
	case build.BackendAuto:
		// The container when a Docker engine answers (the builder
		// decides), except for what only runs natively.
		if o.install != "" {
			fmt.Fprintln(stderr, "pgbb-crash: backend: native (auto, with -install)")
			o.backend = build.BackendNative
		}
	case build.BackendNative, build.BackendContainer:
	default:
		return fmt.Errorf("unknown backend %q: auto, native or container", o.backend)
	}
	if o.variant == variantWrapper {
		switch o.backend {
		case build.BackendContainer:
			return errors.New("-variant wrapper runs natively only: the container's agent has no pgbb-run")
		case build.BackendAuto:
			fmt.Fprintln(stderr, "pgbb-crash: backend: native (auto, with -variant wrapper)")
			o.backend = build.BackendNative
		}
	}
	if o.install != "" && o.backend == build.BackendContainer {
		return errors.New("-install works with the native backend only")
	}
	if o.image != "" && o.backend != build.BackendContainer {
		return errors.New("-image works with -backend container only")
	}
	if o.replay != "" {
		o.parallel = 1
	}
	return nil
}

// buildSpec returns the build of the variant and its label: a series
// given with -patches may stack directories (dir1:dir2), each made
// absolute, and the last names the build.
func buildSpec(major int, variant build.Variant, patches string) (build.Spec, string, error) {
	spec := build.Spec{Major: major, Variant: variant}
	if patches == "" {
		return spec, string(variant), nil
	}
	var dirs []string
	for _, d := range filepath.SplitList(patches) {
		abs, err := filepath.Abs(d)
		if err != nil {
			return spec, "", err
		}
		dirs = append(dirs, abs)
	}
	spec.PatchDir = strings.Join(dirs, string(filepath.ListSeparator))
	spec.Name = "series-" + filepath.Base(dirs[len(dirs)-1])
	return spec, spec.Name, nil
}

// expectedRecords is how many records the campaign will write: its trials
// and each worker's control and calibration runs.
func expectedRecords(scs []scenario.Scenario, o options) int {
	if o.replay != "" {
		return 2
	}
	total := 0
	for k, indices := range campaign.ShardTrials(scs, o.seed, o.shard) {
		s := scs[k]
		if len(indices) == 0 {
			continue
		}
		workers := min(o.parallel, len(indices))
		total += len(indices) + workers*campaign.CleanRuns(s)
	}
	return total
}

// saveRunInfo writes run.json, which says what the run directory holds
// (report.LoadRun).
func saveRunInfo(runDir string, o options, major int, version, label string, scs []scenario.Scenario) error {
	trials := map[string]int{}
	for _, s := range scs {
		trials[s.Name] = s.Trials
	}
	return report.SaveRunInfo(runDir, report.RunInfo{
		Version: version, Major: major, Variant: label, Backend: o.backend, Seed: o.seed,
		Scenarios: splitList(o.scenarios), Trials: trials, ShardIndex: o.shard.Index, ShardCount: o.shard.Count,
		Replay: o.replay, Started: time.Now().UTC(),
	})
}

// writeSummary prints the campaign's summary table, the trials its
// budgets skipped and its pace.
func writeSummary(w io.Writer, result *campaign.Result, sum report.Summary) {
	fmt.Fprintln(w)
	report.WriteTable(w, sum)
	for name, n := range result.Skipped {
		fmt.Fprintf(w, "scenario %s: %d trials skipped (budget)\n", name, n)
	}
	if n := len(result.Records); n > 0 && result.Elapsed > 0 {
		fmt.Fprintf(w, "%d trials in %s (%.1f trials/min)\n", n, result.Elapsed.Round(time.Second), float64(n)/result.Elapsed.Minutes())
	}
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

// replayCommand is the one command that replays a trial.
func replayCommand(o options, major int, id string) string {
	parts := []string{"go run ./harness/cmd/pgbb-crash", "-backend", "native", "-pg", fmt.Sprint(major), "-variant", o.variant}
	if o.patches != "" {
		parts = append(parts, "-patches", o.patches)
	}
	if o.wrapperPatches != "" {
		parts = append(parts, "-wrapper-patches", o.wrapperPatches)
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

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
