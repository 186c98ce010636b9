// Package filelock gives harness processes exclusive use of a shared
// directory (a build tree, the project's apt state) through flock(2) on a
// lock file. The lock dies with the process, so a killed harness never
// leaves a stale lock behind.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Acquire takes an exclusive lock on path, creating the file and its
// directory when missing. While another process holds it, Acquire calls
// waiting once and polls every poll (a second when zero) until the lock is
// free or ctx ends. The returned function releases the lock.
func Acquire(ctx context.Context, path string, poll time.Duration, waiting func()) (release func(), err error) {
	if poll <= 0 {
		poll = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	notified := false
	for {
		err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { fh.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			fh.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !notified && waiting != nil {
			waiting()
			notified = true
		}
		select {
		case <-ctx.Done():
			fh.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(poll):
		}
	}
}
