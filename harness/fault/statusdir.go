package fault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// StatusDirObservation is what the status-dir-readonly plan did; the
// trial's invariants judge the run against it (harness/trial).
type StatusDirObservation struct {
	// Phase is the status file's PHASE when its directory was made
	// read-only.
	Phase string `json:"phase"`
	// Early says the plan meant to make the directory writable again as
	// soon as pg_basebackup logged a failed write of the status file;
	// otherwise it stays read-only until the run has ended.
	Early bool `json:"early"`
	// FailureSeen says such a failed write was logged while the directory
	// was read-only (early plans only: a late plan does not wait for it).
	FailureSeen bool `json:"failure_seen,omitempty"`
	// Restored says the directory was made writable again while the run
	// was still going; RestoredPhase is the latest phase its log had
	// shown then (fault.Phase names).
	Restored      bool   `json:"restored"`
	RestoredPhase string `json:"restored_phase,omitempty"`
}

// statusDirReadOnly is scenario.PlanStatusDirReadOnly.
type statusDirReadOnly struct{}

var _ Fault = statusDirReadOnly{}

func (statusDirReadOnly) Name() string     { return scenario.PlanStatusDirReadOnly }
func (statusDirReadOnly) Available() error { return nil }

// statusDirFailureWait bounds how long an early plan waits for a failed
// rewrite before it makes the directory writable again anyway.
const statusDirFailureWait = 10 * time.Second

func (f statusDirReadOnly) Inject(ctx context.Context, t *Target) (Injection, error) {
	obs := &StatusDirObservation{Early: t.Rand.IntN(2) == 0}
	inj := Injection{Plan: f.Name(), Anchor: string(status.PhaseReceiving), StatusDir: obs}
	if t.StatusFile == "" {
		inj.Detail = "the run writes no status file"
		return inj, nil
	}
	dir := filepath.Dir(t.StatusFile)
	phase, ok := waitStatusPhase(ctx, t)
	if !ok {
		inj.Detail = "the status file never said the run was receiving data"
		return inj, ctx.Err()
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return inj, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		return inj, fmt.Errorf("%s: %w", f.Name(), err)
	}
	fired(&inj, t)
	obs.Phase = string(phase)
	restored := false
	restore := func() error {
		if restored {
			return nil
		}
		restored = true
		return os.Chmod(dir, fi.Mode().Perm())
	}
	// Whatever happens, the directory is writable again before anything
	// after the run (the clean-up, the retry) uses it.
	defer restore()

	if obs.Early {
		wctx, cancel := context.WithTimeout(ctx, statusDirFailureWait)
		obs.FailureSeen = t.Phases.WaitLineFunc(wctx, namesTempFile(t.StatusFile, t.PID), t.Done)
		cancel()
		select {
		case <-t.Done:
		default:
			obs.RestoredPhase = t.Phases.Current().String()
			if err := restore(); err != nil {
				return inj, fmt.Errorf("%s: %w", f.Name(), err)
			}
			obs.Restored = true
		}
	}
	select {
	case <-t.Done:
	case <-ctx.Done():
	}
	inj.Detail = fmt.Sprintf("%s made read-only in phase %q", dir, obs.Phase)
	switch {
	case obs.Restored:
		inj.Detail += fmt.Sprintf(", writable again at phase %s (a failed rewrite logged: %t)", obs.RestoredPhase, obs.FailureSeen)
	case obs.Early:
		inj.Detail += ", the run ended before it was writable again"
	default:
		inj.Detail += ", writable again after the run"
	}
	return inj, nil
}

// namesTempFile returns a matcher of the log lines that name, quoted as
// pg_basebackup quotes a path, a temporary file of the status file at path
// written by the run of pid: path.PID.tmp, or path.tmp, which earlier
// writers used (a failed rewrite names the file it could not create,
// write or rename).
func namesTempFile(path string, pid int) func(line string) bool {
	own, legacy := `"`+status.TempPath(path, pid)+`"`, `"`+status.LegacyTempPath(path)+`"`
	return func(line string) bool { return strings.Contains(line, own) || strings.Contains(line, legacy) }
}

// waitStatusPhase waits until the run's status file says it is in
// progress in phase "receiving data" or a later one, and returns that
// phase; false when the run ended first (or the file said completed or
// failed).
func waitStatusPhase(ctx context.Context, t *Target) (status.Phase, bool) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if st, err := status.ReadFile(t.StatusFile); err == nil {
			switch {
			case st.State != status.StateInProgress:
				return "", false
			case st.Phase != "" && st.Phase != status.PhaseStarting:
				return st.Phase, true
			}
		}
		select {
		case <-tick.C:
		case <-t.Done:
			return "", false
		case <-ctx.Done():
			return "", false
		}
	}
}
