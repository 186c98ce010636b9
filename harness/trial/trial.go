// Package trial runs one pg_basebackup under one fault plan against the
// source cluster while the workload writes, observes every signal an
// operator could use afterwards (exit code, "base backup completed" in the
// log, backup_manifest, the status file), asks the oracle for the truth,
// and checks the invariants. A Record is the trial's evidence.
package trial

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
	// Dir is the trial's scratch directory (created; the caller removes it).
	Dir string
	// Cluster is the started source cluster; Workload writes to it.
	Cluster  *cluster.Cluster
	Workload *workload.Workload
	// Calibration is a clean run's timeline (empty for the calibration run).
	Calibration fault.Timeline
	// Status reads the status file (default DefaultStatusReader).
	Status StatusReader
	// ForceOracle runs the oracle whatever the signals say.
	ForceOracle bool
	// CountSyscalls runs pg_basebackup under ptrace, counting its
	// file-system calls per phase (the calibration of kill-syscall).
	CountSyscalls bool
	// SyscallCalibration is a traced clean run's counts per phase.
	SyscallCalibration map[string]int64
	// DiskCalibration is a clean run's counts of operations per kind in
	// the finishing part, on the power-loss layer (fault.DiskCount).
	DiskCalibration map[string]int64
	// ReaderBin is a pgbb-status binary for the plans that run the
	// reader as a process of its own (see fault.Target).
	ReaderBin string
	// OtherUser is another user in Acct's group that the stop plan runs
	// ReaderBin as (see fault.Target); nil: none.
	OtherUser *osuser.Account
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
	// Args is pg_basebackup's command line; TZ its time zone.
	Args []string `json:"args"`
	TZ   string   `json:"tz"`
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
	// run until it exited), "settle" (orphans, the power cut, the log),
	// "restart" (the source server after a stop plan), "oracle", "torn"
	// (the torn status views of a power-loss plan), "cleanup"
	// (--remove-if-dead and the retry), "rerun". Steps that did not
	// happen are absent.
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

