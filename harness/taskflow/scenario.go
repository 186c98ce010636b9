// Package taskflow drives pg_basebackup the way a task scheduler does when
// the backup outlives the task's timeout: each attempt has a deadline; when
// it fires, the scheduler stops the run as real schedulers do (SIGTERM to
// the pid alone or to its process group, SIGKILL) or leaves it running;
// the next attempt judges what the last one left, cleans up and retries
// with backoff, until it has a backup it takes as complete or gives up.
//
// The same flow runs with a patched pg_basebackup, judged by pgbb-status
// (run as another OS user than pg_basebackup, as an orchestrator often
// is), with a stock one under pgbb-run, judged and cleaned up the same
// way, and with a stock one alone, judged only by what a stock user has:
// the exit code, backup_manifest, rm -rf and retry. Every backup a flow
// takes as complete goes to the oracle. The outcome table sets the three
// side by side: flows that converged, attempts, wall time against an
// unfaulted run, incomplete backups taken as complete, live runs
// removed, healthy runs called stalled, and how soon a stalled run was
// seen.
package taskflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
)

// Policy is what the scheduler does to a run when an attempt's deadline
// fires.
type Policy string

const (
	// Leave abandons the task and leaves pg_basebackup running (a
	// detached run, systemd KillMode=none, a worker that lost its lease).
	Leave Policy = "leave"
	// TermPID sends SIGTERM to the pid the scheduler started alone:
	// pg_basebackup, or pgbb-run over it (kill PID, Go's
	// exec.CommandContext, systemd KillMode=process).
	TermPID Policy = "term-pid"
	// TermGroup sends SIGTERM to its process group (kill -- -PGID, a
	// shell's job control, KillMode=control-group).
	TermGroup Policy = "term-group"
	// Kill sends SIGKILL to the pid the scheduler started alone (kill -9
	// PID): pg_basebackup, or pgbb-run over it.
	Kill Policy = "kill"
)

// Policies lists every policy.
func Policies() []Policy { return []Policy{Leave, TermPID, TermGroup, Kill} }

// Duration is a time.Duration written in JSON as Go writes it ("45s").
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"45s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Scenario is one task-flow campaign, read from a JSON file of
// scenarios/taskflow.
type Scenario struct {
	// Name is the file name without .json.
	Name string `json:"-"`
	// File is where it was read from.
	File string `json:"-"`
	// Description says what the campaign shows.
	Description string `json:"description"`
	// Scale is the pgbench scale of the source (about 15 MB each).
	Scale int `json:"scale"`
	// Clients write to the source while the flows run.
	Clients int `json:"clients"`
	// Tablespaces and WALDir: tablespaces in the source (each mapped with
	// -T), and --waldir, in plain format.
	Tablespaces int  `json:"tablespaces"`
	WALDir      bool `json:"waldir"`
	// MaxRate is pg_basebackup's --max-rate, so that a run lasts long
	// enough to meet the deadline.
	MaxRate string `json:"max_rate"`
	// Refresh is --status-file-refresh, in seconds.
	Refresh int `json:"refresh"`
	// Deadline is each attempt's timeout; Attempts how many attempts a
	// flow makes before giving up; Backoff the wait before the second
	// attempt, doubled for each one after.
	Deadline Duration `json:"deadline"`
	Attempts int      `json:"attempts"`
	Backoff  Duration `json:"backoff"`
	// Policies are the scheduler's ways to stop a run at the deadline:
	// one flow per policy and variant (Variants).
	Policies []Policy `json:"policies"`
	// FreshPolicies adds, per policy, a stock and a patched fresh flow: a
	// scheduler that never runs the reader and never cleans up, each
	// attempt into a directory of its own with the same --status-file
	// (see Flow.Fresh).
	FreshPolicies []Policy `json:"fresh_policies"`
	// Stall, if set, adds a patched and a wrapper flow (policy leave)
	// whose base backup sender on the server is stopped (SIGSTOP) this
	// long once data flows: the run is alive but stalled, and must be
	// seen so.
	Stall Duration `json:"stall"`
}

// Load reads the scenarios of paths: files, or directories whose *.json
// files are read in name order. Unknown keys and bad values are errors
// that name the file.
func Load(paths ...string) ([]Scenario, error) {
	files, err := scenario.Files("task-flow scenarios", paths...)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("task-flow scenarios: no .json file in %s", strings.Join(paths, ", "))
	}
	var scs []Scenario
	for _, f := range files {
		sc, err := loadFile(f)
		if err != nil {
			return nil, err
		}
		scs = append(scs, sc)
	}
	return scs, nil
}

// loadFile reads and checks one scenario file.
func loadFile(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("task-flow scenario: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	sc := Scenario{Scale: 1, Attempts: 3, Refresh: 5, Policies: Policies()}
	if err := dec.Decode(&sc); err != nil {
		return Scenario{}, fmt.Errorf("task-flow scenario %s: %w", path, err)
	}
	sc.File, sc.Name = path, strings.TrimSuffix(filepath.Base(path), ".json")
	if err := sc.check(); err != nil {
		return Scenario{}, fmt.Errorf("task-flow scenario %s: %w", path, err)
	}
	return sc, nil
}

// check rejects values the driver cannot run.
func (sc Scenario) check() error {
	var errs []error
	if sc.Scale < 1 {
		errs = append(errs, fmt.Errorf("scale %d: want at least 1", sc.Scale))
	}
	if sc.Clients < 0 || sc.Tablespaces < 0 {
		errs = append(errs, fmt.Errorf("clients %d, tablespaces %d: want 0 or more", sc.Clients, sc.Tablespaces))
	}
	if sc.Deadline <= 0 {
		errs = append(errs, errors.New("deadline: required, positive (each attempt's timeout)"))
	}
	if sc.Attempts < 2 {
		errs = append(errs, fmt.Errorf("attempts %d: want at least 2 (a flow retries)", sc.Attempts))
	}
	if sc.Backoff < 0 {
		errs = append(errs, errors.New("backoff: negative"))
	}
	if sc.Refresh < 1 {
		errs = append(errs, fmt.Errorf("refresh %d: want at least 1 second", sc.Refresh))
	}
	if sc.MaxRate == "" {
		errs = append(errs, errors.New("max_rate: required (pg_basebackup --max-rate, so that a run outlives the deadline)"))
	}
	if len(sc.Policies) == 0 && len(sc.FreshPolicies) == 0 {
		errs = append(errs, errors.New("policies and fresh_policies: both empty"))
	}
	for _, p := range append(slices.Clone(sc.Policies), sc.FreshPolicies...) {
		if !slices.Contains(Policies(), p) {
			errs = append(errs, fmt.Errorf("policy %q: want one of %v", p, Policies()))
		}
	}
	if least := stallLimit(sc); sc.Stall < 0 || (sc.Stall > 0 && time.Duration(sc.Stall) < least) {
		errs = append(errs, fmt.Errorf("stall %s: want at least %s (the reader's stall age for refresh %ds, a refresh and a poll), so that the reader can see it",
			time.Duration(sc.Stall), least, sc.Refresh))
	}
	return errors.Join(errs...)
}
