package campaign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

// The known-bad variants prove that the harness can fail: each
// is one realistic mistake, a patch in harness/testdata/knownbad/pg18/NAME
// stacked on patches/pg18, and scenarios/knownbad/NAME.json is the
// campaign that must expose it. Their builds are derived from the real
// series' build (build.Builder rebuilds only what the extra patch touches).
//
// The known-bad variants of the wrapper pgbb-run, named wrapper/NAME, are
// patches to this tree's Go code in harness/testdata/knownbad/wrapper/NAME:
// pgbb-run is built from a copy of the tree with them applied
// (BuildPatchedTool) and runs the stock build's pg_basebackup, and the
// campaign that must expose each is the wrapper's default one
// (wrapperCampaign, that of make crash VARIANT=wrapper).

const (
	knownBadDir        = "../testdata/knownbad/pg18"
	knownBadScenarios  = "../../scenarios/knownbad"
	realSeries         = "../../patches/pg18"
	knownBadWrapperDir = "../testdata/knownbad/wrapper"
	// wrapperPrefix begins the name of a wrapper variant.
	wrapperPrefix = "wrapper/"
)

// wrapperCampaign is the default campaign of the wrapper variant, which
// must expose every known-bad variant of pgbb-run; PGBB_KNOWNBAD_WRAPPER_SCENARIOS
// (comma-separated, relative to the repository) replaces it.
var wrapperCampaign = []string{"scenarios/smoke", "scenarios/wrapper"}

