package status

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeTicks is when a process of the fake /proc that started at start
// started, in clock ticks (100 a second) since the fake boot.
func fakeTicks(start time.Time) uint64 {
	return uint64(start.Sub(time.Unix(fakeBoot, 0)) / (10 * time.Millisecond))
}

// withStartTicks is the file of s with a START TICKS line where the writer
// of patch 0004 puts it (after PID NAMESPACE, before LABEL), sealed.
func withStartTicks(s *Status, ticks uint64) []byte {
	var out []string
	for _, l := range bodyLines(s.Encode()) {
		if strings.HasPrefix(l, keyLabel+": ") {
			out = append(out, fmt.Sprintf("START TICKS: %d", ticks))
		}
		out = append(out, l)
	}
	return join(out)
}

// stepClock sets the wall clock of the fake /proc forward by d: /proc/stat
// btime moves with it, the start of every process in ticks does not.
func (p fakeProc) stepClock(d time.Duration) {
	writeFile(p.t, p.root, "stat", []byte(fmt.Sprintf("cpu 1 2 3\nbtime %d\n", fakeBoot+int64(d/time.Second))))
}

// TestClockSteppedForward: a wall clock set forward an hour under a live
// run moves the start time computed from btime an hour later. With START
// TICKS the run is compared on the boot's clock and stays alive; without,
// "started after the recorded start" may be the step, so the run is not
// called dead (it used to be: a reused pid, final). A pid whose start in
// ticks is not START TICKS is another process, whatever the wall clock
// says.
func TestClockSteppedForward(t *testing.T) {
	s := inProgressStatus(true) // pid 1234 on db1
	started := s.StartTime.Add(-time.Second)
	ticks := fakeTicks(started)
	tests := []struct {
		name   string
		file   []byte
		step   time.Duration
		want   Verdict
		final  bool
		reason string
	}{
		{"START TICKS, clock stepped", withStartTicks(s, ticks), time.Hour, Running, false, "START TICKS"},
		{"START TICKS, no step", withStartTicks(s, ticks), 0, Running, false, "START TICKS"},
		{"no START TICKS, clock stepped", s.Encode(), time.Hour, NotComplete, false, "set forward"},
		{"no START TICKS, no step", s.Encode(), 0, Running, false, "started at"},
		{"START TICKS of another process", withStartTicks(s, ticks+1), 0, NotComplete, true, "pid was reused"},
		{"START TICKS of another process, clock stepped", withStartTicks(s, ticks-500), time.Hour, NotComplete, true, "pid was reused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeProc(t, hostNS)
			p.add(1234, WriterName, "S", started, "1234")
			p.stepClock(tc.step)
			parsed, err := Parse(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			v, final, l := Decide(parsed, hostnameProcfs{Procfs{Root: p.root}, "db1"}, DefaultStartSlack)
			if v != tc.want || final != tc.final || !strings.Contains(l.Reason, tc.reason) {
				t.Errorf("%v final %v (%s), want %v final %v, reason with %q", v, final, l.Reason, tc.want, tc.final, tc.reason)
			}
		})
	}
}

// TestClockSteppedForwardNested: the same from the host's PID namespace,
// for a writer in a nested one, with or without PID NAMESPACE recorded:
// the nested pg_basebackup that has the recorded pid there is compared on
// the boot's clock, and one that started later by a wall clock set
// forward is never taken for proof that the run died.
func TestClockSteppedForwardNested(t *testing.T) {
	s := inProgressStatus(true) // pid 1234 on db1
	started := s.StartTime.Add(-time.Second)
	ticks := fakeTicks(started)
	recorded := *s
	recorded.PIDNamespace = otherNS
	tests := []struct {
		name   string
		file   []byte
		want   Verdict
		final  bool
		reason string
	}{
		{"no PID NAMESPACE, START TICKS", withStartTicks(s, ticks), NotComplete, false, "another PID namespace has pid 1234"},
		{"no PID NAMESPACE, no START TICKS", s.Encode(), NotComplete, false, "another PID namespace has pid 1234"},
		{"no PID NAMESPACE, START TICKS of another process", withStartTicks(s, ticks+7), NotComplete, true, "is gone"},
		{"PID NAMESPACE, START TICKS", withStartTicks(&recorded, ticks), Running, false, "as START TICKS records"},
		{"PID NAMESPACE, no START TICKS", recorded.Encode(), NotComplete, false, "set forward"},
		{"PID NAMESPACE, START TICKS of another process", withStartTicks(&recorded, ticks+7), NotComplete, true, "no pg_basebackup has pid 1234"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeProc(t, hostNS)
			p.add(5678, WriterName, "S", started, "5678\t1234")
			p.setNamespace(5678, otherNS)
			p.stepClock(time.Hour)
			parsed, err := Parse(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			v, final, l := Decide(parsed, hostnameProcfs{Procfs{Root: p.root}, "db1"}, DefaultStartSlack)
			if v != tc.want || final != tc.final || !strings.Contains(l.Reason, tc.reason) {
				t.Errorf("%v final %v (%s), want %v final %v, reason with %q", v, final, l.Reason, tc.want, tc.final, tc.reason)
			}
		})
	}
}

// TestRemoveClockSteppedForward: the case of the review: a live run in
// phase starting, nothing open yet in its directory, the wall clock set
// forward; --remove-if-dead --dry-run used to plan the removal.
func TestRemoveClockSteppedForward(t *testing.T) {
	l := makeLayout(t)
	s := l.status()
	s.Phase = PhaseStarting
	started := s.StartTime.Add(-time.Second)
	for name, file := range map[string][]byte{
		"START TICKS":    withStartTicks(s, fakeTicks(started)),
		"no START TICKS": s.Encode(),
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(l.file, file, 0o644); err != nil {
				t.Fatal(err)
			}
			p := newFakeProc(t, hostNS)
			p.add(1234, WriterName, "S", started, "1234")
			p.stepClock(time.Hour)
			before := tree(t, l.root)
			rm := RemoveIfDead(t.Context(), l.file, true, WithProcesses(hostnameProcfs{Procfs{Root: p.root}, "db1"}))
			if rm.ExitCode != ExitRefused {
				t.Fatalf("exit %d, over %q, steps %v: a live run planned for removal", rm.ExitCode, rm.Over, rm.Steps)
			}
			if name == "START TICKS" && !strings.Contains(rm.Refused, "the run is alive") {
				t.Errorf("refused %q, want alive", rm.Refused)
			}
			if got := tree(t, l.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
				t.Errorf("the tree changed")
			}
			if _, err := os.Stat(filepath.Dir(l.file)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
