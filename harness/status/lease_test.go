package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock is a reader's clock whose waits take no time: after(d) moves
// it d forward at once.
type fakeClock struct{ t time.Time }

func (f *fakeClock) clock() leaseClock { return leaseClock{now: f.now, after: f.after} }
func (f *fakeClock) now() time.Time    { return f.t }
func (f *fakeClock) after(d time.Duration) <-chan time.Time {
	f.t = f.t.Add(d)
	c := make(chan time.Time, 1)
	c <- f.t
	return c
}

// laggingWriter is a live run whose clock is lag behind the reader's: it
// rewrites its status file every interval of the reader's time, with an
// UPDATE TIME of its own clock and more bytes, until it goes silent at
// silentAt (never if zero).
type laggingWriter struct {
	clock    *fakeClock
	start    time.Time // the reader's time when the run started
	lag      time.Duration
	interval time.Duration
	silentAt time.Time
	reads    int
}

// read returns the file as the writer last wrote it.
func (w *laggingWriter) read(string) ([]byte, error) {
	w.reads++
	now := w.clock.now()
	if !w.silentAt.IsZero() && now.After(w.silentAt) {
		now = w.silentAt
	}
	rewrites := now.Sub(w.start) / w.interval
	s := withProgress(inProgressStatus(true))
	s.StartTime = w.start.Add(-w.lag).UTC().Truncate(time.Second)
	s.UpdateTime = s.StartTime.Add(rewrites * w.interval)
	s.BytesReceived = 8192 * (uint64(rewrites) + 1)
	return s.Encode(), nil
}

// TestObserveLeaseLaggingWriter: a live run whose clock lags 5 hours
// writes UPDATE TIMEs far older than the lease of an hour, which the age
// of the file (the writer's clock against the reader's) would call over.
// Watched on the reader's clock, it is alive as long as it rewrites its
// file, every 5 s or every 50 minutes, however often it is observed; once
// silent for the lease, it is over.
func TestObserveLeaseLaggingWriter(t *testing.T) {
	const lease = time.Hour
	for _, interval := range []time.Duration{5 * time.Second, 50 * time.Minute} {
		t.Run(interval.String(), func(t *testing.T) {
			c := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
			w := &laggingWriter{clock: c, start: c.t, lag: 5 * time.Hour, interval: interval}
			s, _ := Parse(must(w.read("")))
			if age := c.now().Sub(s.UpdateTime); age < lease {
				t.Fatalf("UPDATE TIME is %s old, want older than the lease", age)
			}
			for i := 0; i < 10; i++ {
				over, err := observeLease(context.Background(), "backup_status", lease, time.Second, w.read, c.clock())
				if err == nil || !strings.Contains(err.Error(), "the run rewrote it and is alive") {
					t.Fatalf("observation %d at %s: over %q, error %v", i, c.now().Sub(w.start), over, err)
				}
			}

			w.silentAt = c.now()
			from := c.now()
			over, err := observeLease(context.Background(), "backup_status", lease, time.Second, w.read, c.clock())
			if err != nil || !strings.Contains(over, "byte for byte the same for 1h0m0s") || c.now().Sub(from) != lease {
				t.Fatalf("silent writer: over %q, error %v, after %s", over, err, c.now().Sub(from))
			}
		})
	}
}

func must(data []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return data
}

// TestObserveLeaseUnchanged: an unchanged file is over once the lease has
// passed, after reads every poll, the last one shortened to the lease.
func TestObserveLeaseUnchanged(t *testing.T) {
	c := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	reads := 0
	read := func(string) ([]byte, error) { reads++; return []byte("same"), nil }
	over, err := observeLease(context.Background(), "f", time.Hour+30*time.Second, time.Minute, read, c.clock())
	if err != nil || reads != 62 || !strings.Contains(over, "for 1h0m30s") || !strings.Contains(over, "62 reads") {
		t.Fatalf("over %q, error %v, %d reads", over, err, reads)
	}
}

// TestObserveLeaseCannotJudge: a file that disappears or cannot be read
// during the lease, or the first time, cannot be judged; neither can
// anything with a lease or poll that is not positive.
func TestObserveLeaseCannotJudge(t *testing.T) {
	boom := errors.New("boom")
	for name, tc := range map[string]struct {
		failAt      int
		err         error
		lease, poll time.Duration
		want        string
	}{
		"disappears":         {3, fs.ErrNotExist, time.Hour, time.Minute, "disappeared 2m0s after"},
		"unreadable":         {3, boom, time.Hour, time.Minute, "boom: the run cannot be judged"},
		"unreadable at once": {1, boom, time.Hour, time.Minute, "read the status file: boom"},
		"no lease":           {0, nil, 0, time.Minute, "must be positive"},
		"no poll":            {0, nil, time.Hour, 0, "must be positive"},
	} {
		t.Run(name, func(t *testing.T) {
			c := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
			reads := 0
			read := func(string) ([]byte, error) {
				if reads++; reads == tc.failAt {
					return nil, tc.err
				}
				return []byte("same"), nil
			}
			over, err := observeLease(context.Background(), "f", tc.lease, tc.poll, read, c.clock())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("over %q, error %v, want %q", over, err, tc.want)
			}
		})
	}
}

// TestObserveLeaseCancel: a cancelled context ends the observation at
// once, with an error.
func TestObserveLeaseCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, []byte("same"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	over, err := observeLease(ctx, path, time.Hour, time.Hour, nil, leaseClock{})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 10*time.Second {
		t.Fatalf("over %q, error %v after %s", over, err, time.Since(start))
	}
	if over, err := observeLease(ctx, path, time.Hour, time.Minute, nil, leaseClock{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: over %q, error %v", over, err)
	}
}

// TestObserveLeaseRealClock: on the system's clock, a real file left alone
// is over after a lease of 50 ms, not before; one rewritten every
// millisecond (by rename, as pg_basebackup does) is alive.
func TestObserveLeaseRealClock(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, FileName, []byte("version 0\n"))
	start := time.Now()
	over, err := observeLease(context.Background(), path, 50*time.Millisecond, 5*time.Millisecond, nil, leaseClock{})
	if err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("unchanged: over %q, error %v after %s", over, err, time.Since(start))
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			tmp := TempPath(path, 1234)
			if err := os.WriteFile(tmp, fmt.Appendf(nil, "version %d\n", i), 0o644); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	over, err = observeLease(context.Background(), path, 10*time.Second, 5*time.Millisecond, nil, leaseClock{})
	if err == nil || !strings.Contains(err.Error(), "is alive") {
		t.Fatalf("rewritten: over %q, error %v", over, err)
	}
}
