package campaign

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

// BenchmarkCrashPlans prints trials per minute for each process and
// server fault plan on the default scenario
// (scenarios/smoke/plain-stream.json) against patched 18, natively,
// GOMAXPROCS workers: the rate over the trials themselves (after each
// worker's cluster set-up and control run), the share of trials the oracle
// verified, and where a trial's time went. PGBB_BENCH=1 runs it (make
// bench-crash); PGBB_BENCH_TRIALS sets the trials per plan (default 24).
func BenchmarkCrashPlans(b *testing.B) {
	benchPlans(b, "../../scenarios/smoke/plain-stream.json", []string{scenario.PlanKill, scenario.PlanTerm, scenario.PlanInt,
		scenario.PlanKillWALChild, scenario.PlanTerminateWalsender, scenario.PlanServerStop, scenario.PlanSyscallKill})
}

// BenchmarkPowerLossPlans is BenchmarkCrashPlans for the power-loss and
// disk fault plans of scenarios/smoke/powerloss.json: whole trials on the
// powerfs layer (mount, backup, power cut or fault, materialise the
// durable state, every torn status view, the oracle). It needs root and
// /dev/fuse (make bench-powerloss).
func BenchmarkPowerLossPlans(b *testing.B) {
	sc, err := scenario.LoadPaths("../../scenarios/smoke/powerloss.json")
	if err != nil {
		b.Fatal(err)
	}
	benchPlans(b, "../../scenarios/smoke/powerloss.json", sc[0].Faults)
}

// benchPlans runs the scenario in path once per plan, with only that
// plan, and prints the rates.
func benchPlans(b *testing.B, path string, plans []string) {
	if os.Getenv("PGBB_BENCH") == "" {
		b.Skip("set PGBB_BENCH=1 (make bench-crash, make bench-powerloss)")
	}
	trials := envCount("PGBB_BENCH_TRIALS", 24)
	ctx := context.Background()
	var log strings.Builder
	bld, err := build.New(ctx, append(build.FromEnv(), build.WithBackend(build.BackendNative), build.WithLog(&log))...)
	if err != nil {
		b.Fatal(err)
	}
	tgt, err := Prepare(ctx, bld, build.Spec{Major: 18, Variant: build.Patched}, &log)
	if err != nil {
		b.Fatalf("%v\n%s", err, log.String())
	}
	base, err := scenario.LoadPaths(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, plan := range plans {
		b.Run(plan, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sc := base[0]
				sc.Name, sc.Faults, sc.Trials, sc.Budget = "bench-"+plan, []string{plan}, trials, 0
				scratch, where, err := MakeScratch("pgbb-crash-bench-", []scenario.Scenario{sc}, runtime.GOMAXPROCS(0))
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					fmt.Printf("%-20s scratch %s\n", plan, where)
				}
				res, err := Run(ctx, Config{
					Scenarios: []scenario.Scenario{sc}, BinDir: tgt.Build.BinDir, Acct: tgt.Acct, Variant: "patched",
					StatusFile: tgt.StatusFile, Parallel: runtime.GOMAXPROCS(0), Seed: int64(i + 1), Scratch: scratch, RunDir: b.TempDir(),
				})
				os.RemoveAll(scratch)
				if err != nil {
					b.Fatal(err)
				}
				n, verified, completed, unverified, first, last := 0, 0, 0, 0, time.Time{}, time.Time{}
				spent := map[string]time.Duration{}
				for _, r := range res.Records {
					if r.Index < 0 {
						continue
					}
					n++
					for step, d := range r.Timings {
						spent[step] += d
					}
					if r.Oracle != nil {
						verified++
					}
					if r.StatusCompleted() {
						completed++
						if r.Oracle == nil {
							unverified++
						}
					}
					end := r.Start.Add(r.Elapsed)
					if first.IsZero() || r.Start.Before(first) {
						first = r.Start
					}
					if end.After(last) {
						last = end
					}
				}
				rate := float64(n) / last.Sub(first).Minutes()
				b.ReportMetric(rate, "trials/min")
				b.ReportMetric(100*float64(verified)/float64(max(1, n)), "%verified")
				fmt.Printf("%-20s %3d trials in %6s: %5.1f trials/min (campaign with set-up %s), oracle ran on %d, %d completed (%d unverified), violations %d\n",
					plan, n, last.Sub(first).Round(time.Second), rate, res.Elapsed.Round(time.Second), verified, completed, unverified, violations(res.Records))
				fmt.Printf("%-20s mean seconds per trial by step: %s\n", "", timingSummary(spent, n))
			}
		})
	}
}

// envCount reads a positive count from the environment variable name, or
// returns def.
func envCount(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// timingSummary prints the mean time per trial of each step of
// trial.Record.Timings, largest first.
func timingSummary(spent map[string]time.Duration, trials int) string {
	steps := slices.Collect(maps.Keys(spent))
	slices.SortFunc(steps, func(a, b string) int { return cmp.Compare(spent[b], spent[a]) })
	var parts []string
	for _, step := range steps {
		parts = append(parts, fmt.Sprintf("%s %.2f", step, spent[step].Seconds()/float64(max(1, trials))))
	}
	return strings.Join(parts, ", ")
}

func violations(recs []*trial.Record) int {
	n := 0
	for _, r := range recs {
		n += len(r.Violations)
	}
	return n
}
