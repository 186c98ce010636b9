package status

import (
	"fmt"
	"time"
)

// startMatch is how the start of a live pg_basebackup that has the
// recorded pid compares with the writer's, as the status file records it.
type startMatch int

const (
	// startFits: it may be the writer: it started at START TICKS or,
	// where those cannot be compared, no later than START TIME (+ the
	// slack).
	startFits startMatch = iota
	// startOther: it is not the writer: it started, in clock ticks since
	// boot, at another tick than START TICKS.
	startOther
	// startLater: it started after START TIME by the wall clock as it is
	// now. A wall clock set forward since the run started shows the
	// same (the boot time, /proc/stat btime, moves with it), so this
	// proves nothing.
	startLater
)

// ticksDecide says whether the START TICKS of s and a process's start in
// ticks, as it saw them itself if own, can be compared: both known, on
// the same clock.
func ticksDecide(s *Status, ticks uint64, own bool) bool {
	return s.StartTicks != 0 && ticks != 0 && own
}

// compareStart compares a live pg_basebackup that started at ticks (since
// boot, as it saw them itself if own) and at start (on the wall clock as
// it is now) with the writer of s, on the boot's clock where it can.
func compareStart(s *Status, ticks uint64, own bool, start time.Time, slack time.Duration) startMatch {
	switch {
	case ticksDecide(s, ticks, own) && ticks == s.StartTicks:
		return startFits
	case ticksDecide(s, ticks, own):
		return startOther
	case !s.StartTime.IsZero() && start.After(s.StartTime.Add(slack)):
		return startLater
	}
	return startFits
}

// startedHow says when a process that may be the writer of s started, and
// how that compares with what s records.
func startedHow(s *Status, ticks uint64, own bool, start time.Time) string {
	if ticksDecide(s, ticks, own) {
		return fmt.Sprintf("started at tick %d since boot, as START TICKS records", ticks)
	}
	return fmt.Sprintf("started at %s, by the recorded start %s", start.UTC().Format(time.RFC3339), s.StartTime.Format(time.RFC3339))
}

// startedLater says that a process started after the recorded start by
// the wall clock, and why that cannot tell whether it is the writer.
func startedLater(s *Status, ticks uint64, own bool, start time.Time) string {
	why := "the file records no START TICKS, which would tell"
	switch {
	case s.StartTicks == 0:
	case ticks == 0:
		why = "its start in clock ticks since boot is unknown"
	case !own:
		why = "its start in clock ticks cannot be compared with START TICKS from here (another time namespace, or one this reader may not see)"
	}
	return fmt.Sprintf("started at %s by this machine's clock, after the recorded start %s; the wall clock may have been set forward since, so whether it is the writer cannot be told (%s)",
		start.UTC().Format(time.RFC3339), s.StartTime.Format(time.RFC3339), why)
}

// judgeWriterStart judges the live pg_basebackup info, which has the
// recorded pid of s, by when it started: it fills in l (alive, or
// uncertain) and returns "", or returns what the pid is when that proves
// it is another process.
func judgeWriterStart(l *Liveness, s *Status, info ProcessInfo, slack time.Duration) string {
	switch compareStart(s, info.StartTicks, info.TicksAsOwn, info.StartTime, slack) {
	case startOther:
		return fmt.Sprintf("pid %d is a %s started at tick %d since boot, not at tick %d (START TICKS)", s.PID, WriterName, info.StartTicks, s.StartTicks)
	case startLater:
		l.Certain = false
		l.Reason = fmt.Sprintf("pid %d is a %s %s", s.PID, WriterName, startedLater(s, info.StartTicks, info.TicksAsOwn, info.StartTime))
		return ""
	}
	if !ticksDecide(s, info.StartTicks, info.TicksAsOwn) && s.StartTime.IsZero() {
		l.Certain = false
		l.Reason = fmt.Sprintf("pid %d is %s, but the file records no start time to tell whether it is the writer", s.PID, WriterName)
		return ""
	}
	l.Alive = true
	l.Reason = fmt.Sprintf("pid %d is %s, %s", s.PID, WriterName, startedHow(s, info.StartTicks, info.TicksAsOwn, info.StartTime))
	return ""
}
