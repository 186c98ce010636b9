// Package trial runs one pg_basebackup under one fault plan against the
// source cluster while the workload writes, observes every signal an
// operator could use afterwards (exit code, "base backup completed" in the
// log, backup_manifest, the status file), asks the oracle for the truth,
// and checks the invariants. A Record is the trial's evidence.
//
// Run reads as its steps (run.go): lay out the directories (on the
// power-loss layer for the plans that prepare it), start the run (as the
// plan launches it: under the tracer for kill-syscall), observe it under
// its fault plan while the status file is sampled, settle what it and
// the plan left, judge it, and do the aftercare an operator would
// (clean-up and retry, or a rerun over a completed backup). The plan's
// part in each step is the plan's own (fault/lifecycle.go): Run never
// asks which plan it runs.
package trial

import (
	"time"

	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/proc"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
	"github.com/pgbb/pgbb/harness/workload"
)

// Spec is one trial to run.
type Spec struct {
	// ID names the trial: <scenario>/<index>.
	ID string
	// Index is the trial's number within its scenario.
	Index int
	// Scenario gives pg_basebackup's options.
	Scenario scenario.Scenario
	// Fault is the fault plan.
	Fault fault.Fault
	// Seed seeds every random choice of the trial.
	Seed uint64
	// BinDir holds the PostgreSQL programs; Acct runs them.
	BinDir string
	Acct   osuser.Account
	// Variant is "patched" or "stock"; StatusFile says whether the build
	// writes a status file (invariants on it apply only then).
	Variant    string
	StatusFile bool
	// Wrapper is a pgbb-run binary (the wrapper variant): every run is
	// then `Wrapper --status-file=FILE -- pg_basebackup ARGS...`, the
	// status file the wrapper's; empty: pg_basebackup runs itself.
	Wrapper string
	// Dir is the trial's scratch directory (created; the caller removes it).
	Dir string
	// Cluster is the started source cluster; Workload writes to it.
	Cluster  *cluster.Cluster
	Workload *workload.Workload
	// Calibration is what the scenario's clean runs measured (empty for
	// the control run).
	Calibration fault.Calibration
	// Status reads the status file (default DefaultStatusReader).
	Status StatusReader
	// ForceOracle runs the oracle whatever the signals say.
	ForceOracle bool
	// ReaderBin is a pgbb-status binary for the plans that run the
	// reader as a process of its own (see fault.Target).
	ReaderBin string
	// OtherUser is another user in Acct's group that the stop plan runs
	// ReaderBin as (see fault.Target); nil: none.
	OtherUser *osuser.Account
	// ReaderGaps says why ReaderBin cannot run as another user or from
	// another PID namespace (see fault.Target).
	ReaderGaps fault.ReaderGaps
}

// Exit is how pg_basebackup ended.
type Exit struct {
	// Code is the exit code, -1 when killed by a signal.
	Code int `json:"code"`
	// Signal names the signal that killed it.
	Signal string `json:"signal,omitempty"`
	// Hung says it did not exit in time and was killed by the harness.
	Hung bool `json:"hung,omitempty"`
}

// Orphans records processes of pg_basebackup's group alive after it exited
// (the forked WAL streaming child survives its parent's SIGKILL).
type Orphans struct {
	// Alive says some were alive after a short grace period.
	Alive bool `json:"alive"`
	// PIDs lists them.
	PIDs []int `json:"pids,omitempty"`
	// RemoveExit is what `pgbb-status --remove-if-dead --dry-run` on the
	// run's status file said while they were alive (status.ExitRefused,
	// as it must; status.ExitRemoved: it would have removed a live run),
	// RemoveRefused why it refused; nil when not asked (no status file,
	// the power-loss layer) or when they were gone before it answered.
	RemoveExit    *int   `json:"remove_exit,omitempty"`
	RemoveRefused string `json:"remove_refused,omitempty"`
}

// LiveRemoved says the build's clean-up would have removed the
// directories of a run while a process of it was alive: --remove-if-dead
// that did not refuse while orphans lived, or while the stop plan held
// the run stopped. A build without a status file has no such clean-up:
// see report.LiveRemoved for what a stock operator does.
func (r *Record) LiveRemoved() bool {
	if !r.StatusFile {
		return false
	}
	if x := r.Orphans.RemoveExit; x != nil && *x != status.ExitRefused {
		return true
	}
	if s := r.Fault.Stop; s != nil && s.Stopped && (s.RemoveExit != status.ExitRefused || !s.TargetIntact) {
		return true
	}
	return false
}

