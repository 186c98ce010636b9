package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgbb/pgbb/harness/pgsrc"
)

// The integration tests build real PostgreSQL and run its TAP suites. They
// are opt-in so that `go test ./...` stays fast: `make test` sets
// PGBB_INTEGRATION=1. BACKEND picks the backend (default auto); when the
// requested backend cannot work they fail, never skip.

func integration(t *testing.T) (*Builder, context.Context) {
	t.Helper()
	if os.Getenv("PGBB_INTEGRATION") == "" {
		t.Skip("integration test: set PGBB_INTEGRATION=1 (make test does)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	t.Cleanup(stop)
	root, err := FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]Option{WithRepoRoot(root), WithLog(testLog{t})}, FromEnv()...)
	b, err := New(ctx, opts...)
	if err != nil {
		t.Fatalf("backend %q requested but unavailable: %v", envOr("BACKEND", BackendAuto), err)
	}
	t.Logf("BACKEND=%s: using the %s backend", envOr("BACKEND", BackendAuto), b.Backend())
	return b, ctx
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestIntegrationBrokenPatch: a patch that does not apply fails the build
// with the patch, the file and the hunk named, before anything compiles.
func TestIntegrationBrokenPatch(t *testing.T) {
	b, ctx := integration(t)
	dir, _ := filepath.Abs("../pgsrc/testdata/pg18-broken")
	_, err := b.Build(ctx, Spec{Major: 18, Variant: Patched, PatchDir: dir, Name: "broken"})
	var pe *pgsrc.PatchError
	if !errors.As(err, &pe) {
		t.Fatalf("build with a broken patch: %v, want a patch error", err)
	}
	t.Logf("the build failed as it must:\n%v", err)
	for _, s := range []string{"0001-broken-second-hunk.patch", "src/bin/pg_basebackup/pg_basebackup.c", "hunk #2", "@@ -2348,6 +2349,7 @@"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not name %q", s)
		}
	}
}

// TestIntegrationTrivialPatch builds 18 with a trivial patch series and
// checks that the patch is in the built tree.
func TestIntegrationTrivialPatch(t *testing.T) {
	b, ctx := integration(t)
	dir, _ := filepath.Abs("../pgsrc/testdata/pg18-trivial")
	r, err := b.Build(ctx, Spec{Major: 18, Variant: Patched, PatchDir: dir, Name: "trivial"})
	if err != nil {
		t.Fatal(err)
	}
	logResult(t, r)
	out, err := b.Exec(ctx, r, "grep", "-c", "pgbb harness test: a trivial patch", "src/bin/pg_basebackup/pg_basebackup.c")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("patched line not in the build tree: %q, %v", out, err)
	}
	if out, err = b.Exec(ctx, r, r.BinDir+"/pg_basebackup", "--version"); err != nil || !strings.Contains(out, "18.6") {
		t.Fatalf("pg_basebackup --version: %q, %v", out, err)
	}
	t.Logf("pg_basebackup --version: %s", strings.TrimSpace(out))
}

// TestIntegrationPatchedTAP builds each version patched and runs the
// upstream pg_basebackup and pg_verifybackup TAP suites on it.
func TestIntegrationPatchedTAP(t *testing.T) {
	b, ctx := integration(t)
	for _, rel := range pgsrc.Releases() {
		t.Run(fmt.Sprintf("pg%d", rel.Major), func(t *testing.T) {
			b.log = &logger{testLog{t}}
			r, err := b.Build(ctx, Spec{Major: rel.Major, Variant: Patched})
			if err != nil {
				t.Fatal(err)
			}
			logResult(t, r)
			if r.Version != rel.Version {
				t.Errorf("built %s, want %s", r.Version, rel.Version)
			}
			log, err := b.RunTAP(ctx, r, testLog{t})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d lines of TAP output, %d suites passed", r.Spec, strings.Count(log, "\n"), strings.Count(log, "All tests successful."))
		})
	}
}

func logResult(t *testing.T, r Result) {
	t.Helper()
	t.Logf("%s %s via the %s backend (cached %t): image %q, bin %s, build tree %s, user %s",
		r.Spec, r.Version, r.Backend, r.Cached, r.Image, r.BinDir, r.BuildTree, r.User)
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
