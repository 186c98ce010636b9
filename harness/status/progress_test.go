package status

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// progressing is an "in progress" file with progress lines in phase, with
// the given update interval, updated 10 s after START TIME.
func progressing(phase Phase, interval int) *Status {
	s := withProgress(inProgressStatus(true))
	s.Phase, s.UpdateInterval = phase, interval
	return s
}

// at returns a clock stuck at t.
func at(t time.Time) Option { return WithClock(func() time.Time { return t }) }

func TestStallAge(t *testing.T) {
	for _, tc := range []struct {
		interval int
		want     time.Duration
	}{{0, 0}, {1, MinStallAge}, {3, MinStallAge}, {4, 12 * time.Second}, {5, 15 * time.Second}, {60, 3 * time.Minute}} {
		if got := StallAge(tc.interval); got != tc.want {
			t.Errorf("StallAge(%d) = %v, want %v", tc.interval, got, tc.want)
		}
	}
}

// TestStalled: which live runs are stalled (exit 5), and that a stall is
// never concluded where the file is legitimately silent, nor for a run that
// is dead or elsewhere.
func TestStalled(t *testing.T) {
	stopped := machine(WriterName, -time.Second)
	info := stopped.procs[1234]
	info.Stopped = true
	stopped.procs[1234] = info
	live := machine(WriterName, -time.Second)
	dead := fakeProcesses{host: "db1"}
	elsewhere := fakeProcesses{host: "db2", procs: live.procs}
	noUpdateTime := progressing(PhaseReceiving, 5)
	noUpdateTime.UpdateTime = time.Time{}

	tests := []struct {
		name    string
		status  *Status
		procs   fakeProcesses
		age     time.Duration
		verdict Verdict
		note    string // in Progress.Note
	}{
		{"receiving, fresh", progressing(PhaseReceiving, 5), live, 5 * time.Second, Running, ""},
		{"receiving, 3 intervals", progressing(PhaseReceiving, 5), live, 15 * time.Second, Running, ""},
		{"receiving, over 3 intervals", progressing(PhaseReceiving, 5), live, 16 * time.Second, Stalled, "no update for 16s"},
		{"interval 1, under the minimum", progressing(PhaseReceiving, 1), live, 9 * time.Second, Running, ""},
		{"interval 1, over the minimum", progressing(PhaseReceiving, 1), live, 11 * time.Second, Stalled, "no update"},
		{"waiting for WAL, old", progressing(PhaseWaitingForWAL, 5), live, time.Hour, Stalled, "no update"},
		{"syncing, old", progressing(PhaseSyncing, 5), live, time.Hour, Running, "not rewritten while syncing"},
		{"starting, old", progressing(PhaseStarting, 5), live, time.Hour, Running, "checkpoint"},
		{"finishing, old", progressing(PhaseFinishing, 5), live, time.Hour, Running, "not rewritten while finishing"},
		{"interval 0, old", progressing(PhaseReceiving, 0), live, time.Hour, Running, "UPDATE INTERVAL is 0"},
		{"update time unknown", noUpdateTime, live, time.Hour, Running, "UPDATE TIME is unknown"},
		{"no progress lines", inProgressStatus(true), live, time.Hour, Running, ""},
		{"stopped, fresh", progressing(PhaseReceiving, 5), stopped, 0, Stalled, "stopped"},
		{"stopped, syncing", progressing(PhaseSyncing, 5), stopped, 0, Stalled, "stopped"},
		{"stopped, interval 0", progressing(PhaseReceiving, 0), stopped, 0, Stalled, "stopped"},
		{"dead, old", progressing(PhaseReceiving, 5), dead, time.Hour, NotComplete, ""},
		{"elsewhere, old", progressing(PhaseReceiving, 5), elsewhere, time.Hour, NotComplete, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, statusName, tc.status.Encode())
			now := tc.status.UpdateTime.Add(tc.age)
			if tc.status.UpdateTime.IsZero() {
				now = tc.status.StartTime.Add(tc.age)
			}
			r := Check(filepath.Join(dir, statusName), WithProcesses(tc.procs), at(now))
			if r.Verdict != tc.verdict || r.ExitCode != tc.verdict.ExitCode() {
				t.Fatalf("verdict %v exit %d, want %v (%s)", r.Verdict, r.ExitCode, tc.verdict, r.Summary)
			}
			if tc.verdict == Stalled && (r.ExitCode != 5 || r.Final || !r.Progress.Stalled) {
				t.Errorf("stalled: exit %d final %v %+v", r.ExitCode, r.Final, r.Progress)
			}
			if tc.note != "" && (r.Progress == nil || !strings.Contains(r.Progress.Note, tc.note)) {
				t.Errorf("note %+v, want %q", r.Progress, tc.note)
			}
			if tc.verdict == Stalled && !strings.Contains(r.Summary, "stalled") {
				t.Errorf("summary %q", r.Summary)
			}
		})
	}
}