// Run runs the trial. An error means the harness could not run it (the
// cluster is gone, the disk is full), not that pg_basebackup failed.
func Run(ctx context.Context, s Spec) (*Record, error) {
	if s.Status == nil {
		s.Status = DefaultStatusReader()
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x9bb))
	rec := &Record{
		ID: s.ID, Scenario: s.Scenario.Name, Index: s.Index, Plan: s.Fault.Name(), Seed: s.Seed,
		Variant: s.Variant, StatusFile: s.StatusFile, Dir: s.Dir, Start: time.Now().UTC(),
	}
	if err := s.Acct.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("trial %s: %w", s.ID, err)
	}
	target := filepath.Join(s.Dir, "target")
	// The status file goes into a directory of its own next to the
	// target, outside every directory the run writes.
	statusPath := filepath.Join(s.Dir, fault.StatusDirName, status.FileName)
	// Plans that cut the power or fail the disk put the target, the
	// tablespaces and the status file on the power-loss layer (see
	// disk.go).
	var disk *fault.Disk
	if fault.NeedsDisk(s.Fault) {
		d, err := fault.MountDisk(ctx, s.Dir, s.Acct, len(s.Cluster.Tablespaces), filepath.Base(statusPath), fault.DiskOptions(s.Fault)...)
		if err != nil {
			return nil, fmt.Errorf("trial %s: %w", s.ID, err)
		}
		defer d.Close()
		disk, target, statusPath = d, d.Target, d.StatusFile
	} else if s.StatusFile {
		// Group-readable: the stop plan may read it as another user of
		// the owner's group.
		if err := s.Acct.MkdirAll(filepath.Dir(statusPath), 0o750); err != nil {
			return nil, fmt.Errorf("trial %s: %w", s.ID, err)
		}
	}
	if !s.StatusFile {
		statusPath = ""
	}
	dest := target
	var stdout *os.File
	if s.Scenario.Stdout {
		// -D -: the archive the run writes to its standard output is
		// saved as base.tar in the target, where the oracle finds it.
		dest = "-"
		if err := s.Acct.MkdirAll(target, 0o700); err != nil {
			return nil, fmt.Errorf("trial %s: %w", s.ID, err)
		}
		f, err := os.OpenFile(filepath.Join(target, "base.tar"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, fmt.Errorf("trial %s: %w", s.ID, err)
		}
		defer f.Close()
		stdout = f
	}
	args := []string{filepath.Join(s.BinDir, "pg_basebackup"), "-D", dest,
		"-h", s.Cluster.Host(), "-p", fmt.Sprint(s.Cluster.Port), "-U", "postgres",
		"--label=pgbb " + s.ID}
	args = append(args, s.Scenario.Args()...)
	if statusPath != "" {
		args = append(args, s.Scenario.StatusArgs(statusPath)...)
	}
	rec.StatusPath = statusPath
	truth := fieldTruth{target: target, stdout: s.Scenario.Stdout}
	if s.Scenario.Format == "plain" {
		for i, ts := range s.Cluster.Tablespaces {
			m := filepath.Join(s.Dir, fmt.Sprintf("ts%d", i+1))
			if disk != nil {
				m = disk.Tablespaces[i]
			}
			args = append(args, "--tablespace-mapping="+ts+"="+m)
			truth.dirs = append(truth.dirs, m)
		}
		if s.Scenario.WALDir {
			truth.wal = filepath.Join(s.Dir, "waldir")
			args = append(args, "--waldir="+truth.wal)
		}
	}
	rec.Args = args
	rec.TZ = TrialTZ(s.Seed)
	logPath := filepath.Join(s.Dir, "pg_basebackup.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("trial %s: %w", s.ID, err)
	}
	defer logFile.Close()

	rec.Before = s.Workload.Mark()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("trial %s: %w", s.ID, err)
	}
	tr, traces := s.Fault.(fault.Tracer)
	traces = (traces && tr.Traces()) || s.CountSyscalls
	cmdCtx := ctx
	if traces {
		// A traced process is reaped by its tracer, never by cmd.Wait;
		// cancellation kills its group below.
		cmdCtx = context.Background()
	}
	// The sampler below asks the server how much of this run's backup it
	// has streamed; the run's application_name tells it which.
	sampled := statusPath != "" && disk == nil && s.Fault.Name() != scenario.PlanStop
	var probe fault.StreamedProbe
	if sampled {
		if conn, err := s.Cluster.Connect(ctx, "postgres"); err == nil {
			defer conn.Close(context.Background())
			probe = streamedProbe(ctx, conn, backupAppName(s.ID))
		}
	}
	cmd := proc.Command(cmdCtx, s.Acct, []string{"TZ=" + rec.TZ, "PGAPPNAME=" + backupAppName(s.ID)}, args...)
	cmd.Stdout = pw
	cmd.Stderr = pw
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Dir = s.Dir
	start := time.Now()
	tracker := fault.NewTracker(start)
	var traced *fault.Traced
	var killAt int64
	var killFinishing bool
	if traces {
		if !s.CountSyscalls {
			killAt, killFinishing = fault.ChooseSyscall(rng, s.SyscallCalibration)
		}
		traced, err = fault.StartTraced(cmd, killAt, tracker.Current)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		pw.Close()
		pr.Close()
		return nil, fmt.Errorf("trial %s: start pg_basebackup: %w", s.ID, err)
	}
	pw.Close()
	pid := cmd.Process.Pid
	var logMu sync.Mutex
	var logText strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			tracker.Line(line)
			if traced != nil {
				if p, ok := fault.PhaseOfLine(line); ok {
					traced.Counter.MarkPhase(p)
				}
			}
			logMu.Lock()
			fmt.Fprintf(logFile, "%+8.3fs %s\n", time.Since(start).Seconds(), line)
			logText.WriteString(line + "\n")
			logMu.Unlock()
		}
		pr.Close()
	}()

	done := make(chan struct{})
	var waitStatus syscall.WaitStatus
	go func() {
		if traced != nil {
			<-traced.Done
			waitStatus = traced.Status
		} else {
			cmd.Wait()
			waitStatus, _ = cmd.ProcessState.Sys().(syscall.WaitStatus)
		}
		tracker.Observe(fault.PhaseExited)
		close(done)
	}()

	// Follow the status file while the run lasts: its phases only move
	// forward and nothing follows "completed" or "failed".
	var sampler *fault.StatusSampler
	if sampled {
		sampler = fault.StartStatusSampler(statusPath, done, probe)
	}

	faultCtx, cancelFault := context.WithCancel(ctx)
	injDone := make(chan struct{})
	go func() {
		defer close(injDone)
		inj, err := s.Fault.Inject(faultCtx, &fault.Target{
			PID: pid, Phases: tracker, Done: done, Cluster: s.Cluster,
			Calibration: s.Calibration, Rand: rng, Disk: disk, StatusFile: statusPath,
			DiskCalibration: s.DiskCalibration, ReaderBin: s.ReaderBin, OtherUser: s.OtherUser,
		})
		if err != nil && faultCtx.Err() == nil {
			inj.Detail = strings.TrimSpace(inj.Detail + " (error: " + err.Error() + ")")
		}
		rec.Fault = inj
	}()

	limit := 10*s.Calibration.Total() + 60*time.Second
	select {
	case <-done:
	case <-time.After(limit):
		rec.Exit.Hung = true
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	case <-ctx.Done():
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
		cancelFault()
		<-injDone
		return nil, ctx.Err()
	}
	rec.Duration = time.Since(start)
	rec.Timings = map[string]time.Duration{"backup": rec.Duration}
	step := time.Now()
	took := func(name string) {
		rec.Timings[name] = time.Since(step)
		step = time.Now()
	}
	var samples fault.StatusSamples
	if sampler != nil {
		samples = sampler.Stop()
		rec.StatusSamples = len(samples.Versions)
		rec.ServerSamples = len(samples.Streamed)
		for _, v := range samples.Versions {
			if v.Streamed >= 0 && v.Status.State == status.StateInProgress && v.Status.Progress {
				rec.ProgressJudged++
			}
		}
		if err := status.PhasesForward(samples.Statuses()); err != nil {
			rec.PhaseOrder = err.Error()
		}
	}
	// A fault returns soon after the run ended (a server stop finishes
	// its pg_ctl first); only a stuck one is cancelled.
	select {
	case <-injDone:
	case <-time.After(90 * time.Second):
		cancelFault()
		<-injDone
	}
	cancelFault()
	rec.Exit.Code = waitStatus.ExitStatus()
	if waitStatus.Signaled() {
		rec.Exit.Signal = waitStatus.Signal().String()
	}
	if traced != nil && !s.CountSyscalls {
		rec.Fault.Anchor = "syscall"
		rec.Fault.Finishing = killFinishing
		rec.Fault.Detail = fmt.Sprintf("kill at file-system call #%d", killAt)
		if traced.Killed != "" {
			rec.Fault.Fired = true
			rec.Fault.Detail = traced.Killed
			rec.Fault.Phase = traced.KilledPhase
			rec.Fault.At = traced.KilledAt.Sub(start)
		}
	}

	// The WAL streaming child can outlive its parent; give it a moment to
	// notice, then record and kill whatever of the group is left, before
	// anything reads the target.
	if alive := survivors(pid, orphanGrace); len(alive) > 0 {
		rec.Orphans = Orphans{Alive: true, PIDs: alive}
	}
	if _, err := proc.KillGroup(pid, 10*time.Second); err != nil {
		return nil, fmt.Errorf("trial %s: %w", s.ID, err)
	}
	if traced != nil {
		select {
		case <-traced.Finished():
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("trial %s: ptrace: the traced processes did not go away", s.ID)
		}
		if traced.Err != nil {
			return nil, fmt.Errorf("trial %s: %w", s.ID, traced.Err)
		}
		rec.Syscalls = traced.Counter.Phases()
	}
	if disk != nil {
		// The machine goes down: only the durable state remains.
		if rec.Disk, err = powerOff(disk); err != nil {
			return nil, fmt.Errorf("trial %s: %w", s.ID, err)
		}
	}
	select {
	case <-logDone:
	case <-time.After(5 * time.Second):
	}
	rec.After = s.Workload.Mark()
	rec.Timeline = tracker.Timeline()
	took("settle")

	if rec.Fault.ServerStopped {
		if err := s.Cluster.Start(ctx, 120*time.Second); err != nil {
			return nil, fmt.Errorf("trial %s: restart source server after %s: %w", s.ID, rec.Plan, err)
		}
		took("restart")
	}

	// The operator's view.
	logMu.Lock()
	out := logText.String()
	logMu.Unlock()
	rec.LogCompleted = strings.Contains(out, "base backup completed")
	rec.LogTail = proc.Tail(out, 6)
	if _, err := os.Stat(target); err == nil {
		rec.TargetPresent = true
	}
	if disk == nil && !s.Scenario.Stdout {
		for _, d := range []string{target, truth.wal} {
			if _, err := os.Lstat(d); d != "" && err == nil {
				rec.CreatedLeft = append(rec.CreatedLeft, d)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(target, "backup_manifest")); err == nil {
		rec.ManifestPresent = true
	}
	if _, err := os.Stat(filepath.Join(target, "backup_manifest.tmp")); err == nil {
		rec.ManifestTmp = true
	}
	if statusPath != "" {
		rec.Status = s.Status.Read(statusPath)
		truth.pid, truth.started, truth.ended, truth.scenario = pid, start, start.Add(rec.Duration), s.Scenario
		rec.WrongFields = truth.check(statusPath)
		var firedAt time.Time
		if rec.Fault.Fired {
			firedAt = start.Add(rec.Fault.At)
		}
		rec.WrongFields = append(rec.WrongFields, checkProgress(samples, s.Scenario.UpdateInterval(), firedAt)...)
	}

	// The truth, for every claimed completion and a sample of the rest.
	var why []string
	if rec.StatusCompleted() || rec.Status.ClaimsCompleted {
		why = append(why, "status completed")
	}
	if rec.Exited0() {
		why = append(why, "exit 0")
	}
	if rec.LogCompleted {
		why = append(why, "log line")
	}
	if rec.ManifestPresent {
		why = append(why, "manifest")
	}
	if s.ForceOracle {
		why = append(why, "forced")
	}
	if len(why) == 0 && rec.TargetPresent && rng.Float64() < s.Scenario.OracleSample {
		why = append(why, "sample")
	}
	if len(why) > 0 {
		rec.OracleWhy = strings.Join(why, ", ")
		v, err := oracle.Judge(ctx, oracle.Input{
			BinDir: s.BinDir, Acct: s.Acct, Target: target, Format: s.Scenario.Format, Stdout: s.Scenario.Stdout,
			WALMethod: s.Scenario.WALMethod, Manifest: s.Scenario.Manifest, Scratch: filepath.Join(s.Dir, "oracle"),
			Before: rec.Before, After: rec.After,
		})
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil, fmt.Errorf("trial %s: oracle: scratch disk full: %w", s.ID, err)
			}
			return nil, fmt.Errorf("trial %s: oracle: %w", s.ID, err)
		}
		rec.Oracle = &v
		// The oracle's copy is large and no longer needed.
		os.RemoveAll(filepath.Join(s.Dir, "oracle", "data"))
		took("oracle")
	}
	if disk != nil {
		if err := checkTorn(ctx, s, rec, disk); err != nil {
			return nil, fmt.Errorf("trial %s: %w", s.ID, err)
		}
		took("torn")
	}
	rec.Violations = Check(rec, s.Scenario)
	// A run that did not complete: clean up as an operator would, then
	// retry (cleanup.go).
	step = time.Now()
	if err := cleanupAndRetry(ctx, s, rec); err != nil {
		return nil, fmt.Errorf("trial %s: %w", s.ID, err)
	}
	if rec.Cleanup != nil {
		took("cleanup")
	}
	// A run that completed: the retry of a task flow that timed out must
	// fail on it and leave it as it is.
	step = time.Now()
	if err := rerunOverCompleted(ctx, s, rec); err != nil {
		return nil, fmt.Errorf("trial %s: %w", s.ID, err)
	}
	if rec.Rerun != nil {
		took("rerun")
	}
	rec.Elapsed = time.Since(start)
	return rec, nil
}

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
