package trial

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/proc"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// Run runs the trial: it lays out the run's directories, starts
// pg_basebackup, observes it under the fault plan until it exits, settles
// what it left (orphans, the power cut, the server), judges it (the
// operator's signals, the status file, the oracle, the invariants), and
// does the aftercare an operator would (clean-up and retry, or a rerun
// over a completed backup). An error means the harness could not run it
// (the cluster is gone, the disk is full), not that pg_basebackup failed.
func Run(ctx context.Context, s Spec) (*Record, error) {
	if s.Status == nil {
		s.Status = DefaultStatusReader()
	}
	t := &trialRun{s: s, rng: rand.New(rand.NewPCG(s.Seed, 0x9bb))}
	t.rec = &Record{
		ID: s.ID, Scenario: s.Scenario.Name, Index: s.Index, Plan: s.Fault.Name(), Seed: s.Seed,
		Variant: s.Variant, StatusFile: s.StatusFile, Wrapped: s.Wrapper != "",
		Dir: s.Dir, Start: time.Now().UTC(),
	}
	defer t.close()
	for _, step := range []func(context.Context) error{t.layOut, t.startRun, t.observe, t.settle, t.judge, t.aftercare} {
		if err := step(ctx); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil, err
			}
			return nil, fmt.Errorf("trial %s: %w", s.ID, err)
		}
	}
	t.rec.Elapsed = time.Since(t.start)
	return t.rec, nil
}

// trialRun is one trial while Run runs it: what its steps share.
type trialRun struct {
	s   Spec
	rec *Record
	rng *rand.Rand
	// closers undo what the steps set up, last first.
	closers []func()

	// tgt is the run as the fault plan sees it, from layOut on: its
	// Disk is the power-loss layer of the plans that prepare one.
	tgt *fault.Target

	// Where the run writes (layOut): target is -D (with -D -, the
	// directory of base.tar), statusPath the status file ("" without
	// one); stdout receives -D -.
	target, statusPath string
	stdout             *os.File
	truth              fieldTruth

	// The run (startRun): its process as the plan started it, its log.
	cmd        *exec.Cmd
	proc       fault.Process
	pid        int
	start      time.Time
	log        *runLog
	done       chan struct{}
	waitStatus syscall.WaitStatus
	sampler    *fault.StatusSampler
	samples    fault.StatusSamples

	// step is when the current timed step began (took).
	step time.Time
}

// close runs the closers.
func (t *trialRun) close() {
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i]()
	}
}

// took records the time since the last step as the step name's.
func (t *trialRun) took(name string) {
	t.rec.Timings[name] = time.Since(t.step)
	t.step = time.Now()
}

