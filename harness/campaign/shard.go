package campaign

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/pgbb/pgbb/harness/scenario"
)

// Shard is one of Count shares of a seeded campaign's trials, Index from
// 1 to Count (pgbb-crash -shard i/n). The zero Shard is the whole
// campaign.
type Shard struct {
	Index int `json:"index,omitempty"`
	Count int `json:"count,omitempty"`
}

// ParseShard parses "i/n" (1 <= i <= n); "" is the whole campaign.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	i, ierr := strconv.Atoi(is)
	n, nerr := strconv.Atoi(ns)
	sh := Shard{Index: i, Count: n}
	if !ok || ierr != nil || nerr != nil {
		return Shard{}, fmt.Errorf("shard %q: want i/n, e.g. 1/4", s)
	}
	return sh, sh.Check()
}

// Check says whether the shard is the whole campaign or one of n shares.
func (sh Shard) Check() error {
	if sh.Whole() || (sh.Count >= 1 && sh.Index >= 1 && sh.Index <= sh.Count) {
		return nil
	}
	return fmt.Errorf("shard %d/%d: want i/n with 1 <= i <= n", sh.Index, sh.Count)
}

// Whole says whether the shard is the whole campaign.
func (sh Shard) Whole() bool { return sh == Shard{} }

// String is "i/n", or "" for the whole campaign.
func (sh Shard) String() string {
	if sh.Whole() {
		return ""
	}
	return fmt.Sprintf("%d/%d", sh.Index, sh.Count)
}

// ScenarioSeed is the seed of a scenario's trials in a campaign of seed:
// the scenario's own seed when it sets one.
func ScenarioSeed(seed int64, s scenario.Scenario) int64 {
	if s.Seed != 0 {
		return s.Seed
	}
	return seed
}

// TrialID names trial index of scenario s.
func TrialID(s scenario.Scenario, index int) string { return fmt.Sprintf("%s/%d", s.Name, index) }

// TrialPlan is the fault plan of trial index of scenario s.
func TrialPlan(s scenario.Scenario, index int) string { return s.Faults[index%len(s.Faults)] }

// ShardTrials returns, for each scenario of a campaign with seed, the
// indices of the trials shard sh runs, in increasing order: every index
// for the whole campaign. A trial's identity (TrialID, TrialPlan,
// TrialSeed) depends only on the seed, its scenario and its index, never
// on the shard that runs it, so the n shards of a seed together run
// exactly the trials of the whole campaign, each once.
//
// The trials are dealt to the shards in turn, in an order shuffled by the
// seed within each scenario (so that no shard gets only some of the fault
// plans, which cost unequal time), the deal going on from one scenario to
// the next (so that shards differ by at most one trial in all).
func ShardTrials(scs []scenario.Scenario, seed int64, sh Shard) [][]int {
	out := make([][]int, len(scs))
	dealt := 0
	for k, s := range scs {
		for _, index := range shuffledIndices(ScenarioSeed(seed, s), s) {
			if sh.Whole() || dealt%sh.Count == sh.Index-1 {
				out[k] = append(out[k], index)
			}
			dealt++
		}
		slices.Sort(out[k])
	}
	return out
}

// shuffledIndices is 0 to s.Trials-1 in an order drawn from the seed and
// the scenario's name.
func shuffledIndices(seed int64, s scenario.Scenario) []int {
	h := fnv.New64a()
	fmt.Fprintf(h, "shard/%d/%s", seed, s.Name)
	return rand.New(rand.NewPCG(h.Sum64(), 0x5a4d)).Perm(s.Trials)
}
