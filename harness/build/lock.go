package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockBuild takes an exclusive lock named name in <cache>/locks, so that
// two harness processes do not make the same build (or base image) in the
// same directories at once. It waits, logging once, until the lock is free
// or ctx ends. The returned function releases it.
func (b *Builder) lockBuild(ctx context.Context, name string) (func(), error) {
	dir := filepath.Join(b.cfg.cacheDir, "locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".lock")
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	logged := false
	for {
		err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { fh.Close() }, nil
		}
		if err != syscall.EWOULDBLOCK {
			fh.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !logged {
			b.log.logf("waiting for another harness process building %s (lock %s)", name, path)
			logged = true
		}
		select {
		case <-ctx.Done():
			fh.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
