package fault

import (
	"context"

	"github.com/pgbb/pgbb/harness/status"
)

// The crash harness asks for the removal of a dead run's directories in
// two ways: in process (status.RemoveIfDead: the clean-up after a trial,
// the stop plan) and as the pgbb-status program (the stop plan's reader
// in another PID namespace). Both go through the two functions below,
// which name the run by its status file: a status file lies outside every
// directory the run writes, so the directories cannot name it.

// RemoveIfDead is `pgbb-status --remove-if-dead` for the run whose
// status file is statusFile.
func RemoveIfDead(ctx context.Context, statusFile string, dryRun bool, opts ...status.Option) *status.Removal {
	return status.RemoveIfDead(ctx, statusFile, dryRun, opts...)
}

// RemoveIfDeadArgs returns pgbb-status's arguments for the same.
func RemoveIfDeadArgs(statusFile string) []string {
	return []string{"--remove-if-dead", statusFile}
}
