package fault

import (
	"context"
	"os"
	"os/exec"

	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/proc"
)

// NamespaceReader is what pgbb-status said about a live run from a PID
// namespace of its own, where the run's pid means nothing.
type NamespaceReader struct {
	// Verdict, Final and ExitCode are from `pgbb-status --json FILE`
	// (the run's status file); Summary says why.
	Verdict  string `json:"verdict"`
	Final    bool   `json:"final"`
	ExitCode int    `json:"exit_code"`
	Summary  string `json:"summary"`
	// RemoveExit is the exit code of `pgbb-status --remove-if-dead FILE
	// --dry-run` there (1: refused), RemoveRefused its reason.
	RemoveExit    int    `json:"remove_exit"`
	RemoveRefused string `json:"remove_refused,omitempty"`
	// Error says why the reader could not be run; the rest is then empty.
	Error string `json:"error,omitempty"`
}

// readFromOtherNamespace runs the pgbb-status binary bin on the status
// file statusFile in a new PID namespace with its own /proc (unshare(1)):
// once to judge, once to plan a removal.
func readFromOtherNamespace(ctx context.Context, bin, statusFile, tz string) *NamespaceReader {
	nr := &NamespaceReader{}
	var report struct {
		Verdict  string `json:"verdict"`
		Final    bool   `json:"final"`
		ExitCode int    `json:"exit_code"`
		Summary  string `json:"summary"`
	}
	code, err := runUnshared(ctx, tz, &report, bin, "--json", statusFile)
	if err != nil {
		nr.Error = err.Error()
		return nr
	}
	nr.Verdict, nr.Final, nr.ExitCode, nr.Summary = report.Verdict, report.Final, code, report.Summary
	var removal struct {
		Refused string `json:"refused"`
	}
	args := append(append([]string{"--json"}, RemoveIfDeadArgs(statusFile)...), "--dry-run")
	if nr.RemoveExit, err = runUnshared(ctx, tz, &removal, bin, args...); err != nil {
		nr.Error = err.Error()
		return nr
	}
	nr.RemoveRefused = removal.Refused
	return nr
}

// runUnshared runs bin with args in a new PID and mount namespace with a
// /proc of its own, decodes its JSON output into v and returns its exit
// code.
func runUnshared(ctx context.Context, tz string, v any, bin string, args ...string) (int, error) {
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--pid", "--fork", "--mount-proc", bin}, args...)...)
	cmd.Env = append(os.Environ(), tzEnv(tz)...)
	return proc.OutputJSON(cmd, v)
}

// UserReader is what pgbb-status said about a live run when run as
// another OS user than pg_basebackup's, in its group, as an orchestrator
// often is.
type UserReader struct {
	// User is the reader's login name.
	User string `json:"user"`
	// Verdict, Final and ExitCode are from `pgbb-status --json FILE`;
	// Summary says why.
	Verdict  string `json:"verdict"`
	Final    bool   `json:"final"`
	ExitCode int    `json:"exit_code"`
	Summary  string `json:"summary"`
	// Error says why the reader could not be run.
	Error string `json:"error,omitempty"`
}

// tzEnv is the environment that sets time zone tz; none when tz is empty.
func tzEnv(tz string) []string {
	if tz == "" {
		return nil
	}
	return []string{"TZ=" + tz}
}

// readAsUser runs the pgbb-status binary bin as acct on statusFile.
func readAsUser(ctx context.Context, acct osuser.Account, bin, statusFile, tz string) *UserReader {
	ur := &UserReader{}
	code, err := proc.RunJSON(ctx, acct, tzEnv(tz), ur, bin, "--json", statusFile)
	ur.User, ur.ExitCode = acct.Name, code
	if err != nil {
		ur.Error = err.Error()
	}
	return ur
}