// Record is the evidence of one trial, saved as JSON.
type Record struct {
	ID         string `json:"id"`
	Scenario   string `json:"scenario"`
	Index      int    `json:"index"`
	Plan       string `json:"plan"`
	Seed       uint64 `json:"seed"`
	Variant    string `json:"variant"`
	StatusFile bool   `json:"status_file_expected"`
	// Wrapped says the run was pg_basebackup under the wrapper
	// (pgbb-run), whose pid is the run's and whose status file it is.
	Wrapped bool `json:"wrapped,omitempty"`
	// Args is pg_basebackup's command line (with a wrapper, the
	// wrapper's, pg_basebackup's after its "--"); TZ its time zone.
	Args []string `json:"args"`
	TZ   string   `json:"tz"`
	// ReaderTZ is the time zone of the built pgbb-status the stop plan
	// runs (from another namespace, as another user).
	ReaderTZ string `json:"reader_tz,omitempty"`
	// StatusPath is where the run was told to write its status file
	// (--status-file), outside every directory it writes; empty for a
	// build that writes none.
	StatusPath string    `json:"status_path,omitempty"`
	Start      time.Time `json:"start"`
	// Duration is pg_basebackup's run time; Elapsed the whole trial's.
	Duration time.Duration   `json:"duration_ns"`
	Elapsed  time.Duration   `json:"elapsed_ns"`
	Exit     Exit            `json:"exit"`
	Fault    fault.Injection `json:"fault"`
	// Timeline is when the run reached each phase.
	Timeline fault.Timeline `json:"timeline"`
	// Syscalls counts file-system calls of the process tree per phase
	// (traced runs only).
	Syscalls map[string]int64 `json:"syscalls,omitempty"`
	Orphans  Orphans          `json:"orphans"`
	// The operator's signals.
	LogCompleted    bool       `json:"log_completed"`
	TargetPresent   bool       `json:"target_present"`
	ManifestPresent bool       `json:"manifest_present"`
	ManifestTmp     bool       `json:"manifest_tmp_present,omitempty"`
	Status          StatusFile `json:"status"`
	// StatusUnsaid says the log holds status.WarnCompleteUnsaid: the run
	// completed the backup, but could not write the status file that
	// would say so.
	StatusUnsaid bool `json:"status_unsaid,omitempty"`
	// CreatedLeft lists the directories the run was to create (the
	// target, a --waldir; not with -D - nor on the power-loss layer, where
	// they are prepared) that exist after it.
	CreatedLeft []string `json:"created_left,omitempty"`
	// Canary marks before the start and after the end of the run.
	Before workload.Mark `json:"canary_before"`
	After  workload.Mark `json:"canary_after"`
	// Oracle is the ground truth, when it ran; OracleWhy says why it ran.
	Oracle    *oracle.Verdict `json:"oracle,omitempty"`
	OracleWhy string          `json:"oracle_why,omitempty"`
	// Disk is what the power-loss layer saw, for plans that run on it.
	Disk *DiskResult `json:"disk,omitempty"`
	// Cleanup is --remove-if-dead and a retry after a run that did not
	// complete (cleanup.go).
	Cleanup *Cleanup `json:"cleanup,omitempty"`
	// Rerun is the same command run again after a run that completed
	// (rerun.go).
	Rerun *Rerun `json:"rerun,omitempty"`
	// RerunServerDown is the same command run before Rerun, after the
	// run that completed, into a fresh target with the server
	// unreachable (see rerunOverCompleted).
	RerunServerDown *Rerun `json:"rerun_server_down,omitempty"`
	// StatusSamples counts the distinct versions of the status file read
	// while the run lasted (every 20 ms; not for plans on the power-loss
	// layer, nor the stop plan, which samples its own); PhaseOrder is the
	// first of the writer's promises they broke (status.PhasesForward),
	// empty when none.
	StatusSamples int    `json:"status_samples,omitempty"`
	PhaseOrder    string `json:"phase_order,omitempty"`
	// ServerSamples counts the answers of the server, asked with each
	// new version and every 100 ms, how much of the backup it had sent
	// (progress.go); ProgressJudged counts the in-progress versions
	// whose BYTES RECEIVED was judged against such an answer.
	ServerSamples  int `json:"server_samples,omitempty"`
	ProgressJudged int `json:"progress_judged,omitempty"`
	// Violations are the invariants this trial broke.
	Violations []Violation `json:"violations,omitempty"`
	// Timings is where the trial's time went, per step: "backup" (the
	// run until it exited), "settle" (orphans, the log), "plan" (what
	// the plan settled: the power cut, the tracer, the source server's
	// restart after a server stop), "oracle", "torn"
	// (the torn status views of a power-loss plan), "cleanup"
	// (--remove-if-dead and the retry), "rerun". Steps that did not
	// happen are absent; "plan" is there for every plan that settles.
	Timings map[string]time.Duration `json:"timings_ns,omitempty"`
	// WrongFields lists what the status file says that the trial knows
	// to be untrue (InvFieldsTrue).
	WrongFields []string `json:"wrong_fields,omitempty"`
	// LogTail is the end of pg_basebackup's output.
	LogTail string `json:"log_tail,omitempty"`
	// Dir is where the trial's files are (kept for failing trials).
	Dir string `json:"dir,omitempty"`
	// Replay is the command that replays this trial.
	Replay string `json:"replay,omitempty"`
}

// Exited0 says pg_basebackup exited with code 0.
func (r *Record) Exited0() bool { return r.Exit.Signal == "" && !r.Exit.Hung && r.Exit.Code == 0 }

// ErrorExit says pg_basebackup exited on its own with a non-zero code.
func (r *Record) ErrorExit() bool { return r.Exit.Signal == "" && !r.Exit.Hung && r.Exit.Code != 0 }

// StatusCompleted says the status file is valid and says completed.
func (r *Record) StatusCompleted() bool { return r.Status.Valid && r.Status.State == "completed" }

// orphanGrace is how long the members of pg_basebackup's process group
// get, after the run ended, to exit on their own.
const orphanGrace = 300 * time.Millisecond

// survivors returns the members of process group pgid still alive after
// grace, or none as soon as the group is empty: after a clean exit the
// WAL streaming child is already gone, and only a group with members
// left has anything to wait for.
func survivors(pgid int, grace time.Duration) []int {
	deadline := time.Now().Add(grace)
	for {
		alive := proc.GroupMembers(pgid)
		if len(alive) == 0 || !time.Now().Before(deadline) {
			return alive
		}
		time.Sleep(20 * time.Millisecond)
	}
}