// knownBadVariants lists the variants; a variant without a scenario, or a
// scenario without a variant, is an error.
func knownBadVariants(tb testing.TB) []string {
	tb.Helper()
	ents, err := os.ReadDir(knownBadDir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	scs, err := os.ReadDir(knownBadScenarios)
	if err != nil {
		tb.Fatal(err)
	}
	var withScenario []string
	for _, e := range scs {
		name := strings.TrimSuffix(e.Name(), ".json")
		if !slices.Contains(names, name) {
			tb.Errorf("%s/%s exposes no known-bad variant (no %s/%s)", knownBadScenarios, e.Name(), knownBadDir, name)
		}
		withScenario = append(withScenario, name)
	}
	for _, n := range names {
		if !slices.Contains(withScenario, n) {
			tb.Errorf("known-bad variant %s has no scenario %s/%s.json that exposes it", n, knownBadScenarios, n)
		}
	}
	if len(names) == 0 {
		tb.Fatalf("no known-bad variants in %s", knownBadDir)
	}
	return names
}

// knownBadWrapperVariants lists the variants of pgbb-run, wrapper/NAME
// for each directory NAME holding patches.
func knownBadWrapperVariants(tb testing.TB) []string {
	tb.Helper()
	ents, err := os.ReadDir(knownBadWrapperDir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := PatchFiles(filepath.Join(knownBadWrapperDir, e.Name())); err != nil {
			tb.Errorf("known-bad variant %s%s: %v", wrapperPrefix, e.Name(), err)
		}
		names = append(names, wrapperPrefix+e.Name())
	}
	if len(names) == 0 {
		tb.Fatalf("no known-bad variants in %s", knownBadWrapperDir)
	}
	return names
}

// selectedKnownBad returns the variants PGBB_KNOWNBAD names
// (comma-separated), or all of them, the wrapper's after the series'; an
// unknown name is an error.
func selectedKnownBad(tb testing.TB) []string {
	tb.Helper()
	all := append(knownBadVariants(tb), knownBadWrapperVariants(tb)...)
	only := os.Getenv("PGBB_KNOWNBAD")
	if only == "" {
		return all
	}
	names := strings.Split(only, ",")
	for _, n := range names {
		if !slices.Contains(all, n) {
			tb.Fatalf("PGBB_KNOWNBAD: no known-bad variant %q (there are %s)", n, strings.Join(all, ", "))
		}
	}
	return names
}

// TestKnownBadVariantsHaveScenarios runs in the unit tests: every variant
// has its scenario and every scenario parses.
func TestKnownBadVariantsHaveScenarios(t *testing.T) {
	for _, name := range knownBadVariants(t) {
		if _, err := scenario.LoadPaths(filepath.Join(knownBadScenarios, name+".json")); err != nil {
			t.Error(err)
		}
	}
}

// TestKnownBadWrapperVariantsBuild runs in the unit tests: every variant
// of pgbb-run still applies to this tree and builds, so that a change to
// harness/wrapper that one no longer fits is seen at once, not in the
// next make test-knownbad.
func TestKnownBadWrapperVariantsBuild(t *testing.T) {
	root, err := build.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range knownBadWrapperVariants(t) {
		patches, err := PatchFiles(filepath.Join(knownBadWrapperDir, strings.TrimPrefix(name, wrapperPrefix)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := BuildPatchedTool(t.Context(), root, t.TempDir(), "pgbb-run", patches); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// knownBad builds (or reuses) one variant and runs its scenario until the
// first violation.
type knownBad struct {
	bld *build.Builder
	log strings.Builder
}

// variant is a built known-bad variant: the PostgreSQL build its runs use,
// and for a variant of pgbb-run the wrapper binary they run under.
type variant struct {
	tgt     Target
	wrapper string
}

// close removes the variant's wrapper binary.
func (v variant) close() {
	if v.wrapper != "" {
		os.RemoveAll(filepath.Dir(v.wrapper))
	}
}

func newKnownBad(tb testing.TB, ctx context.Context) *knownBad {
	tb.Helper()
	k := &knownBad{}
	var err error
	k.bld, err = build.New(ctx, append(build.FromEnv(), build.WithBackend(build.BackendNative), build.WithLog(&k.log))...)
	if err != nil {
		tb.Fatalf("builder: %v", err)
	}
	return k
}

// target builds the variant: the real series with the variant's patch on
// top, or, for a variant of pgbb-run, the stock build and pgbb-run with
// the variant's patches.
func (k *knownBad) target(ctx context.Context, name string) (variant, error) {
	if w, ok := strings.CutPrefix(name, wrapperPrefix); ok {
		return k.wrapperTarget(ctx, w)
	}
	series, err := filepath.Abs(realSeries)
	if err != nil {
		return variant{}, err
	}
	dir, err := filepath.Abs(filepath.Join(knownBadDir, name))
	if err != nil {
		return variant{}, err
	}
	spec := build.Spec{Major: 18, Variant: build.Patched, PatchDir: series + string(filepath.ListSeparator) + dir, Name: "knownbad-" + name}
	tgt, err := Prepare(ctx, k.bld, spec, &k.log)
	if err != nil {
		return variant{}, fmt.Errorf("build %s: %w\n%s", name, err, k.log.String())
	}
	if !tgt.StatusFile {
		return variant{}, fmt.Errorf("the %s build writes no status file", name)
	}
	return variant{tgt: tgt}, nil
}

// wrapperTarget builds the stock 18 build and pgbb-run with the patches
// of wrapper variant name, in a directory the build's account may enter
// (it runs the wrapper).
func (k *knownBad) wrapperTarget(ctx context.Context, name string) (variant, error) {
	tgt, err := Prepare(ctx, k.bld, build.Spec{Major: 18, Variant: build.Stock}, &k.log)
	if err != nil {
		return variant{}, fmt.Errorf("build stock 18: %w\n%s", err, k.log.String())
	}
	patches, err := PatchFiles(filepath.Join(knownBadWrapperDir, name))
	if err != nil {
		return variant{}, err
	}
	bin, err := BuildToolDir(ctx, "pgbb-run", 0o755, patches...)
	if err != nil {
		return variant{}, fmt.Errorf("known-bad variant %s%s: %w", wrapperPrefix, name, err)
	}
	return variant{tgt: tgt, wrapper: bin}, nil
}

// scenariosFor returns the scenarios that must expose the variant: its
// own, or, with PGBB_KNOWNBAD_SCENARIOS set (make knownbad-default), those
// paths (comma-separated, relative to the repository), the same for every
// variant of the series. A variant of pgbb-run runs wrapperCampaign, or
// PGBB_KNOWNBAD_WRAPPER_SCENARIOS.
func scenariosFor(name string) ([]string, error) {
	env := "PGBB_KNOWNBAD_SCENARIOS"
	if strings.HasPrefix(name, wrapperPrefix) {
		env = "PGBB_KNOWNBAD_WRAPPER_SCENARIOS"
	}
	paths := os.Getenv(env)
	switch {
	case paths == "" && env == "PGBB_KNOWNBAD_WRAPPER_SCENARIOS":
		paths = strings.Join(wrapperCampaign, ",")
	case paths == "":
		return []string{filepath.Join(knownBadScenarios, name+".json")}, nil
	}
	var rel []string
	for _, p := range strings.Split(paths, ",") {
		if filepath.IsAbs(p) {
			return nil, fmt.Errorf("%s: %s: give paths relative to the repository", env, p)
		}
		rel = append(rel, filepath.Join("../..", p))
	}
	return rel, nil
}

// run runs the variant's scenarios (scenariosFor) with seed until the
// first violation.
func (k *knownBad) run(ctx context.Context, v variant, name string, seed int64, runDir string) (*Result, error) {
	paths, err := scenariosFor(name)
	if err != nil {
		return nil, err
	}
	scs, err := scenario.LoadPaths(paths...)
	if err != nil {
		return nil, err
	}
	scratch, _, err := MakeScratch("pgbb-knownbad-", scs, 2)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	return Run(ctx, Config{
		Scenarios: scs, BinDir: v.tgt.Build.BinDir, Acct: v.tgt.Acct, Variant: "knownbad-" + strings.ReplaceAll(name, "/", "-"),
		StatusFile: true, WrapperBin: v.wrapper, Parallel: 2, Seed: seed, Scratch: scratch, RunDir: runDir, StopAtViolation: true,
	})
}

// TestIntegrationKnownBad builds every known-bad variant and runs the
// campaign that should expose it, with a fixed seed, until the first
// invariant violation: a variant that ends its scenario (trials or time
// budget) with none gets one more campaign with seed 2, and fails the test
// if that finds none either. Opt in with PGBB_INTEGRATION=1 (make
// test-knownbad); PGBB_KNOWNBAD=a,b limits it to some variants.
func TestIntegrationKnownBad(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") != "1" {
		t.Skip("set PGBB_INTEGRATION=1 to build the known-bad variants and run their campaigns")
	}
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(80 * time.Minute)
	}
	// A minute before go test's own timeout, so that the log says which
	// variant was running.
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-time.Minute))
	defer cancel()
	k := newKnownBad(t, ctx)
	for _, name := range selectedKnownBad(t) {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			kb, err := k.target(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			defer kb.close()
			built := time.Since(start)
			res, err := k.run(ctx, kb, name, 1, t.TempDir())
			if err != nil {
				t.Fatalf("campaign: %v", err)
			}
			if res.FirstViolation == nil {
				// Where a fault lands among the finishing part's
				// operations moves with timing (the periodic rewrites
				// before it, the calibrated counts): one more campaign,
				// calibrated anew with another seed, before the variant
				// is called unexposed. The log says so.
				t.Logf("%s: no invariant violation in %d records with seed 1; once more with seed 2", name, len(res.Records))
				if res, err = k.run(ctx, kb, name, 2, t.TempDir()); err != nil {
					t.Fatalf("campaign: %v", err)
				}
			}
			v := res.FirstViolation
			if v == nil {
				paths, _ := scenariosFor(name)
				t.Fatalf("%s: no invariant violation in %d records (%s) with seed 1 nor seed 2: the harness cannot expose this mistake with %s",
					name, len(res.Records), res.Elapsed.Round(time.Second), strings.Join(paths, ", "))
			}
			t.Logf("%s: build %s; first violation after %s and %d records: %s %s (%s): %s",
				name, built.Round(time.Second), res.ToFirstViolation.Round(time.Second), res.RecordsToFirstViolation,
				v.ID, v.Plan, v.Violations[0].Invariant, v.Violations[0].Message)
		})
	}
}

