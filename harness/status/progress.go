package status

import (
	"fmt"
	"time"
)

// StallIntervals is K: a live run whose UPDATE TIME is more than K update
// intervals old (and at least MinStallAge) is stalled, in the phases in which
// pg_basebackup rewrites the file every interval.
const StallIntervals = 3

// MinStallAge is the least age of UPDATE TIME that counts as a stall,
// whatever the interval: UPDATE TIME has one-second resolution, and the
// writer only rewrites the file when data arrives.
const MinStallAge = 10 * time.Second

// StallAge is the age of UPDATE TIME after which a live run rewriting its
// status file every interval seconds is stalled: StallIntervals intervals,
// at least MinStallAge. It is 0 for interval 0 (no periodic rewrites: age
// proves nothing).
func StallAge(interval int) time.Duration {
	if interval <= 0 {
		return 0
	}
	return max(time.Duration(StallIntervals*interval)*time.Second, MinStallAge)
}

// Heartbeat says whether pg_basebackup rewrites the status file every
// UPDATE INTERVAL in phase p. It does while data arrives and while it waits
// for the WAL streaming process; not while starting (the server's
// checkpoint can take minutes), syncing (one long call) or finishing.
func (p Phase) Heartbeat() bool {
	return p == PhaseReceiving || p == PhaseWaitingForWAL
}

// Progress is what an "in progress" file with progress lines says about how
// far the run got, and how fast: see Check.
type Progress struct {
	// Phase, UpdateTime, BytesReceived and BytesTotal are from the file.
	Phase         Phase     `json:"phase"`
	UpdateTime    time.Time `json:"update_time,omitzero"`
	BytesReceived uint64    `json:"bytes_received"`
	BytesTotal    uint64    `json:"bytes_total,omitzero"`
	// UpdateInterval is the UPDATE INTERVAL, in seconds.
	UpdateInterval int `json:"update_interval"`
	// Percent is 100 * BytesReceived / BytesTotal; nil without a total.
	Percent *float64 `json:"percent,omitempty"`
	// Rate is the bytes received per second, 0 if unknown; RateFrom says
	// how it was measured: "start" (BYTES RECEIVED over the time from
	// START TIME to UPDATE TIME, which includes the server's checkpoint)
	// or "samples" (between the first and the latest file seen by Wait).
	Rate     float64 `json:"rate_bytes_per_second,omitzero"`
	RateFrom string  `json:"rate_from,omitempty"`
	// Remaining estimates the time until the last data file arrives (not
	// counting the wait for WAL and the final sync), from now; nil if it
	// cannot be estimated (no total, no rate, not receiving data, or
	// more received than the server's estimate).
	Remaining *Seconds `json:"remaining_seconds,omitempty"`
	// Age is how long ago UpdateTime was, when checked.
	Age Seconds `json:"age_seconds"`
	// StallAge is the Age beyond which a live run is stalled; 0 if age
	// cannot tell (see Heartbeat).
	StallAge Seconds `json:"stall_age_seconds,omitzero"`
	// Stalled says the run is alive but stalled: stopped, or its file is
	// older than StallAge. Only set for a live run on this host.
	Stalled bool `json:"stalled"`
	// Note says why the run is stalled, or why age cannot tell.
	Note string `json:"note,omitempty"`
}

// Seconds is a duration written in JSON as seconds.
type Seconds time.Duration

// MarshalJSON writes d as a number of seconds.
func (d Seconds) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%.3f", time.Duration(d).Seconds()), nil
}

// String formats d rounded to the second.
func (d Seconds) String() string { return time.Duration(d).Round(time.Second).String() }

// sample is one "in progress" file seen by Wait, to measure the rate.
type sample struct {
	pid   int
	start time.Time
	at    time.Time
	bytes uint64
}

// sameRun says whether s was written by the run of the sample.
func (a *sample) sameRun(s *Status) bool {
	return a != nil && a.pid == s.PID && a.start.Equal(s.StartTime)
}

