package build

import (
	"context"
	"path/filepath"

	"github.com/pgbb/pgbb/harness/filelock"
)

// lockBuild takes an exclusive lock named name in <cache>/locks, so that
// two harness processes do not make the same build (or base image) in the
// same directories at once. It waits, logging once, until the lock is free
// or ctx ends. The returned function releases it.
func (b *Builder) lockBuild(ctx context.Context, name string) (func(), error) {
	path := filepath.Join(b.cfg.cacheDir, "locks", name+".lock")
	return filelock.Acquire(ctx, path, 0, func() {
		b.log.logf("waiting for another harness process building %s (lock %s)", name, path)
	})
}
