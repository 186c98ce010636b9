package scenario

// PlanStatusDirReadOnly makes the directory of the status file read-only
// (mode 0500, by the harness as root) once the status file says the run
// is receiving data: every rewrite of the status file fails from then on.
// In half of the trials the harness makes it writable again as soon as
// pg_basebackup has logged a failed rewrite, in the others only after the
// run ended. A failed progress rewrite must never end the run: made
// writable again in time, the run completes; kept read-only, the run still
// gets to its last step and then fails (exit 0 over a status that does not
// say completed is never allowed). See harness/fault/statusdir.go.
const PlanStatusDirReadOnly = "status-dir-readonly"
