package trial

import (
	"fmt"
	"strings"

	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// Invariant names.
const (
	// InvCompletedVerified: a status file that says completed is a backup
	// the oracle finds complete.
	InvCompletedVerified = "completed-is-complete"
	// InvExit0Completed: exit 0 leaves a status file that says completed,
	// unless the run warned that the backup is complete but the status
	// file could not say so (status.WarnCompleteUnsaid): that writer then
	// leaves the file absent or not completed, and exit 0 is the signal.
	InvExit0Completed = "exit0-is-completed"
	// InvErrorNotCompleted: an error exit never leaves completed.
	InvErrorNotCompleted = "error-exit-not-completed"
	// InvNotTorn: the status file is never torn or damaged (a torn file
	// that says completed is the worst case, named in the message).
	InvNotTorn = "status-not-torn"
	// InvFirstVersionDurable: a power cut after the run's first version
	// of the status file returned never leaves no status file (at a
	// reused status path an earlier run's, maybe "completed", would be
	// back), with --no-sync too.
	InvFirstVersionDurable = "first-version-durable"
	// InvDurable: a completed status says DURABLE: yes exactly when the
	// run synced every file of the backup: not with --no-sync, not with
	// -D - (nothing written to standard output is synced); a file of mode
	// 0400 in a plain backup is synced too (through a read-only
	// descriptor).
	InvDurable = "durable-matches-sync"
	// InvStatusFaultHarmless: an I/O error on the status file itself (the
	// status-file-io-error plan: a write, the fsync of its temporary
	// file, its rename or its directory's fsync) never fails the run nor
	// harms the backup: the run exits 0 and the oracle accepts the
	// backup, judged after the power cut as on every disk plan. What the
	// status file says then is exit0-is-completed's (completed, or not
	// with the writer's warning that it could not say so).
	InvStatusFaultHarmless = "status-fault-harmless"
	// InvOrphanNotRemoved: while processes of the run's group outlive the
	// process the trial started (a stock WAL child after its parent's
	// SIGKILL, pg_basebackup after its wrapper's), --remove-if-dead
	// --dry-run on the status file refuses: it would never remove a run
	// that is still writing.
	InvOrphanNotRemoved = "orphan-not-removed"
)

// Invariants lists every invariant.
func Invariants() []string {
	return append([]string{InvCompletedVerified, InvExit0Completed, InvErrorNotCompleted, InvNotTorn, InvFirstVersionDurable, InvDurable, InvFieldsTrue,
		InvSignalFailsRun, InvProgressNotFatal, InvStatusFaultHarmless, InvOrphanNotRemoved},
		stopAndCleanupInvariants()...)
}

// Violation is one broken invariant.
type Violation struct {
	Invariant string `json:"invariant"`
	Message   string `json:"message"`
}

// Check returns the invariants r breaks. The status file invariants apply
// only to builds that write one.
func Check(r *Record, s scenario.Scenario) []Violation {
	var vs []Violation
	add := func(inv, format string, args ...any) {
		vs = append(vs, Violation{Invariant: inv, Message: fmt.Sprintf(format, args...)})
	}
	if !r.StatusFile {
		return nil
	}
	if r.StatusCompleted() {
		switch {
		case r.Oracle == nil:
			add(InvCompletedVerified, "status says completed but the oracle did not run")
		case !r.Oracle.Complete:
			add(InvCompletedVerified, "status says completed but the oracle rejects the backup: %s", r.Oracle.Reason)
		}
		want, why := "yes", "sync on"
		if synced, whyNot := s.Synced(); !synced {
			want, why = "no", whyNot
		}
		if r.Status.Durable != want {
			add(InvDurable, "status says completed with DURABLE: %q, want %q (%s)", r.Status.Durable, want, why)
		}
	}
	// With --no-sync on the power-loss layer, only the first version of
	// the status file is durable: after the power cut that a disk trial
	// always ends with, a run that exited 0 leaves "in progress"
	// (first-version-durable judges that it is there).
	noSyncOnDisk := r.Disk != nil && !s.Sync
	if r.Exited0() && !r.StatusCompleted() && !r.StatusUnsaid && !noSyncOnDisk {
		add(InvExit0Completed, "pg_basebackup exited 0 but the status file says %s", describe(r.Status))
	}
	if r.ErrorExit() && r.StatusCompleted() {
		add(InvErrorNotCompleted, "pg_basebackup exited %d but the status file says completed", r.Exit.Code)
	}
	if r.Status.Present && !r.Status.Valid {
		if r.Status.ClaimsCompleted {
			add(InvNotTorn, "torn status file reads \"STATUS: completed\": %s", r.Status.Error)
		} else {
			add(InvNotTorn, "status file is invalid: %s", r.Status.Error)
		}
	}
	if len(r.WrongFields) > 0 {
		add(InvFieldsTrue, "the status file says what is not so: %s", strings.Join(r.WrongFields, "; "))
	}
	// SIGTERM or SIGINT to pg_basebackup alone (signal.go).
	vs = append(vs, checkSignal(r, s)...)
	// The status file's directory made read-only (statusdir.go).
	vs = append(vs, checkStatusDir(r, s)...)
	// The power-loss layer's torn states of the status file (disk.go).
	vs = append(vs, checkDisk(r)...)
	vs = append(vs, checkStatusFault(r)...)
	// What the status reader said while the run was stopped (stop.go).
	vs = append(vs, checkStop(r)...)
	if x := r.Orphans.RemoveExit; x != nil && *x != status.ExitRefused {
		add(InvOrphanNotRemoved, "while pids %v of the run's group were alive, --remove-if-dead --dry-run exited %d, not %d (refused)",
			r.Orphans.PIDs, *x, status.ExitRefused)
	}
	// The status file followed over the whole run (other plans).
	if r.PhaseOrder != "" {
		add(InvPhasesForward, "status file samples over the run: %s", r.PhaseOrder)
	}
	return vs
}

// describe summarises a status file for messages.
func describe(sf StatusFile) string {
	switch {
	case !sf.Present:
		return "nothing (no file)"
	case !sf.Valid:
		return "nothing valid (" + sf.Error + ")"
	}
	return fmt.Sprintf("%q", sf.State)
}

// checkStatusFault returns the InvStatusFaultHarmless violations of r.
func checkStatusFault(r *Record) []Violation {
	if r.Fault.Plan != scenario.PlanStatusFileIOError || !r.Fault.Fired {
		return nil
	}
	v := Violation{Invariant: InvStatusFaultHarmless}
	switch {
	case !r.Exited0():
		v.Message = fmt.Sprintf("an I/O error on the status file alone (%s) ended the run: exit %s", r.Fault.Detail, exitText(r.Exit))
	case r.Oracle == nil:
		v.Message = fmt.Sprintf("after an I/O error on the status file alone (%s) the run exited 0, but the oracle did not judge the backup", r.Fault.Detail)
	case !r.Oracle.Complete:
		v.Message = fmt.Sprintf("after an I/O error on the status file alone (%s) the run exited 0, but the oracle rejects the backup: %s", r.Fault.Detail, r.Oracle.Reason)
	default:
		return nil
	}
	return []Violation{v}
}
