package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// BuildDeps lists the Debian packages a PostgreSQL build with the
// project's configure flags and its TAP tests needs. The container base
// image and the native host both get exactly these.
func BuildDeps() []string {
	return []string{
		"gcc", "make", "bison", "flex", "perl", "pkg-config",
		"libreadline-dev", "zlib1g-dev", "liblz4-dev", "libzstd-dev",
		"libipc-run-perl",            // TAP tests (IPC::Run)
		"lz4", "zstd", "gzip", "tar", // programs the pg_basebackup TAP tests use
		"tzdata",      // crash trials run pg_basebackup in time zones other than UTC
		"strace",      // 012_status_file.pl injects I/O errors on the status file's fsync
		"libfaketime", // ... and sets the wall clock back under a running backup
		"procps",      // 013_wal_child.pl finds the WAL streaming process with ps
	}
}

// ConfigureFlags are the configure flags of every build (the install
// prefix is added per backend). The compression options are exercised by
// the pg_basebackup tests; without --enable-tap-tests `make check` would
// succeed without running anything. --enable-depend makes make track
// header dependencies: the container build compiles a release first and
// the patches' changes on top, and the derived native builds recompile a
// copied tree, and the series change headers (common/file_utils.h).
func ConfigureFlags() []string {
	return []string{"--enable-tap-tests", "--enable-depend", "--with-lz4", "--with-zstd", "--without-icu"}
}

// missingDebs returns the packages of pkgs that dpkg does not list as
// installed. Without dpkg-query (not Debian) it returns nothing and lets
// configure speak.
func missingDebs(ctx context.Context, pkgs []string) ([]string, error) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		return nil, nil
	}
	var missing []string
	for _, p := range pkgs {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${db:Status-Status}", p).Output()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil || strings.TrimSpace(string(out)) != "installed" {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// ensureDebs installs the missing packages of pkgs with apt-get when
// running as root, and otherwise fails naming them.
func ensureDebs(ctx context.Context, l *logger, why string, pkgs []string) error {
	return ensureDebsAs(ctx, l, why, pkgs, os.Geteuid() == 0)
}

// ensureDebsAs is ensureDebs with the root check made by the caller.
func ensureDebsAs(ctx context.Context, l *logger, why string, pkgs []string, root bool) error {
	missing, err := missingDebs(ctx, pkgs)
	if err != nil {
		return fmt.Errorf("check %s: %w", why, err)
	}
	if len(missing) == 0 {
		return nil
	}
	if !root {
		return fmt.Errorf("%s: missing Debian packages %s; install them with: sudo apt-get install %s",
			why, strings.Join(missing, " "), strings.Join(missing, " "))
	}
	l.logf("installing %s: %s", why, strings.Join(missing, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"apt-get", "-q", "update"},
		append([]string{"apt-get", "-q", "install", "-y", "--no-install-recommends"}, missing...),
	} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("install %s: %s: %w\n%s", why, strings.Join(args, " "), err, tail(string(out), 40))
		}
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