// layOut makes the trial's directories, lets a plan that prepares the
// storage (fault.Preparer) do so, and composes pg_basebackup's command
// line.
func (t *trialRun) layOut(ctx context.Context) error {
	s := t.s
	if err := s.Acct.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	t.tgt = &fault.Target{Cluster: s.Cluster, Calibration: s.Calibration, Rand: t.rng,
		Dir: s.Dir, Acct: s.Acct, Tablespaces: len(s.Cluster.Tablespaces), ReaderBin: s.ReaderBin, OtherUser: s.OtherUser,
		ReaderGaps: s.ReaderGaps, Wrapped: s.Wrapper != ""}
	t.target = filepath.Join(s.Dir, "target")
	// The status file goes into a directory of its own next to the
	// target, outside every directory the run writes.
	t.statusPath = filepath.Join(s.Dir, fault.StatusDirName, status.FileName)
	if p, ok := s.Fault.(fault.Preparer); ok {
		release, err := p.Prepare(ctx, t.tgt)
		if err != nil {
			return err
		}
		t.closers = append(t.closers, release)
	}
	// The plans that cut the power or fail the disk put the target, the
	// tablespaces and the status file on the power-loss layer.
	if d := t.tgt.Disk; d != nil {
		t.target, t.statusPath = d.Target, d.StatusFile
	} else if s.StatusFile {
		// Group-readable: the stop plan may read it as another user of
		// the owner's group.
		if err := s.Acct.MkdirAll(filepath.Dir(t.statusPath), 0o750); err != nil {
			return err
		}
	}
	if !s.StatusFile {
		t.statusPath = ""
	}
	t.rec.StatusPath, t.tgt.StatusFile = t.statusPath, t.statusPath
	dest := t.target
	if s.Scenario.Stdout {
		// -D -: the archive the run writes to its standard output is
		// saved as base.tar in the target, where the oracle finds it.
		dest = "-"
		if err := s.Acct.MkdirAll(t.target, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(t.target, "base.tar"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		t.closers = append(t.closers, func() { f.Close() })
		t.stdout = f
	}
	t.rec.Args = t.args(dest)
	t.rec.TZ = TrialTZ(s.Seed)
	if s.ReaderBin != "" {
		t.rec.ReaderTZ = ReaderTZ(s.Seed)
	}
	t.tgt.ReaderTZ = t.rec.ReaderTZ
	return nil
}

// args returns pg_basebackup's command line writing to dest, under the
// wrapper when the spec has one (wrapArgs), and notes in t.truth the
// directories it gives the run.
func (t *trialRun) args(dest string) []string {
	s := t.s
	args := []string{filepath.Join(s.BinDir, "pg_basebackup"), "-D", dest,
		"-h", s.Cluster.Host(), "-p", fmt.Sprint(s.Cluster.Port), "-U", "postgres",
		"--label=pgbb " + s.ID}
	args = append(args, s.Scenario.Args()...)
	if t.statusPath != "" && s.Wrapper == "" {
		args = append(args, s.Scenario.StatusArgs(t.statusPath)...)
	}
	t.truth = fieldTruth{target: t.target, stdout: s.Scenario.Stdout}
	if s.Scenario.Format == "plain" {
		args = append(args, t.dirArgs()...)
	}
	if s.Wrapper != "" {
		return wrapArgs(s.Wrapper, t.statusPath, s.Scenario, args)
	}
	return args
}

// wrapArgs returns the wrapper's command line that runs pg_basebackup
// with args and writes the status file at statusPath: the scenario's
// status options become the wrapper's own (pgbb-run --status-file=FILE
// [--status-file-refresh=N] -- pg_basebackup ARGS...).
func wrapArgs(wrapper, statusPath string, sc scenario.Scenario, args []string) []string {
	out := append([]string{wrapper}, sc.StatusArgs(statusPath)...)
	out = append(out, "--")
	return append(out, args...)
}

// dirArgs returns the options of a plain backup's other directories
// (the tablespaces' mappings, a --waldir), and notes them in t.truth.
func (t *trialRun) dirArgs() []string {
	s := t.s
	var args []string
	for i, ts := range s.Cluster.Tablespaces {
		m := filepath.Join(s.Dir, fmt.Sprintf("ts%d", i+1))
		if d := t.tgt.Disk; d != nil {
			m = d.Tablespaces[i]
		}
		args = append(args, "--tablespace-mapping="+ts+"="+m)
		t.truth.dirs = append(t.truth.dirs, m)
	}
	if s.Scenario.WALDir {
		t.truth.wal = filepath.Join(s.Dir, "waldir")
		args = append(args, "--waldir="+t.truth.wal)
	}
	return args
}

// sampled says whether the status file is followed while the run lasts:
// not on the power-loss layer (reading it would add operations to the
// counts), nor for a plan that samples its own (the stop plan).
func (t *trialRun) sampled() bool {
	w, watches := t.s.Fault.(fault.StatusWatcher)
	return t.statusPath != "" && t.tgt.Disk == nil && !(watches && w.WatchesStatusFile())
}

// startRun starts pg_basebackup (as the plan launches it, for a
// fault.Launcher: under the tracer), its log reader and its waiter.
func (t *trialRun) startRun(ctx context.Context) error {
	s := t.s
	logFile, err := os.Create(filepath.Join(s.Dir, "pg_basebackup.log"))
	if err != nil {
		return err
	}
	t.closers = append(t.closers, func() { logFile.Close() })
	t.rec.Before = s.Workload.Mark()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	launcher, launches := s.Fault.(fault.Launcher)
	cmdCtx := ctx
	if launches {
		// A launched process is reaped by its launcher (the tracer),
		// never by cmd.Wait; cancellation kills its group (observe).
		cmdCtx = context.Background()
	}
	t.cmd = proc.Command(cmdCtx, s.Acct, []string{"TZ=" + t.rec.TZ, "PGAPPNAME=" + backupAppName(s.ID)}, t.rec.Args...)
	t.cmd.Stdout, t.cmd.Stderr = pw, pw
	if t.stdout != nil {
		t.cmd.Stdout = t.stdout
	}
	t.cmd.Dir = s.Dir
	streamed := t.streamedProbe(ctx)
	t.start = time.Now()
	t.tgt.Phases = fault.NewTracker(t.start)
	if launches {
		t.proc, err = launcher.Launch(t.cmd, t.tgt)
	} else {
		t.proc, err = fault.Start(t.cmd)
	}
	pw.Close()
	if err != nil {
		pr.Close()
		return fmt.Errorf("start pg_basebackup: %w", err)
	}
	t.pid = t.cmd.Process.Pid
	t.log = readLog(pr, logFile, t.start, t.tgt.Phases, t.proc)
	t.done = make(chan struct{})
	t.tgt.PID, t.tgt.Done = t.pid, t.done
	go t.wait()
	// Follow the status file while the run lasts: its phases only move
	// forward and nothing follows "completed" or "failed"; its progress
	// lines agree with the server (progress.go).
	if t.sampled() {
		written := writtenProbe(func() int { return t.pid })
		if s.Wrapper != "" {
			// What pg_basebackup wrote, not the wrapper.
			written = writtenProbe(func() int { return fault.BackupChild(t.pid) })
		}
		t.sampler = fault.StartStatusSampler(t.statusPath, t.done, fault.Probes{Streamed: streamed, Written: written})
	}
	return nil
}

// streamedProbe connects to the source for the sampler, which asks how
// much of this run's backup the server has streamed (the run's
// application_name tells it which); nil when the file is not sampled or
// the server cannot be reached.
func (t *trialRun) streamedProbe(ctx context.Context) fault.Probe {
	if !t.sampled() {
		return nil
	}
	conn, err := t.s.Cluster.Connect(ctx, "postgres")
	if err != nil {
		return nil
	}
	t.closers = append(t.closers, func() { conn.Close(context.Background()) })
	return streamedProbe(ctx, conn, backupAppName(t.s.ID))
}

// wait waits for the run to exit and closes t.done.
func (t *trialRun) wait() {
	t.waitStatus = t.proc.Wait()
	t.tgt.Phases.Observe(fault.PhaseExited)
	close(t.done)
}

// observe injects the fault and waits for the run to exit (killing it when
// it hangs far past a clean run's time), then gathers what the fault and
// the sampler saw.
func (t *trialRun) observe(ctx context.Context) error {
	s := t.s
	faultCtx, cancelFault := context.WithCancel(ctx)
	defer cancelFault()
	injDone := make(chan struct{})
	go func() {
		defer close(injDone)
		inj, err := s.Fault.Inject(faultCtx, t.tgt)
		if err != nil && faultCtx.Err() == nil {
			inj.Detail = strings.TrimSpace(inj.Detail + " (error: " + err.Error() + ")")
		}
		t.rec.Fault = inj
	}()
	select {
	case <-t.done:
	case <-time.After(10*s.Calibration.Timeline.Total() + 60*time.Second):
		t.rec.Exit.Hung = true
		syscall.Kill(-t.pid, syscall.SIGKILL)
		<-t.done
	case <-ctx.Done():
		syscall.Kill(-t.pid, syscall.SIGKILL)
		<-t.done
		cancelFault()
		<-injDone
		return ctx.Err()
	}
	t.rec.Duration = time.Since(t.start)
	t.rec.Timings = map[string]time.Duration{"backup": t.rec.Duration}
	t.step = time.Now()
	t.stopSampler()
	// A fault returns soon after the run ended (a server stop finishes
	// its pg_ctl first); only a stuck one is cancelled.
	select {
	case <-injDone:
	case <-time.After(90 * time.Second):
		cancelFault()
		<-injDone
	}
	t.rec.Exit.Code = t.waitStatus.ExitStatus()
	if t.waitStatus.Signaled() {
		t.rec.Exit.Signal = t.waitStatus.Signal().String()
	}
	return nil
}

// stopSampler takes the status file's samples into the record.
func (t *trialRun) stopSampler() {
	if t.sampler == nil {
		return
	}
	t.samples = t.sampler.Stop()
	rec := t.rec
	rec.StatusSamples = len(t.samples.Versions)
	rec.ServerSamples = len(t.samples.Streamed)
	for _, v := range t.samples.Versions {
		if v.Streamed >= 0 && v.Status.State == status.StateInProgress && v.Status.Progress {
			rec.ProgressJudged++
		}
	}
	if err := status.PhasesForward(t.samples.Statuses()); err != nil {
		rec.PhaseOrder = err.Error()
	}
}

// settle deals with what the run left before anything reads the target:
// orphans of its process group and the end of its log, then whatever
// the plan left (fault.Settler: the power cut of the layer, the tracer,
// a stopped server).
func (t *trialRun) settle(ctx context.Context) error {
	s, rec := t.s, t.rec
	// The WAL streaming child can outlive its parent; give it a moment to
	// notice, then record and kill whatever of the group is left.
	if alive := survivors(t.pid, orphanGrace); len(alive) > 0 {
		rec.Orphans = Orphans{Alive: true, PIDs: alive}
		t.removeWhileOrphans(ctx)
	}
	if _, err := proc.KillGroup(t.pid, 10*time.Second); err != nil {
		return err
	}
	select {
	case <-t.log.done:
	case <-time.After(5 * time.Second):
	}
	rec.After = s.Workload.Mark()
	rec.Timeline = t.tgt.Phases.Timeline()
	t.took("settle")
	st, ok := s.Fault.(fault.Settler)
	if !ok {
		return nil
	}
	var out fault.Settled
	if err := st.Settle(ctx, t.tgt, &rec.Fault, &out); err != nil {
		return err
	}
	rec.Syscalls = out.Syscalls
	if out.Disk != nil {
		rec.Disk = &DiskResult{DiskReport: out.Disk}
	}
	t.took("plan")
	return nil
}

// removeWhileOrphans asks --remove-if-dead --dry-run, while processes of
// the run's group outlive the one the trial started, what it would do
// (rec.Orphans.RemoveExit): an operator who cleans up as soon as the pid
// is gone. An answer counts only if some of them were still alive after
// it; with no status file, or on the power-loss layer, it is not asked.
func (t *trialRun) removeWhileOrphans(ctx context.Context) {
	if t.statusPath == "" || t.tgt.Disk != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rm := fault.RemoveIfDead(ctx, t.statusPath, true, status.WithProcesses(fault.WritersNamespace()))
	if len(proc.GroupMembers(t.pid)) == 0 {
		return
	}
	code := rm.ExitCode
	t.rec.Orphans.RemoveExit, t.rec.Orphans.RemoveRefused = &code, rm.Refused
}

// judge records what an operator sees, checks the status file against
// what the trial knows, asks the oracle where any signal claims
// completion (and for a seeded sample of the rest), looks at the torn
// states of the layer's status file, and checks the invariants.
func (t *trialRun) judge(ctx context.Context) error {
	t.operatorView()
	if t.statusPath != "" {
		rec := t.rec
		rec.Status = t.s.Status.Read(t.statusPath)
		t.truth.pid, t.truth.started, t.truth.ended, t.truth.scenario = t.pid, t.start, t.start.Add(rec.Duration), t.s.Scenario
		rec.WrongFields = t.truth.check(t.statusPath)
		var firedAt time.Time
		if rec.Fault.Fired {
			firedAt = t.start.Add(rec.Fault.At)
		}
		// The wrapper counts bytes only from -P's progress lines.
		countsBytes := t.s.Wrapper == "" || t.s.Scenario.Progress
		rec.WrongFields = append(rec.WrongFields, checkProgress(t.samples, t.s.Scenario.UpdateInterval(), firedAt, countsBytes)...)
	}
	if err := t.askOracle(ctx); err != nil {
		return err
	}
	if d := t.tgt.Disk; d != nil {
		if err := checkTorn(ctx, t.s, t.rec, d); err != nil {
			return err
		}
		t.took("torn")
	}
	t.rec.Violations = Check(t.rec, t.s.Scenario)
	return nil
}

// operatorView records the signals a stock user has: the log line, the
// directories left, backup_manifest.
func (t *trialRun) operatorView() {
	rec := t.rec
	out := t.log.text()
	rec.LogCompleted = strings.Contains(out, "base backup completed")
	rec.StatusUnsaid = strings.Contains(out, status.WarnCompleteUnsaid)
	rec.LogTail = proc.Tail(out, 6)
	if _, err := os.Stat(t.target); err == nil {
		rec.TargetPresent = true
	}
	if t.tgt.Disk == nil && !t.s.Scenario.Stdout {
		for _, d := range []string{t.target, t.truth.wal} {
			if _, err := os.Lstat(d); d != "" && err == nil {
				rec.CreatedLeft = append(rec.CreatedLeft, d)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(t.target, "backup_manifest")); err == nil {
		rec.ManifestPresent = true
	}
	if _, err := os.Stat(filepath.Join(t.target, "backup_manifest.tmp")); err == nil {
		rec.ManifestTmp = true
	}
}

// askOracle runs the oracle on the backup when any signal claims
// completion, when the spec forces it, and for a seeded sample of the
// rest.
func (t *trialRun) askOracle(ctx context.Context) error {
	s, rec := t.s, t.rec
	var why []string
	for _, c := range []struct {
		claims bool
		what   string
	}{
		{rec.StatusCompleted() || rec.Status.ClaimsCompleted, "status completed"},
		{rec.Exited0(), "exit 0"},
		{rec.LogCompleted, "log line"},
		{rec.ManifestPresent, "manifest"},
		{s.ForceOracle, "forced"},
	} {
		if c.claims {
			why = append(why, c.what)
		}
	}
	if len(why) == 0 && rec.TargetPresent && t.rng.Float64() < s.Scenario.OracleSample {
		why = append(why, "sample")
	}
	if len(why) == 0 {
		return nil
	}
	rec.OracleWhy = strings.Join(why, ", ")
	v, err := oracle.Judge(ctx, oracle.Input{
		BinDir: s.BinDir, Acct: s.Acct, Target: t.target, Format: s.Scenario.Format, Stdout: s.Scenario.Stdout,
		WALMethod: s.Scenario.WALMethod, Manifest: s.Scenario.Manifest, Scratch: filepath.Join(s.Dir, "oracle"),
		Before: rec.Before, After: rec.After,
	})
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("oracle: scratch disk full: %w", err)
		}
		return fmt.Errorf("oracle: %w", err)
	}
	rec.Oracle = &v
	// The oracle's copy is large and no longer needed.
	os.RemoveAll(filepath.Join(s.Dir, "oracle", "data"))
	t.took("oracle")
	return nil
}

// aftercare does what an operator does next: after a run that did not
// complete, clean up and retry (cleanup.go); after one that completed, the
// retry of a task flow that timed out must fail on it and leave it as it
// is (rerun.go).
func (t *trialRun) aftercare(ctx context.Context) error {
	t.step = time.Now()
	if err := cleanupAndRetry(ctx, t.s, t.rec); err != nil {
		return err
	}
	if t.rec.Cleanup != nil {
		t.took("cleanup")
	}
	t.step = time.Now()
	if err := rerunOverCompleted(ctx, t.s, t.rec, t.backupDirs()); err != nil {
		return err
	}
	if t.rec.Rerun != nil {
		t.took("rerun")
	}
	return nil
}

// backupDirs are the directories the run was given to write the backup
// into: the target, the tablespace directories of a plain backup and a
// --waldir.
func (t *trialRun) backupDirs() []string {
	dirs := append([]string{t.target}, t.truth.dirs...)
	if t.truth.wal != "" {
		dirs = append(dirs, t.truth.wal)
	}
	return dirs
}

// runLog is pg_basebackup's output: written to its log file with the time
// since the start, kept for the operator's view, and fed to the phase
// tracker and to the process as the plan started it (the tracer's
// counter marks the phases).
type runLog struct {
	mu   sync.Mutex
	b    strings.Builder
	done chan struct{}
}

// readLog reads the run's output from r until it closes.
func readLog(r *os.File, file *os.File, start time.Time, tracker *fault.Tracker, p fault.Process) *runLog {
	l := &runLog{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			tracker.Line(line)
			p.Line(line)
			l.mu.Lock()
			fmt.Fprintf(file, "%+8.3fs %s\n", time.Since(start).Seconds(), line)
			l.b.WriteString(line + "\n")
			l.mu.Unlock()
		}
	}()
	return l
}

// text returns the output read so far.
func (l *runLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
