package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkBuild measures cold and warm builds of PostgreSQL 18 stock for
// each backend: cold starts from an empty cache directory and, for the
// container backend, with none of the project's images (so it includes
// making the base image); warm is the same build again, reused. It is
// destructive (it removes the project's images) and slow, so it runs only
// with PGBB_BENCH=1: `make bench-build`. BENCH_BACKENDS limits the
// backends (default "container native"). For the container backend it
// then builds patched 18, which reuses the stock build's first layer.
func BenchmarkBuild(b *testing.B) {
	if os.Getenv("PGBB_BENCH") == "" {
		b.Skip("set PGBB_BENCH=1 (make bench-build does): removes the project's images and builds from scratch")
	}
	root, err := FindRepoRoot(".")
	if err != nil {
		b.Fatal(err)
	}
	backends := []string{BackendContainer, BackendNative}
	if v := os.Getenv("BENCH_BACKENDS"); v != "" {
		backends = strings.Fields(strings.ReplaceAll(v, ",", " "))
	}
	ctx := context.Background()
	for _, backend := range backends {
		cache := filepath.Join(root, ".cache", "bench-"+backend)
		spec := Spec{Major: 18, Variant: Stock}
		b.Run(backend, func(b *testing.B) {
			if err := removeRootfs(cache); err != nil {
				b.Fatal(err)
			}
			if backend == BackendContainer {
				if _, err := RemoveImages(ctx, benchLog{b}); err != nil {
					b.Fatal(err)
				}
			}
			bl, err := New(ctx, WithRepoRoot(root), WithCacheDir(cache), WithBackend(backend), WithLog(benchLog{b}))
			if err != nil {
				b.Fatalf("backend %s unavailable: %v", backend, err)
			}
			b.ResetTimer()
			start := time.Now()
			r, err := bl.Build(ctx, spec)
			if err != nil || r.Cached {
				b.Fatalf("cold build: cached %t, %v", r.Cached, err)
			}
			cold := time.Since(start)
			start = time.Now()
			r, err = bl.Build(ctx, spec)
			if err != nil || !r.Cached {
				b.Fatalf("warm build: cached %t, %v", r.Cached, err)
			}
			warm := time.Since(start)
			b.ReportMetric(cold.Seconds(), "cold-s")
			b.ReportMetric(warm.Seconds(), "warm-s")
			b.Logf("%s backend: cold build %s, warm build %s", backend, cold.Round(time.Second), warm.Round(time.Millisecond))
			if backend == BackendContainer {
				// A second variant of the release reuses the release's
				// layer and builds only what the patches change.
				start = time.Now()
				r, err = bl.Build(ctx, Spec{Major: 18, Variant: Patched})
				if err != nil || r.Cached {
					b.Fatalf("patched build after stock: cached %t, %v", r.Cached, err)
				}
				variant := time.Since(start)
				b.ReportMetric(variant.Seconds(), "patched-after-stock-s")
				b.Logf("%s backend: patched 18 after stock 18 (the release's layer reused) %s", backend, variant.Round(time.Second))
			}
			b.StopTimer()
		})
	}
}

type benchLog struct{ b *testing.B }

func (l benchLog) Write(p []byte) (int, error) {
	l.b.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
