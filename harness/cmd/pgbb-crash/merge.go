package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/report"
)

// merge loads the run directories of every shard of one campaign
// (report.MergeShards) and writes them into o.out as the run directory of
// the whole campaign (run.json, the records, summary.json, report.html,
// junit.xml), prints its summary, and exits as one run would have: 1 when
// any invariant was violated. Shards that are not those of one campaign
// are an error (exit 2) that says which.
func merge(o options, stdout io.Writer) (int, error) {
	run, err := report.MergeShards(o.merge)
	if err != nil {
		return 2, err
	}
	info := run.Info
	out := o.out
	if out == "" {
		base := fmt.Sprintf("%s-%d-%s-merged", time.Now().UTC().Format("20060102-150405"), info.Major, info.Variant)
		if out, err = cacheOut(base); err != nil {
			return 2, err
		}
	}
	if old, err := report.LoadRecords(out); err == nil && len(old) > 0 {
		return 2, fmt.Errorf("-merge: %s already holds trial records: give an empty or new -out", out)
	}
	if err := report.SaveRunInfo(out, *info); err != nil {
		return 2, fmt.Errorf("-merge: %w", err)
	}
	for _, r := range run.Records {
		if err := campaign.SaveRecord(out, r); err != nil {
			return 2, fmt.Errorf("-merge: %w", err)
		}
	}
	sum := report.Summarize(run.Records)
	fmt.Fprintf(stdout, "%d shards merged, %d records\n\n", len(o.merge), len(run.Records))
	report.WriteTable(stdout, sum)
	if err := saveReports(out, run.Records, sum, campaignTitle(info.Version, info.Variant, info.Backend, info.Seed)); err != nil {
		return 2, fmt.Errorf("-merge: %w", err)
	}
	fmt.Fprintf(stdout, "records and report: %s\n", filepath.Join(out, "report.html"))
	if len(sum.Violations) > 0 {
		return 1, nil
	}
	return 0, nil
}

// cacheOut is the directory base under the build cache's crash directory.
func cacheOut(base string) (string, error) {
	dir, err := build.CacheDirFromEnv()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "crash", base), nil
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