// TestProgressEstimate: percentage, rate since START TIME and time left.
func TestProgressEstimate(t *testing.T) {
	s := progressing(PhaseReceiving, 5)
	s.UpdateTime = s.StartTime.Add(100 * time.Second)
	s.BytesReceived, s.BytesTotal = 1000_000, 4000_000
	dir := t.TempDir()
	writeFile(t, dir, statusName, s.Encode())
	r := Check(filepath.Join(dir, statusName), WithProcesses(machine(WriterName, -time.Second)), at(s.UpdateTime.Add(2*time.Second)))
	p := r.Progress
	if r.Verdict != Running || p == nil {
		t.Fatalf("%v %+v", r.Verdict, p)
	}
	if p.Percent == nil || *p.Percent != 25 {
		t.Errorf("percent %v", p.Percent)
	}
	if p.Rate != 10_000 || p.RateFrom != "start" {
		t.Errorf("rate %v from %q", p.Rate, p.RateFrom)
	}
	// 3 MB at 10 kB/s is 300 s after UPDATE TIME, 298 s from now.
	if p.Remaining == nil || time.Duration(*p.Remaining) != 298*time.Second {
		t.Errorf("remaining %v", p.Remaining)
	}
	if time.Duration(p.Age) != 2*time.Second || time.Duration(p.StallAge) != 15*time.Second {
		t.Errorf("age %v stall age %v", p.Age, p.StallAge)
	}

	// No total: no percentage, no time left; more than the estimate: no
	// time left; not receiving: none either.
	for _, mod := range []func(*Status){
		func(s *Status) { s.BytesTotal = 0 },
		func(s *Status) { s.BytesReceived = 5000_000 },
		func(s *Status) { s.Phase = PhaseWaitingForWAL },
	} {
		u := *s
		mod(&u)
		writeFile(t, dir, statusName, u.Encode())
		r := Check(filepath.Join(dir, statusName), WithProcesses(machine(WriterName, -time.Second)), at(u.UpdateTime))
		if r.Progress.Remaining != nil {
			t.Errorf("%+v: remaining %v", u, *r.Progress.Remaining)
		}
		if (u.BytesTotal == 0) != (r.Progress.Percent == nil) {
			t.Errorf("total %d, percent %v", u.BytesTotal, r.Progress.Percent)
		}
	}

	// A dead run gets no estimate.
	writeFile(t, dir, statusName, s.Encode())
	if r := Check(filepath.Join(dir, statusName), WithProcesses(fakeProcesses{host: "db1"}), at(s.UpdateTime)); r.Progress.Remaining != nil {
		t.Errorf("dead run: remaining %v", *r.Progress.Remaining)
	}
}

