package taskflow

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/proc"
)

// Reading is what `pgbb-status --json FILE` said.
type Reading struct {
	// At is when the reader ran.
	At time.Time `json:"at"`
	// Verdict, Final, ExitCode and Summary are the report's.
	Verdict  string `json:"verdict"`
	Final    bool   `json:"final"`
	ExitCode int    `json:"exit_code"`
	Summary  string `json:"summary"`
	// Status holds the fields of the status file the flow uses.
	Status struct {
		PID           int       `json:"pid"`
		Phase         string    `json:"phase"`
		UpdateTime    time.Time `json:"update_time"`
		BytesReceived uint64    `json:"bytes_received"`
		BytesTotal    uint64    `json:"bytes_total"`
	} `json:"status"`
}

// Verdicts of pgbb-status (status.Verdict's names).
const (
	verdictCompleted  = "completed"
	verdictNotDurable = "completed-not-durable"
	verdictFailed     = "failed"
	verdictRunning    = "running"
	verdictStalled    = "stalled"
	verdictNot        = "not-complete"
	// verdictUnconfirmed: the file says completed, but the directories
	// it records are missing or not its owner's (exit code 6).
	verdictUnconfirmed = "completed-unconfirmed"
)

// Heartbeat phases: the writer rewrites the file every refresh interval
// in them (status.Phase.Heartbeat).
var heartbeatPhases = map[string]bool{"receiving data": true, "waiting for WAL": true}

// Reader runs the pgbb-status program as an account.
type Reader struct {
	// Bin is the pgbb-status program.
	Bin string
	// Judge runs `pgbb-status --json`; Remove runs --remove-if-dead
	// (the backup's owner: the judge may only read).
	Judge, Remove osuser.Account
}

// Read judges the status file at path.
func (rd Reader) Read(ctx context.Context, path string) (Reading, error) {
	var r Reading
	_, err := proc.RunJSON(ctx, rd.Judge, []string{"TZ=" + ReaderTZ}, &r, rd.Bin, "--json", path)
	r.At = time.Now()
	return r, err
}

// RemoveIfDead runs `pgbb-status --remove-if-dead FILE` and returns its
// exit code (0 removed, 1 refused, 2 partly done) and output.
func (rd Reader) RemoveIfDead(ctx context.Context, path string) (int, string, error) {
	out, err := proc.Command(ctx, rd.Remove, []string{"TZ=" + ReaderTZ}, rd.Bin, "--remove-if-dead", path).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out), nil
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out), nil
	}
	return 0, string(out), fmt.Errorf("pgbb-status --remove-if-dead %s as %s: %w", path, rd.Remove.Name, err)
}