// progress describes the progress lines of s, checked at now; first is the
// first sample of the same run seen by Wait, if any. proc is the writing
// process (nil if not examined); alive says it runs, dead that it is known
// not to (then no time left is estimated).
func progress(s *Status, now time.Time, first *sample, proc *ProcessInfo, alive, dead bool) *Progress {
	if s.State != StateInProgress || !s.Progress {
		return nil
	}
	p := &Progress{
		Phase:          s.Phase,
		UpdateTime:     s.UpdateTime,
		BytesReceived:  s.BytesReceived,
		BytesTotal:     s.BytesTotal,
		UpdateInterval: s.UpdateInterval,
	}
	if s.BytesTotal > 0 {
		pct := 100 * float64(s.BytesReceived) / float64(s.BytesTotal)
		p.Percent = &pct
	}
	if !s.UpdateTime.IsZero() {
		p.Age = Seconds(max(now.Sub(s.UpdateTime), 0))
	}

	// The rate: between two samples of Wait when it has them, else from
	// START TIME (the first version of the file, 0 bytes) to UPDATE TIME.
	switch {
	case first.sameRun(s) && s.UpdateTime.Sub(first.at) >= time.Second && s.BytesReceived > first.bytes:
		p.Rate = float64(s.BytesReceived-first.bytes) / s.UpdateTime.Sub(first.at).Seconds()
		p.RateFrom = "samples"
	case !s.StartTime.IsZero() && s.UpdateTime.Sub(s.StartTime) >= time.Second && s.BytesReceived > 0:
		p.Rate = float64(s.BytesReceived) / s.UpdateTime.Sub(s.StartTime).Seconds()
		p.RateFrom = "start"
	}
	if !dead && s.Phase == PhaseReceiving && p.Rate > 0 && s.BytesTotal > s.BytesReceived {
		left := time.Duration(float64(s.BytesTotal-s.BytesReceived) / p.Rate * float64(time.Second))
		r := Seconds(max(left-time.Duration(p.Age), 0))
		p.Remaining = &r
	}

	// Stalled: only said of a live process.
	if s.Phase.Heartbeat() && s.UpdateInterval > 0 && !s.UpdateTime.IsZero() {
		p.StallAge = Seconds(StallAge(s.UpdateInterval))
	}
	if !alive {
		return p
	}
	switch {
	case proc != nil && proc.Stopped:
		p.Stalled = true
		p.Note = fmt.Sprintf("pid %d is stopped (SIGSTOP, job control or a debugger): it makes no progress until continued", s.PID)
	case s.UpdateInterval == 0:
		p.Note = "UPDATE INTERVAL is 0 (no periodic updates, only at phase changes): a stall cannot be told from the age of the file"
	case s.UpdateTime.IsZero():
		p.Note = "UPDATE TIME is unknown: a stall cannot be told from the age of the file"
	case !s.Phase.Heartbeat():
		p.Note = fmt.Sprintf("the file is not rewritten while %s (%s): a stall cannot be told from its age", s.Phase, silentWhy(s.Phase))
	case time.Duration(p.Age) > time.Duration(p.StallAge):
		p.Stalled = true
		p.Note = fmt.Sprintf("no update for %s, more than %d intervals of %ds (%s): the run is stuck (a stuck server, network or disk)",
			p.Age, StallIntervals, s.UpdateInterval, p.StallAge)
	}
	return p
}

// silentWhy says why a phase has no periodic rewrites.
func silentWhy(p Phase) string {
	switch p {
	case PhaseStarting:
		return "waiting for the server's checkpoint"
	case PhaseSyncing:
		return "one long call that syncs the backup"
	case PhaseFinishing:
		return "renaming the manifest and writing the final status"
	}
	return "no periodic updates"
}

// PhasesForward checks successive samples of one status file (oldest first;
// nil for a moment without a readable file) for what the writer promises:
// every sample is of the same run (PID, HOST and START TIME); while in
// progress the phase only moves forward (starting, receiving data, waiting
// for WAL, syncing, finishing), and the bytes received and the update time
// never go back; once completed or failed, the file never changes again.
// It returns nil if they hold, else an error naming the first sample that
// breaks one.
func PhasesForward(samples []*Status) error {
	var prev *Status
	prevAt := 0
	for i, s := range samples {
		if s == nil {
			continue
		}
		if prev == nil {
			prev, prevAt = s, i
			continue
		}
		switch {
		case s.PID != prev.PID || s.Host != prev.Host || !s.StartTime.Equal(prev.StartTime):
			return fmt.Errorf("sample %d is of another run (pid %d on %q started %s) than sample %d (pid %d on %q started %s)",
				i, s.PID, s.Host, formatTime(s.StartTime), prevAt, prev.PID, prev.Host, formatTime(prev.StartTime))
		case prev.State != StateInProgress:
			if s.State != prev.State || s.Checksum != prev.Checksum {
				return fmt.Errorf("sample %d (%s) differs from sample %d, which was already %s", i, s.State, prevAt, prev.State)
			}
		case s.State != StateInProgress:
			// in progress to completed or failed: forward
		case prev.Progress && !s.Progress:
			return fmt.Errorf("sample %d has no progress lines, sample %d had", i, prevAt)
		case s.Phase.Order() < prev.Phase.Order():
			return fmt.Errorf("phase went back from %q (sample %d) to %q (sample %d)", prev.Phase, prevAt, s.Phase, i)
		case s.BytesReceived < prev.BytesReceived:
			return fmt.Errorf("bytes received went back from %d (sample %d) to %d (sample %d)", prev.BytesReceived, prevAt, s.BytesReceived, i)
		case s.UpdateTime.Before(prev.UpdateTime):
			return fmt.Errorf("update time went back from %s (sample %d) to %s (sample %d)",
				formatTime(prev.UpdateTime), prevAt, formatTime(s.UpdateTime), i)
		}
		prev, prevAt = s, i
	}
	return nil
}