// TestWaitRateFromSamples: while waiting, the rate is measured between the
// first file Wait saw and the latest.
func TestWaitRateFromSamples(t *testing.T) {
	s := progressing(PhaseReceiving, 5)
	s.UpdateTime = s.StartTime.Add(100 * time.Second)
	s.BytesReceived, s.BytesTotal = 1000, 1000_000
	// 10 s later, 500 kB more: 50 kB/s (from START TIME it would be
	// about 4.5 kB/s).
	u := *s
	u.UpdateTime = s.UpdateTime.Add(10 * time.Second)
	u.BytesReceived = s.BytesReceived + 500_000

	dir := t.TempDir()
	writeFile(t, dir, statusName, s.Encode())
	var checks atomic.Int32
	procs := countingProcesses{machine(WriterName, -time.Second), &checks}
	go func() {
		for checks.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
		tmp := writeFile(t, dir, filepath.Base(TempPath(statusName, u.PID)), u.Encode())
		if err := os.Rename(tmp, filepath.Join(dir, statusName)); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := Wait(ctx, filepath.Join(dir, statusName), time.Millisecond, WithProcesses(procs), at(u.UpdateTime.Add(time.Second)))
	if !r.TimedOut || r.Verdict != Running {
		t.Fatalf("%v timed out %v: %s", r.Verdict, r.TimedOut, r.Summary)
	}
	if p := r.Progress; p == nil || p.RateFrom != "samples" || p.Rate != 50_000 {
		t.Fatalf("progress %+v", p)
	}
	// A single check measures from START TIME.
	if p := Check(filepath.Join(dir, statusName), WithProcesses(procs), at(u.UpdateTime)).Progress; p.RateFrom != "start" || p.Rate != float64(u.BytesReceived)/110 {
		t.Fatalf("single check: %+v", p)
	}
}

// TestPhasesForward: the writer's promises over successive samples.
func TestPhasesForward(t *testing.T) {
	p := func(phase Phase, bytes uint64, sec int) *Status {
		s := progressing(phase, 5)
		s.BytesReceived = bytes
		s.UpdateTime = s.StartTime.Add(time.Duration(sec) * time.Second)
		s.Encode()
		return s
	}
	done := withProgress(completedStatus())
	done.Encode()
	failed := withProgress(failedStatus(true))
	failed.Encode()
	other := p(PhaseReceiving, 10, 3)
	other.PID = 99
	old := inProgressStatus(true)

	tests := []struct {
		name    string
		samples []*Status
		err     string
	}{
		{"empty", nil, ""},
		{"all phases", []*Status{p(PhaseStarting, 0, 0), p(PhaseReceiving, 0, 1), p(PhaseReceiving, 10, 6), p(PhaseWaitingForWAL, 20, 7), p(PhaseSyncing, 20, 8), p(PhaseFinishing, 20, 30), done}, ""},
		{"gaps and unreadable moments", []*Status{nil, p(PhaseStarting, 0, 0), nil, p(PhaseSyncing, 20, 8), done, nil, done}, ""},
		{"failed", []*Status{p(PhaseReceiving, 5, 1), failed}, ""},
		{"same phase twice", []*Status{p(PhaseReceiving, 5, 1), p(PhaseReceiving, 5, 1)}, ""},
		{"phase back", []*Status{p(PhaseSyncing, 5, 1), p(PhaseReceiving, 5, 2)}, `phase went back from "syncing" (sample 0) to "receiving data" (sample 1)`},
		{"bytes back", []*Status{p(PhaseReceiving, 5, 1), p(PhaseReceiving, 4, 2)}, "bytes received went back"},
		{"time back", []*Status{p(PhaseReceiving, 5, 2), p(PhaseReceiving, 5, 1)}, "update time went back"},
		{"completed, then in progress", []*Status{done, p(PhaseFinishing, 5, 1)}, "already completed"},
		{"completed, then failed", []*Status{done, failed}, "already completed"},
		{"failed, then completed", []*Status{failed, done}, "already failed"},
		{"another run", []*Status{p(PhaseReceiving, 5, 1), other}, "another run"},
		{"progress lines lost", []*Status{p(PhaseReceiving, 5, 1), old}, "no progress lines"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := PhasesForward(tc.samples)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

// TestPhasesForwardRealFiles: the real files of one run in order.
func TestPhasesForwardRealFiles(t *testing.T) {
	var samples []*Status
	for _, name := range []string{"in_progress_killed"} {
		s, err := ReadFile(filepath.Join("testdata", "real", "0003", name))
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, s)
	}
	if err := PhasesForward(samples); err != nil {
		t.Fatal(err)
	}
}
