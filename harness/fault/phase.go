package fault

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Phase is a step of a pg_basebackup run, as its --verbose log shows it.
type Phase int

// The phases in the order a run passes them.
const (
	// PhaseStart: the process was started.
	PhaseStart Phase = iota
	// PhaseCheckpoint: waiting for the server's checkpoint.
	PhaseCheckpoint
	// PhaseReceiving: receiving data files (after the start WAL location).
	PhaseReceiving
	// PhaseEndOfData: every data file and the manifest were received.
	PhaseEndOfData
	// PhaseWALWait: waiting for the WAL streaming child to finish.
	PhaseWALWait
	// PhaseSync: syncing the backup to disk.
	PhaseSync
	// PhaseRename: renaming backup_manifest.tmp into place.
	PhaseRename
	// PhaseCompleted: "base backup completed" was logged.
	PhaseCompleted
	// PhaseExited: the process exited.
	PhaseExited
	numPhases
)

var phaseNames = [...]string{"start", "checkpoint", "receiving", "end-of-data", "wal-wait", "sync", "rename", "completed", "exited"}

// String returns the phase's name.
func (p Phase) String() string {
	if p < 0 || p >= numPhases {
		return "unknown"
	}
	return phaseNames[p]
}

// Phases lists every phase in order.
func Phases() []Phase {
	ps := make([]Phase, numPhases)
	for i := range ps {
		ps[i] = Phase(i)
	}
	return ps
}

// ParsePhase returns the phase of a name.
func ParsePhase(s string) (Phase, bool) {
	for i, n := range phaseNames {
		if n == s {
			return Phase(i), true
		}
	}
	return 0, false
}

// logMarkers map pg_basebackup --verbose messages to the phase they start.
var logMarkers = []struct {
	text  string
	phase Phase
}{
	{"initiating base backup", PhaseCheckpoint},
	{"write-ahead log start point", PhaseReceiving},
	{"write-ahead log end point", PhaseEndOfData},
	{"waiting for background process to finish streaming", PhaseWALWait},
	{"syncing data to disk", PhaseSync},
	{"renaming backup_manifest.tmp to backup_manifest", PhaseRename},
	{"base backup completed", PhaseCompleted},
}

// PhaseOfLine returns the phase a log line starts, if any.
func PhaseOfLine(line string) (Phase, bool) {
	for _, m := range logMarkers {
		if strings.Contains(line, m.text) {
			return m.phase, true
		}
	}
	return 0, false
}

// Tracker follows the phases of one run from its log lines. It is safe for
// concurrent use.
type Tracker struct {
	mu      sync.Mutex
	start   time.Time
	at      [numPhases]time.Duration
	seen    [numPhases]bool
	current Phase
	changed chan struct{}
	// lines are the log lines seen (at most maxLines), for WaitLine.
	lines []string
}

// maxLines bounds the log lines a Tracker keeps.
const maxLines = 10000

// NewTracker starts tracking a run that started at start.
func NewTracker(start time.Time) *Tracker {
	t := &Tracker{start: start, changed: make(chan struct{})}
	t.seen[PhaseStart] = true
	return t
}

// Observe records a phase reached now.
func (t *Tracker) Observe(p Phase) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[p] {
		return
	}
	t.seen[p] = true
	t.at[p] = time.Since(t.start)
	if p > t.current {
		t.current = p
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// Line records a log line, and the phase it starts, if any.
func (t *Tracker) Line(line string) {
	if p, ok := PhaseOfLine(line); ok {
		t.Observe(p)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) < maxLines {
		t.lines = append(t.lines, line)
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// WaitLine blocks until a log line containing text was seen, ctx ends, or
// done is closed; it reports whether such a line was seen.
func (t *Tracker) WaitLine(ctx context.Context, text string, done <-chan struct{}) bool {
	return t.WaitLineFunc(ctx, func(line string) bool { return strings.Contains(line, text) }, done)
}

// WaitLineFunc blocks until a log line that match accepts was seen, ctx
// ends, or done is closed; it reports whether such a line was seen. match
// is called with the tracker's lock held.
func (t *Tracker) WaitLineFunc(ctx context.Context, match func(line string) bool, done <-chan struct{}) bool {
	seen := 0
	for {
		t.mu.Lock()
		for ; seen < len(t.lines); seen++ {
			if match(t.lines[seen]) {
				t.mu.Unlock()
				return true
			}
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			// The last lines may still be on their way through the pipe.
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Current returns the latest phase reached.
func (t *Tracker) Current() Phase {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}

// Elapsed returns the time since the run started.
func (t *Tracker) Elapsed() time.Duration { return time.Since(t.start) }

// Start returns when the run started.
func (t *Tracker) Start() time.Time { return t.start }

// Wait blocks until phase p (or a later one) is reached, ctx ends, or done
// is closed; it reports whether p itself was reached.
func (t *Tracker) Wait(ctx context.Context, p Phase, done <-chan struct{}) bool {
	for {
		t.mu.Lock()
		if t.seen[p] {
			t.mu.Unlock()
			return true
		}
		if t.current > p {
			t.mu.Unlock()
			return false
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			t.mu.Lock()
			ok := t.seen[p]
			t.mu.Unlock()
			return ok
		case <-ctx.Done():
			return false
		}
	}
}

// Timeline returns when each phase was reached since the start; phases not
// reached are absent.
func (t *Tracker) Timeline() Timeline {
	t.mu.Lock()
	defer t.mu.Unlock()
	tl := Timeline{}
	for i := range t.at {
		if t.seen[i] {
			tl[Phase(i).String()] = t.at[i]
		}
	}
	return tl
}

// Timeline maps phase names to the time since the start of the run at
// which they were reached.
type Timeline map[string]time.Duration

// At returns when phase p was reached.
func (tl Timeline) At(p Phase) (time.Duration, bool) {
	d, ok := tl[p.String()]
	return d, ok
}

// Total is the run's duration (until exit; else the latest phase).
func (tl Timeline) Total() time.Duration {
	var max time.Duration
	for _, d := range tl {
		if d > max {
			max = d
		}
	}
	return max
}

// FinishStart is when the finishing part of a run began: the end of data,
// or, when the run logs no such line (-X none), the first later phase.
func (tl Timeline) FinishStart() (time.Duration, bool) {
	for _, p := range []Phase{PhaseEndOfData, PhaseWALWait, PhaseSync, PhaseRename, PhaseCompleted} {
		if d, ok := tl.At(p); ok {
			return d, true
		}
	}
	return 0, false
}
