package fault

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

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

// ReaderGaps says why the stop plan's built reader does not also run as
// another OS user or from another PID namespace; "" where it does. A
// record carries it (StopObservation.NotRun), so that the summary says
// what was not covered and why.
type ReaderGaps struct {
	// OtherUser says why it does not run as another user.
	OtherUser string `json:"other_user,omitempty"`
	// OtherNamespace says why it does not run from another PID
	// namespace.
	OtherNamespace string `json:"other_namespace,omitempty"`
}

// Reasons the stop plan gives in ReaderGaps when the target shows them.
const (
	NoReaderBin = "no built pgbb-status was given to the campaign"
	NoOtherUser = "no other OS user to run it as (there is one only when the campaign runs as root)"
)

// Any says whether the reader misses a run.
func (g ReaderGaps) Any() bool { return g.OtherUser != "" || g.OtherNamespace != "" }

// ReadersNotRun is t.ReaderGaps completed with what t itself shows: no
// reader binary, no other user.
func ReadersNotRun(t *Target) ReaderGaps {
	g := t.ReaderGaps
	if t.ReaderBin == "" {
		g.OtherUser = cmp.Or(g.OtherUser, NoReaderBin)
		g.OtherNamespace = cmp.Or(g.OtherNamespace, NoReaderBin)
	}
	if t.OtherUser == nil {
		g.OtherUser = cmp.Or(g.OtherUser, NoOtherUser)
	}
	return g
}

// CheckOtherNamespace says whether this process can run a program as the
// stop plan runs the reader: in a new PID and mount namespace with a /proc
// of its own (unshare(1)). That takes CAP_SYS_ADMIN, and in a container a
// seccomp and AppArmor profile that let it unshare and mount.
func CheckOtherNamespace(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("unshare --pid --fork --mount-proc: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
