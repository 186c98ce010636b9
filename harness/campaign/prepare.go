package campaign

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/osuser"
)

// Target is the PostgreSQL build a campaign runs against.
type Target struct {
	// Build is the build.
	Build build.Result
	// Acct runs its programs.
	Acct osuser.Account
	// StatusFile says whether its pg_basebackup writes a status file.
	StatusFile bool
}

// Prepare builds (or reuses) spec with b, installs contrib/amcheck into it
// when missing (the oracle runs pg_amcheck), finds the account that runs
// it, and asks pg_basebackup whether it writes a status file.
func Prepare(ctx context.Context, b *build.Builder, spec build.Spec, log io.Writer) (Target, error) {
	res, err := b.Build(ctx, spec)
	if err != nil {
		return Target{}, err
	}
	if res.Backend != build.BackendNative {
		return Target{}, fmt.Errorf("the crash harness runs natively only so far, the build is from the %s backend", res.Backend)
	}
	if !hasAmcheck(res.Prefix) {
		if log != nil {
			fmt.Fprintln(log, "pgbb-crash: installing contrib/amcheck into the build (the oracle runs pg_amcheck)")
		}
		if _, err := b.Exec(ctx, res, "make", "-C", "contrib/amcheck", "install"); err != nil {
			return Target{}, fmt.Errorf("install amcheck: %w", err)
		}
	}
	return Installed(ctx, res, log)
}

// hasAmcheck says whether the installation has the amcheck extension
// (share/ is share/postgresql/ unless the prefix names postgres).
func hasAmcheck(prefix string) bool {
	for _, d := range []string{"share/postgresql/extension", "share/extension"} {
		if _, err := os.Stat(filepath.Join(prefix, d, "amcheck.control")); err == nil {
			return true
		}
	}
	return false
}

// Installed describes an existing installation (res.Prefix, res.BinDir,
// res.User) as a campaign target, without building anything.
func Installed(ctx context.Context, res build.Result, log io.Writer) (Target, error) {
	if !hasAmcheck(res.Prefix) {
		return Target{}, fmt.Errorf("installation %s has no amcheck extension (contrib/amcheck); the oracle needs it", res.Prefix)
	}
	acct, err := osuser.Ensure(ctx, res.User, log)
	if err != nil {
		return Target{}, err
	}
	out, err := exec.CommandContext(ctx, filepath.Join(res.BinDir, "pg_basebackup"), "--help").CombinedOutput()
	if err != nil {
		return Target{}, fmt.Errorf("pg_basebackup --help: %w", err)
	}
	return Target{Build: res, Acct: acct, StatusFile: strings.Contains(string(out), "--status-file")}, nil
}
