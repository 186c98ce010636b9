// Package buildtest gives integration tests of several packages the
// builder they share.
package buildtest

import (
	"context"
	"os"
	"testing"

	"github.com/pgbb/pgbb/harness/build"
)

// Container returns a builder forced to the container backend, with the
// environment's options (build.FromEnv) and opts, for a test that needs
// it. BACKEND=native leaves the test out; BACKEND=container (what .ci/run
// sets) makes a missing Docker engine fail it; otherwise (auto) a missing
// engine skips it.
func Container(ctx context.Context, t testing.TB, opts ...build.Option) *build.Builder {
	t.Helper()
	backend := os.Getenv("BACKEND")
	if backend == build.BackendNative {
		t.Skip("BACKEND=native: the container backend is not wanted")
	}
	opts = append(append(build.FromEnv(), build.WithBackend(build.BackendContainer)), opts...)
	b, err := build.New(ctx, opts...)
	if err != nil {
		if backend == build.BackendContainer {
			t.Fatalf("BACKEND=container but no container backend: %v", err)
		}
		t.Skipf("no Docker engine, the container backend is not available: %v", err)
	}
	return b
}
