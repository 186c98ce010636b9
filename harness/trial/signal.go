package trial

import (
	"fmt"

	"github.com/pgbb/pgbb/harness/scenario"
)

// InvSignalFailsRun: SIGTERM or SIGINT sent to the pg_basebackup process
// alone, not its group (as Go's exec.CommandContext, systemd's
// KillMode=process or `kill PID` do), ends the run like an error. A status
// file it leaves says "failed" with a REASON naming the signal (or
// "completed", when the signal came after that was written); no process of
// its group (the WAL streaming child) is left once it has exited; and
// without --no-clean the directories it was to create (the target, a
// --waldir) are gone. A run the signal ended before it wrote any status
// file (its handler not yet installed) leaves none.
const InvSignalFailsRun = "signal-fails-run"

// The same holds for the plans that send SIGTERM to pg_basebackup alone
// (term-backup: with a wrapper, its pg_basebackup child; the wrapper sees
// its child end by the signal) and to the whole process group
// (term-group).

// signalOfPlan names the signal a plan sends to pg_basebackup alone (or,
// with a wrapper, to the wrapper or its pg_basebackup child alone) or to
// the run's process group, "" for other plans.
func signalOfPlan(plan string) string {
	switch plan {
	case scenario.PlanTerm, scenario.PlanTermBackup, scenario.PlanTermGroup:
		return "SIGTERM"
	case scenario.PlanInt:
		return "SIGINT"
	}
	return ""
}

// checkSignal returns the InvSignalFailsRun violations of r.
func checkSignal(r *Record, s scenario.Scenario) []Violation {
	sig := signalOfPlan(r.Plan)
	if sig == "" || !r.Fault.Fired {
		return nil
	}
	var vs []Violation
	add := func(format string, args ...any) {
		vs = append(vs, Violation{Invariant: InvSignalFailsRun, Message: fmt.Sprintf(format, args...)})
	}
	if r.Orphans.Alive {
		add("after %s to pg_basebackup alone, processes of its group (the WAL streaming child) were still alive once it had exited: pids %v", sig, r.Orphans.PIDs)
	}
	switch {
	case !r.Status.Present || !r.Status.Valid || r.Status.State == "completed":
		// No file: ended before it wrote one. An invalid file breaks
		// status-not-torn; completed: the signal came too late.
		return vs
	case r.Status.State != "failed":
		add("after %s to pg_basebackup (exit %s) the status file says %q, not \"failed\"", sig, exitText(r.Exit), r.Status.State)
	case !containsWord(r.Status.Reason, sig):
		add("after %s the status file says failed, but its REASON %q does not name the signal", sig, r.Status.Reason)
	}
	if !s.NoClean && len(r.CreatedLeft) > 0 {
		add("after %s, without --no-clean, the directories the run created are still there: %v", sig, r.CreatedLeft)
	}
	return vs
}

// exitText describes how pg_basebackup ended.
func exitText(e Exit) string {
	switch {
	case e.Hung:
		return "hung"
	case e.Signal != "":
		return "killed by " + e.Signal
	}
	return fmt.Sprint(e.Code)
}

// containsWord says whether s has word as a whole word.
func containsWord(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i:i+len(word)] != word {
			continue
		}
		before := i == 0 || !isWordByte(s[i-1])
		after := i+len(word) == len(s) || !isWordByte(s[i+len(word)])
		if before && after {
			return true
		}
	}
	return false
}

func isWordByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z'
}
