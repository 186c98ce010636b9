package status

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// leaseClock is the reader's clock as observeLease uses it; tests fake it.
// Its zero value is the system's clock.
type leaseClock struct {
	// now returns the time. time.Now carries a monotonic reading, so the
	// difference of two of its values is elapsed time, whatever the wall
	// clock does meanwhile.
	now func() time.Time
	// after waits like time.After.
	after func(time.Duration) <-chan time.Time
}

// orSystem returns c with the system's clock for what c leaves nil.
func (c leaseClock) orSystem() leaseClock {
	if c.now == nil {
		c.now = time.Now
	}
	if c.after == nil {
		c.after = time.After
	}
	return c
}

// observeLease watches the status file at path on the reader's own
// monotonic clock: it reads the file, then again every poll, until lease
// has passed since the first read. If every read returned the same bytes
// as the first, the last one at least lease after it, the run has shown no
// sign of life for the lease, and it returns a sentence saying so: the run
// is over. A changed file is an error saying that the run rewrote it and is
// alive; a file that disappears or cannot be read is an error saying that
// the run cannot be judged; so is ctx ending first, or a read failing the
// first time.
//
// The times the file records (UPDATE TIME, on the writer's clock) play no
// part: a writer whose clock lags or runs ahead is judged only by whether
// it rewrites the file. A live run rewrites it with a new UPDATE TIME at
// least every UPDATE INTERVAL while receiving data or waiting for WAL, so
// a change between two reads is not missed; a change undone before the
// next read would take a writer whose clock went back.
//
// read reads the file (readLimited if nil); clock is the reader's clock
// (the system's if zero). lease and poll must be positive; the waits are
// poll long, the last one shortened to end at the lease.
func observeLease(ctx context.Context, path string, lease, poll time.Duration, read func(string) ([]byte, error), clock leaseClock) (string, error) {
	if lease <= 0 || poll <= 0 {
		return "", fmt.Errorf("observe the lease of %s: lease %s and poll %s must be positive", path, lease, poll)
	}
	if read == nil {
		read = readLimited
	}
	clock = clock.orSystem()
	first, err := read(path)
	if err != nil {
		return "", fmt.Errorf("observe the lease: read the status file: %w", err)
	}
	start := clock.now()
	for reads := 1; ; reads++ {
		if wait := min(poll, lease-clock.now().Sub(start)); wait > 0 {
			select {
			case <-ctx.Done():
			case <-clock.after(wait):
			}
		}
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("observe the lease of %s: gave up %s into it: %w", path, clock.now().Sub(start), err)
		}
		at := clock.now().Sub(start)
		data, err := read(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("the status file %s disappeared %s after it was first read: the run cannot be judged", path, at)
		case err != nil:
			return "", fmt.Errorf("read the status file %s after %s of the lease: %w: the run cannot be judged", path, at, err)
		case !bytes.Equal(data, first):
			return "", fmt.Errorf("the status file %s changed %s after it was first read (within the lease of %s, on this machine's clock): the run rewrote it and is alive", path, at, lease)
		case at >= lease:
			return fmt.Sprintf("its status file stayed byte for byte the same for %s on this machine's clock (%d reads, the lease is %s): no sign of life within the lease",
				at, reads+1, lease), nil
		}
	}
}
