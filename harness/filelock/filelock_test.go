package filelock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestAcquireExcludesAndReleases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.lock")
	release, err := Acquire(context.Background(), path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	// flock locks belong to the open file description, so a second Acquire
	// in the same process contends like another process would.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	waited := 0
	_, err = Acquire(ctx, path, 10*time.Millisecond, func() { waited++ })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Acquire while held: err = %v, want deadline exceeded", err)
	}
	if waited != 1 {
		t.Fatalf("waiting called %d times, want 1", waited)
	}

	release()
	release2, err := Acquire(context.Background(), path, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	release2()
}
