package report

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrBadShards says the run directories given to MergeShards are not the
// shards of one campaign.
var ErrBadShards = errors.New("not the shards of one campaign")

// shardRun is one shard's run directory, loaded.
type shardRun struct {
	dir  string
	info RunInfo
	run  Run
}

// MergeShards loads the run directories of the n shards of one campaign
// (pgbb-crash -shard i/n, each with its run.json) and returns them as the
// run of the whole campaign: every shard's records, and a run.json of no
// shard, started when the first shard started. It fails (ErrBadShards,
// naming the directories) when a shard is missing or given twice, when
// the shards ran another seed, PostgreSQL version, variant (patch series),
// backend, scenarios or number of trials, or when two shards ran the same
// trial.
func MergeShards(dirs []string) (Run, error) {
	if len(dirs) == 0 {
		return Run{}, fmt.Errorf("merge shards: no run directories: %w", ErrBadShards)
	}
	var shards []shardRun
	for _, dir := range dirs {
		sr, err := loadShard(dir)
		if err != nil {
			return Run{}, fmt.Errorf("merge shards: %w", err)
		}
		shards = append(shards, sr)
	}
	if err := checkShards(shards); err != nil {
		return Run{}, fmt.Errorf("merge shards: %w: %w", err, ErrBadShards)
	}
	merged := shards[0].info
	merged.ShardIndex, merged.ShardCount = 0, 0
	run := Run{Info: &merged}
	owner := map[string]string{}
	for _, sr := range shards {
		if sr.info.Started.Before(merged.Started) {
			merged.Started = sr.info.Started
		}
		for _, r := range sr.run.Records {
			if prev, ok := owner[r.ID]; ok {
				return Run{}, fmt.Errorf("merge shards: trial %s is in both %s and %s: %w", r.ID, prev, sr.dir, ErrBadShards)
			}
			owner[r.ID] = sr.dir
			run.Records = append(run.Records, r)
		}
	}
	return run, nil
}

// loadShard loads a shard's run directory, which must have a run.json
// saying which shard it ran. A shard may hold no record (it had no trial
// to run).
func loadShard(dir string) (shardRun, error) {
	info, err := LoadRunInfo(dir)
	if err != nil {
		return shardRun{}, err
	}
	if info == nil {
		return shardRun{}, fmt.Errorf("%s: no %s: not the run directory of a shard of pgbb-crash: %w", dir, RunInfoFile, ErrBadShards)
	}
	if info.ShardCount == 0 {
		return shardRun{}, fmt.Errorf("%s: ran the whole campaign, not a shard (-shard i/n): %w", dir, ErrBadShards)
	}
	if info.Replay != "" {
		return shardRun{}, fmt.Errorf("%s: replayed %s, not a shard: %w", dir, info.Replay, ErrBadShards)
	}
	recs, err := LoadRecords(dir)
	if err != nil {
		return shardRun{}, err
	}
	return shardRun{dir: dir, info: *info, run: Run{Dir: dir, Info: info, Records: recs}}, nil
}

// checkShards checks that the shards are those of one campaign, each once.
func checkShards(shards []shardRun) error {
	first := shards[0]
	for _, sr := range shards[1:] {
		if d := runDiffers(first.info, sr.info); d != "" {
			return fmt.Errorf("%s and %s ran another %s", first.dir, sr.dir, d)
		}
	}
	n := first.info.ShardCount
	byIndex := map[int]string{}
	for _, sr := range shards {
		i := sr.info.ShardIndex
		if i < 1 || i > n {
			return fmt.Errorf("%s: shard %d/%d", sr.dir, i, n)
		}
		if prev, ok := byIndex[i]; ok {
			return fmt.Errorf("shard %d/%d given twice: %s and %s", i, n, prev, sr.dir)
		}
		byIndex[i] = sr.dir
	}
	var missing []string
	for i := 1; i <= n; i++ {
		if _, ok := byIndex[i]; !ok {
			missing = append(missing, fmt.Sprintf("%d/%d", i, n))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("shard %s missing (given: %s)", strings.Join(missing, ", "), strings.Join(slices.Sorted(maps.Values(byIndex)), ", "))
	}
	return nil
}

// runDiffers names what two shards' runs differ in that makes them
// shards of different campaigns ("" when nothing does).
func runDiffers(a, b RunInfo) string {
	switch {
	case a.Seed != b.Seed:
		return fmt.Sprintf("seed (%d, %d)", a.Seed, b.Seed)
	case a.Major != b.Major || a.Version != b.Version:
		return fmt.Sprintf("PostgreSQL version (%s, %s)", a.Version, b.Version)
	case a.Variant != b.Variant:
		return fmt.Sprintf("variant or patch series (%s, %s)", a.Variant, b.Variant)
	case a.Backend != b.Backend:
		return fmt.Sprintf("backend (%s, %s)", a.Backend, b.Backend)
	case !slices.Equal(a.Scenarios, b.Scenarios):
		return fmt.Sprintf("list of scenarios (%s; %s)", strings.Join(a.Scenarios, ","), strings.Join(b.Scenarios, ","))
	case !maps.Equal(a.Trials, b.Trials):
		return fmt.Sprintf("number of trials per scenario (%v, %v)", a.Trials, b.Trials)
	case a.ShardCount != b.ShardCount:
		return fmt.Sprintf("number of shards (%d, %d)", a.ShardCount, b.ShardCount)
	}
	return ""
}
