package trial

import (
	"fmt"
	"strings"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/scenario"
)

// InvProgressNotFatal: a progress rewrite of the status file that fails
// (the status-dir-readonly plan made its directory read-only while the run
// received data) never ends the run. Whatever the run does then, it gets
// to its last step (the last phase its log shows before the final status:
// the manifest rename, or the sync, the WAL wait, the end of data) unless
// it exits 0; and when the directory was writable again before the end of
// the data, the final status can be written, so the run completes: exit 0
// and a status file that says completed. A directory read-only to the end
// leaves the final status unwritten: the run then keeps the backup, warns
// (status.WarnCompleteUnsaid) and exits 0 over a status file that does
// not say completed (exit0-is-completed accepts that, with the warning
// only). A status file that cannot be written never fails the run, so an
// error exit is a violation.
const InvProgressNotFatal = "progress-rewrite-not-fatal"

// lastStep is the last phase a run of the scenario logs before it writes
// its final status.
func lastStep(s scenario.Scenario) fault.Phase {
	switch {
	case s.Manifest && !s.Stdout:
		return fault.PhaseRename
	case s.Sync && !s.Stdout:
		return fault.PhaseSync
	case s.WALMethod == "stream":
		return fault.PhaseWALWait
	}
	return fault.PhaseEndOfData
}

// reached says whether the timeline has phase p or a later one (before
// the exit).
func reached(tl fault.Timeline, p fault.Phase) bool {
	for q := p; q < fault.PhaseExited; q++ {
		if _, ok := tl.At(q); ok {
			return true
		}
	}
	return false
}

// checkStatusDir returns the InvProgressNotFatal violations of r.
func checkStatusDir(r *Record, s scenario.Scenario) []Violation {
	o := r.Fault.StatusDir
	if o == nil || !r.Fault.Fired || !r.StatusFile {
		return nil
	}
	var vs []Violation
	add := func(format string, args ...any) {
		vs = append(vs, Violation{Invariant: InvProgressNotFatal, Message: fmt.Sprintf(format, args...)})
	}
	last := lastStep(s)
	log := strings.ReplaceAll(strings.TrimSpace(r.LogTail), "\n", " | ")
	switch {
	case r.ErrorExit():
		add("with the status file's directory read-only from phase %q, pg_basebackup exited %s, but a status file that cannot be written never fails the run: %s",
			o.Phase, exitText(r.Exit), log)
	case !r.Exited0() && !reached(r.Timeline, last):
		add("with the status file's directory read-only from phase %q, pg_basebackup ended (exit %s) before its last step (%s): %s",
			o.Phase, exitText(r.Exit), last, log)
	}
	if p, ok := fault.ParsePhase(o.RestoredPhase); o.Restored && ok && p < fault.PhaseEndOfData && (!r.Exited0() || !r.StatusCompleted()) {
		add("the status file's directory was writable again in phase %s, before the end of the data, but the run did not complete: exit %s, status %s",
			o.RestoredPhase, exitText(r.Exit), describe(r.Status))
	}
	return vs
}
