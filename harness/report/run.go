package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/trial"
)

// RunInfoFile is the name of the file, in a run directory, that says what
// the campaign ran.
const RunInfoFile = "run.json"

// RunInfo says what a campaign ran: pgbb-crash writes it as run.json into
// the run directory before the first trial. Run directories made before
// it existed have none (see Run.Label).
type RunInfo struct {
	// Version is the PostgreSQL version under test ("18.6"; "18
	// (installed)" or "18 (image)" when not built by the harness).
	Version string `json:"version"`
	// Major is the PostgreSQL major version.
	Major int `json:"major"`
	// Variant labels the build as the records do: "patched", "stock",
	// "series-<dir>" for -patches, with "installed-" for -install.
	Variant string `json:"variant"`
	// Backend is native or container.
	Backend string `json:"backend"`
	// Seed is the campaign seed.
	Seed int64 `json:"seed"`
	// Scenarios are the scenario files or directories given (-scenarios).
	Scenarios []string `json:"scenarios"`
	// Trials is how many trials each scenario has (after pgbb-crash
	// -trials): with the seed, what makes the set of trials.
	Trials map[string]int `json:"trials,omitempty"`
	// ShardIndex and ShardCount say which share of the campaign's trials
	// this run ran (pgbb-crash -shard i/n); 0 for the whole campaign.
	ShardIndex int `json:"shard_index,omitempty"`
	ShardCount int `json:"shard_count,omitempty"`
	// Replay is the one trial replayed, if any.
	Replay string `json:"replay,omitempty"`
	// Started is when the campaign started.
	Started time.Time `json:"started"`
}

// Label names the build under test: "<version> <variant>".
func (i RunInfo) Label() string { return strings.TrimSpace(i.Version + " " + i.Variant) }

// SaveRunInfo writes info as run.json into dir, creating dir.
func SaveRunInfo(dir string, info RunInfo) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save run info: %w", err)
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("save run info: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, RunInfoFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save run info: %w", err)
	}
	return nil
}

// LoadRunInfo reads dir's run.json; it returns nil, without error, when
// there is none.
func LoadRunInfo(dir string) (*RunInfo, error) {
	path := filepath.Join(dir, RunInfoFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load run info: %w", err)
	}
	var info RunInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("load run info: %s: %w", path, err)
	}
	return &info, nil
}

// LoadRecords reads every trial record of a run directory
// (<runDir>/trials/*.json), in file name order. A run directory without
// trials gives no records and no error; a file that is not a trial record
// is an error naming it.
func LoadRecords(runDir string) ([]*trial.Record, error) {
	if _, err := os.Stat(runDir); err != nil {
		return nil, fmt.Errorf("load records: %w", err)
	}
	dir := filepath.Join(runDir, "trials")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load records: %w", err)
	}
	var recs []*trial.Record
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		r, err := loadRecord(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load records: %w", err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func loadRecord(path string) (*trial.Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r trial.Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.ID == "" || r.Plan == "" {
		return nil, fmt.Errorf("%s: not a trial record (no id or plan)", path)
	}
	return &r, nil
}

// ErrNoTrials says a run directory holds no trial records.
var ErrNoTrials = errors.New("no trial records")

// Run is a campaign's run directory, loaded.
type Run struct {
	// Dir is the run directory.
	Dir string
	// Info is its run.json; nil for runs made before it was written.
	Info *RunInfo
	// Records are its trial records.
	Records []*trial.Record
}

// LoadRun loads a run directory: run.json if present and the trial
// records, of which there must be at least one (ErrNoTrials).
func LoadRun(dir string) (Run, error) {
	recs, err := LoadRecords(dir)
	if err != nil {
		return Run{}, err
	}
	if len(recs) == 0 {
		return Run{}, fmt.Errorf("%s: %w (no %s): not a run directory of pgbb-crash, or its campaign ran no trial",
			dir, ErrNoTrials, filepath.Join(dir, "trials", "*.json"))
	}
	info, err := LoadRunInfo(dir)
	if err != nil {
		return Run{}, err
	}
	return Run{Dir: dir, Info: info, Records: recs}, nil
}

// Label names the run's build: run.json's "<version> <variant>"; without
// run.json, the variant of its records and the directory's name.
func (r Run) Label() string {
	if r.Info != nil && r.Info.Label() != "" {
		return r.Info.Label()
	}
	base := filepath.Base(filepath.Clean(r.Dir))
	for _, rec := range r.Records {
		if rec.Variant != "" {
			return rec.Variant + " (" + base + ")"
		}
	}
	return base
}

// Detail describes how the run was made, from run.json ("" without it).
func (r Run) Detail() string {
	if r.Info == nil {
		return ""
	}
	d := fmt.Sprintf("seed %d, %s backend, scenarios %s", r.Info.Seed, r.Info.Backend, strings.Join(r.Info.Scenarios, ","))
	if r.Info.Replay != "" {
		d += ", replay " + r.Info.Replay
	}
	return d
}

// BuildsOf turns runs into the columns of a comparison, in order. Labels
// are unique: runs whose labels are equal (the same build run twice) get
// their directory added, and the column's number when that is not enough.
func BuildsOf(runs []Run) []Build {
	count := map[string]int{}
	for _, r := range runs {
		count[r.Label()]++
	}
	seen := map[string]bool{}
	var bs []Build
	for i, r := range runs {
		label := r.Label()
		if count[label] > 1 {
			label += " [" + r.Dir + "]"
		}
		if seen[label] {
			label += fmt.Sprintf(" #%d", i+1)
		}
		seen[label] = true
		bs = append(bs, Build{Label: label, Source: r.Dir, Detail: r.Detail(), Records: r.Records})
	}
	return bs
}
