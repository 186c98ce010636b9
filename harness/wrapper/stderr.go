package wrapper

import (
	"bufio"
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/pgbb/pgbb/harness/status"
)

// Observed is what pg_basebackup's standard error said about the run
// (it runs with --verbose): the phase, the WAL start and end points, the
// progress of -P, the last error, and any error during its final sync.
type Observed struct {
	Phase status.Phase
	// Started says StartLSN and Timeline are known.
	Started  bool
	StartLSN status.LSN
	Timeline uint32
	// Ended says EndLSN is known.
	Ended  bool
	EndLSN status.LSN
	// BytesReceived and BytesTotal are from -P's progress lines.
	BytesReceived, BytesTotal uint64
	// LastError is the text of the last error (or fatal) message.
	LastError string
	// SyncError is the first error message printed once the final sync
	// began: stock pg_basebackup logs some sync errors (a file it could
	// not open) and still exits 0.
	SyncError string
}

// Watcher reads pg_basebackup's standard error, copies it unchanged to
// Out, and keeps what it says in an Observed.
type Watcher struct {
	// Out receives every byte read.
	Out io.Writer
	mu  sync.Mutex
	obs Observed
}

// NewWatcher returns a Watcher copying to out, in phase "starting".
func NewWatcher(out io.Writer) *Watcher {
	return &Watcher{Out: out, obs: Observed{Phase: status.PhaseStarting}}
}

// Observed returns what was seen so far.
func (w *Watcher) Observed() Observed {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.obs
}

// Run reads r until EOF, line by line (a line ends in '\n' or, as -P's
// progress lines at a terminal do, '\r').
func (w *Watcher) Run(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(splitLines)
	for sc.Scan() {
		raw := sc.Bytes()
		_, _ = w.Out.Write(raw)
		w.line(string(bytes.TrimRight(raw, "\r\n")))
	}
}

// splitLines is bufio.ScanLines that also ends a line at '\r' and keeps
// the terminator, so that the copy is byte for byte.
func splitLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

var (
	startRE    = regexp.MustCompile(`write-ahead log start point: ([0-9A-F]+/[0-9A-F]+) on timeline ([0-9]+)`)
	endRE      = regexp.MustCompile(`write-ahead log end point: ([0-9A-F]+/[0-9A-F]+)`)
	progressRE = regexp.MustCompile(`([0-9]+)/([0-9]+) kB \(`)
	errorRE    = regexp.MustCompile(`^[^ ]*: (?:error|fatal): (.*)$`)
)

// line takes one line of pg_basebackup's standard error into account.
func (w *Watcher) line(l string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := &w.obs
	syncing := o.Phase.Order() >= status.PhaseSyncing.Order()
	switch {
	case startRE.MatchString(l):
		m := startRE.FindStringSubmatch(l)
		lsn, ok1 := parseStockLSN(m[1])
		tli, err := strconv.ParseUint(m[2], 10, 32)
		if ok1 && err == nil && tli > 0 {
			o.Started, o.StartLSN, o.Timeline = true, lsn, uint32(tli)
		}
		o.advance(status.PhaseReceiving)
	case strings.Contains(l, "checkpoint completed"):
		o.advance(status.PhaseReceiving)
	case endRE.MatchString(l):
		if lsn, ok := parseStockLSN(endRE.FindStringSubmatch(l)[1]); ok {
			o.Ended, o.EndLSN = true, lsn
		}
		o.advance(status.PhaseWaitingForWAL)
	case strings.Contains(l, "waiting for background process to finish streaming"):
		o.advance(status.PhaseWaitingForWAL)
	case strings.Contains(l, "syncing data to disk"):
		o.advance(status.PhaseSyncing)
	case strings.Contains(l, "renaming backup_manifest.tmp to backup_manifest"),
		strings.Contains(l, "base backup completed"):
		o.advance(status.PhaseFinishing)
	case progressRE.MatchString(l):
		m := progressRE.FindStringSubmatch(l)
		done, err1 := strconv.ParseUint(m[1], 10, 64)
		total, err2 := strconv.ParseUint(m[2], 10, 64)
		if err1 == nil && err2 == nil {
			o.BytesReceived, o.BytesTotal = max(o.BytesReceived, done*1024), total*1024
		}
	}
	msg, isErr := errorText(l)
	if isErr {
		o.LastError = msg
	}
	if syncing && o.SyncError == "" && (isErr || strings.Contains(l, "could not")) {
		o.SyncError = strings.TrimSpace(msg)
	}
}

// advance moves to phase p unless the run is past it already.
func (o *Observed) advance(p status.Phase) {
	if p.Order() > o.Phase.Order() {
		o.Phase = p
	}
}

// errorText returns the message of an error or fatal line, or the whole
// line if it is neither (isErr false).
func errorText(l string) (msg string, isErr bool) {
	if m := errorRE.FindStringSubmatch(l); m != nil {
		return m[1], true
	}
	return l, false
}

// parseStockLSN reads a WAL location as pg_basebackup prints it, %X/%X
// (or %X/%08X, as later releases print it).
func parseStockLSN(v string) (status.LSN, bool) {
	hi, lo, ok := strings.Cut(v, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return status.LSN(h<<32 | l), true
}
