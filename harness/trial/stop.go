package trial

import (
	"fmt"
	"strings"
)

// Invariants of the stop plan: judged from what the plan saw
// while pg_basebackup was stopped (fault.StopObservation).
const (
	// InvStoppedStalled: while stopped, the reader says stalled (exit
	// 5), never dead, running or completed, unless the status file
	// already said completed or failed before the stop.
	InvStoppedStalled = "stopped-is-stalled"
	// InvStoppedNotRemoved: while stopped, --remove-if-dead refuses and
	// leaves the target as it was.
	InvStoppedNotRemoved = "stopped-not-removed"
	// InvContinuedCompletes: after SIGCONT the run completes: exit 0 and
	// a completed status file.
	InvContinuedCompletes = "continued-completes"
	// InvPhasesForward: the status file samples of the run keep the
	// writer's promises (status.PhasesForward).
	InvPhasesForward = "phases-forward"
	// InvOtherNamespaceUndecided: while stopped, a reader in a PID
	// namespace of its own (a container sharing the host name) cannot see
	// the run's pid and must say it cannot tell (not final), never that
	// the run died; its --remove-if-dead must refuse.
	InvOtherNamespaceUndecided = "other-namespace-undecided"
	// InvOtherUserAgrees: while stopped, pgbb-status run as another user
	// of the owner's group (an orchestrator's account) reads the status
	// file and says what the owner's reader said.
	InvOtherUserAgrees = "other-user-agrees"
)

// stopAndCleanupInvariants lists the invariants of the stop plan and of the
// clean-up after a run that did not complete (cleanup.go).
func stopAndCleanupInvariants() []string {
	return []string{InvStoppedStalled, InvStoppedNotRemoved, InvOtherNamespaceUndecided, InvOtherUserAgrees, InvContinuedCompletes, InvPhasesForward,
		InvRemoveExact, InvRetrySucceeds, InvRerunNotCompleted}
}

// wrapperModeUnknown says that the other user's reader was refused a
// wrapper's status file that the wrapper wrote before it could know the
// backup's file mode: pgbb-run cannot ask the server whether the source
// allows group access; it makes the file group-readable once it sees
// that pg_basebackup made the backup's directory so (which pg_basebackup
// does only after it connected), and its first version (phase "starting",
// written before pg_basebackup started) is the owner's alone. A stop that
// lands before the wrapper's next version (it looks every 200 ms) leaves
// that one in place. Never for the patched build, whose first version is
// rewritten as soon as it connects.
func wrapperModeUnknown(r *Record, phase, readerErr string) bool {
	return r.Wrapped && phase == "starting" && strings.Contains(readerErr, "open status file") && strings.Contains(readerErr, "permission denied")
}

// checkStop returns the stop plan's invariants r breaks.
func checkStop(r *Record) []Violation {
	o := r.Fault.Stop
	if o == nil {
		return nil
	}
	var vs []Violation
	add := func(inv, msg string) { vs = append(vs, Violation{Invariant: inv, Message: msg}) }
	if o.PhaseOrder != "" {
		add(InvPhasesForward, "status file samples: "+o.PhaseOrder)
	}
	if !r.Fault.Fired {
		return vs
	}
	final := o.State == "completed" || o.State == "failed"
	switch {
	case !o.Stopped:
		add(InvStoppedStalled, "the process never showed as stopped in /proc; the reader said "+o.Verdict+": "+o.Summary)
	case o.Verdict != "stalled" && !final:
		add(InvStoppedStalled, "while pg_basebackup was stopped the reader said "+o.Verdict+": "+o.Summary)
	}
	if o.RemoveExit != 1 || !o.TargetIntact {
		add(InvStoppedNotRemoved, fmt.Sprintf("while pg_basebackup was stopped --remove-if-dead did not refuse cleanly: exit %d, refused %q, target intact %t",
			o.RemoveExit, o.RemoveRefused, o.TargetIntact))
	}
	if ns := o.OtherNamespace; ns != nil && !final {
		switch {
		case ns.Error != "":
			add(InvOtherNamespaceUndecided, "the reader in another PID namespace could not be run: "+ns.Error)
		case ns.Final || ns.Verdict == "completed":
			add(InvOtherNamespaceUndecided, fmt.Sprintf("while pg_basebackup was stopped (alive) a reader in another PID namespace said %s, final %t (exit %d): %s",
				ns.Verdict, ns.Final, ns.ExitCode, ns.Summary))
		case ns.RemoveExit != 1:
			add(InvOtherNamespaceUndecided, fmt.Sprintf("while pg_basebackup was stopped (alive) --remove-if-dead --dry-run in another PID namespace exited %d, not 1 (refused)",
				ns.RemoveExit))
		}
	}
	if u := o.OtherUser; u != nil && !final {
		switch {
		case wrapperModeUnknown(r, o.Phase, u.Error):
			// Skipped for the wrapper by design (wrapperModeUnknown).
		case u.Error != "":
			add(InvOtherUserAgrees, "the reader as another user could not be run: "+u.Error)
		case u.Verdict != o.Verdict:
			add(InvOtherUserAgrees, fmt.Sprintf("while pg_basebackup was stopped, pgbb-status as %s said %s (exit %d: %s), the owner's reader %s",
				u.User, u.Verdict, u.ExitCode, u.Summary, o.Verdict))
		}
	}
	switch {
	case !o.Continued:
		add(InvContinuedCompletes, "SIGCONT was not seen to continue the process")
	case o.State != "failed" && (!r.Exited0() || !r.StatusCompleted()):
		add(InvContinuedCompletes, fmt.Sprintf("after SIGCONT the run did not complete: exit %d %s, status %s",
			r.Exit.Code, r.Exit.Signal, describe(r.Status)))
	}
	return vs
}