// BenchmarkKnownBad prints, per known-bad variant, the median time and
// number of records (trials, control runs included) to the first invariant
// violation over several seeds (PGBB_BENCH_SEEDS, default 3), and how many
// seeds found none. The time runs from the campaign's start, the source
// cluster's set-up included, not the variant's build. PGBB_BENCH=1 runs it
// (make bench-knownbad); PGBB_KNOWNBAD=a,b limits it to some variants.
func BenchmarkKnownBad(b *testing.B) {
	if os.Getenv("PGBB_BENCH") == "" {
		b.Skip("set PGBB_BENCH=1 (make bench-knownbad)")
	}
	seeds := envCount("PGBB_BENCH_SEEDS", 3)
	ctx := context.Background()
	k := newKnownBad(b, ctx)
	for _, name := range selectedKnownBad(b) {
		b.Run(name, func(b *testing.B) {
			v, err := k.target(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			defer v.close()
			for i := 0; i < b.N; i++ {
				var times []time.Duration
				var records []int
				var found []string
				missed := 0
				for seed := int64(1); seed <= int64(seeds); seed++ {
					res, err := k.run(ctx, v, name, seed, b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					if res.FirstViolation == nil {
						missed++
						continue
					}
					times = append(times, res.ToFirstViolation)
					records = append(records, res.RecordsToFirstViolation)
					found = append(found, firstViolation(res.FirstViolation))
				}
				if len(times) == 0 {
					fmt.Printf("%-30s no violation with %d seeds\n", name, seeds)
					continue
				}
				mt, mr := median(times), median(records)
				b.ReportMetric(mt.Seconds(), "s/first-violation")
				b.ReportMetric(float64(mr), "records/first-violation")
				fmt.Printf("%-30s median %5.1fs and %2d records to the first violation (%d of %d seeds found one): %s\n",
					name, mt.Seconds(), mr, len(times), seeds, strings.Join(found, "; "))
			}
		})
	}
}

func firstViolation(r *trial.Record) string {
	return fmt.Sprintf("%s %s %s", r.ID, r.Plan, r.Violations[0].Invariant)
}

func median[T int | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
