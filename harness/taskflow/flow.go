package taskflow

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/proc"
	"github.com/pgbb/pgbb/harness/status"
	"github.com/pgbb/pgbb/harness/workload"
)

// Variant is the pg_basebackup a flow runs.
type Variant string

const (
	// Stock is the release as shipped: the flow judges by exit code and
	// backup_manifest, and cleans up with rm -rf.
	Stock Variant = "stock"
	// Patched writes a status file: the flow judges with pgbb-status and
	// cleans up with --remove-if-dead.
	Patched Variant = "patched"
	// Wrapper is the stock pg_basebackup under pgbb-run, which writes the
	// status file: the flow judges and cleans up as a patched one does.
	// The pid the scheduler holds, and signals at a deadline, is then
	// pgbb-run's.
	Wrapper Variant = "wrapper"
)

// Variants lists the variants in the order of the table.
func Variants() []Variant { return []Variant{Stock, Patched, Wrapper} }

// HasStatusFile says whether runs of v write a status file, which the
// flow then judges with pgbb-status and cleans up with --remove-if-dead.
func (v Variant) HasStatusFile() bool { return v == Patched || v == Wrapper }

// The time zones pg_basebackup and pgbb-status run in: neither UTC nor
// each other's, and not whole hours off, so that a time written or read
// in local time shows.
const (
	WriterTZ = "America/St_Johns"
	ReaderTZ = "Asia/Kathmandu"
)

// Flow names one task flow of a scenario.
type Flow struct {
	Variant Variant `json:"variant"`
	Policy  Policy  `json:"policy"`
	// Stall says the run's base backup sender is stopped mid-run.
	Stall bool `json:"stall,omitempty"`
	// Unfaulted is one attempt without a deadline: the baseline.
	Unfaulted bool `json:"unfaulted,omitempty"`
	// Fresh is a scheduler that never runs the reader and never cleans
	// up: each attempt runs into a fresh directory of its own, with the
	// same --status-file, and is judged only by its exit code and
	// backup_manifest (stock) or by grepping the status file (patched).
	Fresh bool `json:"fresh,omitempty"`
}

// ID names the flow in paths, logs and the table.
func (f Flow) ID() string {
	switch {
	case f.Unfaulted:
		return string(f.Variant) + "-unfaulted"
	case f.Stall:
		return string(f.Variant) + "-stall"
	case f.Fresh:
		return string(f.Variant) + "-fresh-" + string(f.Policy)
	}
	return string(f.Variant) + "-" + string(f.Policy)
}

// Env is what flows run against; its fields are set by the caller.
type Env struct {
	// Server is the started source cluster, with its dataset.
	Server *cluster.Cluster
	// Owner runs pg_basebackup and owns what it writes.
	Owner osuser.Account
	// Reader judges status files (patched and wrapper flows).
	Reader Reader
	// BinDirs holds each variant's PostgreSQL programs (Wrapper: the
	// stock build's).
	BinDirs map[Variant]string
	// WrapperBin is the pgbb-run program that Wrapper flows run
	// pg_basebackup under.
	WrapperBin string
	// Dir receives a directory per flow.
	Dir string
	// Mark returns the source's canary position (nil: no workload).
	Mark func() workload.Mark
	// Log receives a line per event.
	Log io.Writer

	// oracle admits one oracle at a time (set by RunScenario).
	oracle chan struct{}
}

// Attempt is what one attempt of a flow did.
type Attempt struct {
	// N counts from 1; At is its start, from the flow's.
	N  int           `json:"n"`
	At time.Duration `json:"at_ns"`
	// Found is what the attempt found before starting anything: the
	// reader's verdict (patched, wrapper), or "manifest", "directory" or
	// "nothing" (stock).
	Found string `json:"found,omitempty"`
	// Action is what it did: "started", "waited", "took-complete",
	// "removed", "refused".
	Action string `json:"action"`
	// Exit is pg_basebackup's exit code when it ended within the
	// deadline.
	Exit *int `json:"exit,omitempty"`
	// Stopped is what the deadline did to the run.
	Stopped Policy `json:"stopped,omitempty"`
	// Note says more.
	Note string `json:"note,omitempty"`
}

// Outcome is one flow's result.
type Outcome struct {
	Flow
	Attempts []Attempt `json:"attempts"`
	// Converged says the flow took a backup as complete; Oracle is then
	// the ground truth about it, and TakenIncomplete says it was not.
	Converged       bool            `json:"converged"`
	Oracle          *oracle.Verdict `json:"oracle,omitempty"`
	TakenIncomplete bool            `json:"taken_incomplete"`
	// LiveRemoved counts clean-ups that removed directories while a
	// process of an earlier attempt's run was alive.
	LiveRemoved int `json:"live_removed"`
	// Samples counts the monitor's readings; FalseStalls those that said
	// "stalled" of a healthy run, with the first few in StallNotes.
	Samples     int      `json:"samples"`
	FalseStalls int      `json:"false_stalls"`
	StallNotes  []string `json:"stall_notes,omitempty"`
	// StallSeenAfter is, for a stall flow, the time from stopping the
	// sender to the first "stalled" reading (0: never seen).
	StallSeenAfter time.Duration `json:"stall_seen_after_ns,omitempty"`
	// MaxUpdateGap is the longest time between two successive UPDATE
	// TIMEs of one live run in a heartbeat phase, outside a stall, over
	// which the run wrote at least cadenceData (or an unknown amount),
	// less the time its writer waited for a CPU meanwhile (cpuGap);
	// SlowUpdateGap the longest over which it wrote less: the server was
	// slow, the writer had little to rewrite on.
	MaxUpdateGap  time.Duration `json:"max_update_gap_ns,omitempty"`
	SlowUpdateGap time.Duration `json:"slow_update_gap_ns,omitempty"`
	// Problems are the writer's broken promises the flow saw (exit 0
	// without "completed", say).
	Problems []string `json:"problems,omitempty"`
	// Wall is the flow's time to its end.
	Wall time.Duration `json:"wall_ns"`
	// Fresh flows only (see Flow.Fresh).
	FreshResult *FreshOutcome `json:"fresh_result,omitempty"`
	// Err says why the flow could not run (the harness's fault).
	Err string `json:"error,omitempty"`
}

// flowRun is one flow in progress.
type flowRun struct {
	env   *Env
	sc    Scenario
	flow  Flow
	dir   string
	start time.Time
	// base holds the directories the current run writes: dir, or the
	// attempt's own directory in a fresh flow.
	base string
	runs []*backupRun
	out  Outcome
	mon  *monitor
	mu   sync.Mutex // guards out's monitor fields
	// giveUp says no later attempt can help (see lookRefuse).
	giveUp bool
}

// Run runs flow f of scenario sc and returns its outcome.
func (e *Env) Run(ctx context.Context, sc Scenario, f Flow) Outcome {
	r := &flowRun{env: e, sc: sc, flow: f, dir: filepath.Join(e.Dir, f.ID()), start: time.Now(), out: Outcome{Flow: f}}
	r.base = r.dir
	if err := r.prepare(); err != nil {
		r.out.Err = err.Error()
		return r.out
	}
	before := e.mark()
	if f.Variant.HasStatusFile() && !f.Fresh {
		r.mon = newMonitor(r)
		go r.mon.run(ctx)
	}
	err := r.attempts(ctx)
	r.out.Wall = time.Since(r.start)
	if r.mon != nil {
		r.mon.stop()
	}
	if f.Fresh {
		r.measureLeft()
	}
	for _, b := range r.runs {
		proc.KillGroup(b.pid(), 10*time.Second)
	}
	if err != nil {
		r.out.Err = err.Error()
		return r.out
	}
	if r.out.Converged && !f.Unfaulted {
		r.judge(ctx, before)
		if f.Fresh && r.out.TakenIncomplete {
			r.falseCompletion(fmt.Sprintf("the oracle rejected b-%d: %s", r.out.FreshResult.Taken, r.out.Oracle.Reason))
		}
	}
	r.removeBackup()
	return r.out
}

// removeBackup removes what the flow's runs wrote, a backup of the whole
// source each, once the flow is judged; the status file stays, with the
// outcome in the report.
func (r *flowRun) removeBackup() {
	if r.flow.Fresh {
		for n := range r.out.Attempts {
			if err := os.RemoveAll(r.attemptDir(n + 1)); err != nil {
				r.logf("remove %s: %v", r.attemptDir(n+1), err)
			}
		}
		return
	}
	for _, d := range r.backupDirs() {
		if err := os.RemoveAll(d); err != nil {
			r.logf("remove %s: %v", d, err)
		}
	}
}

// paths of a flow's directories: the current run's under base, the
// status file, the same for every attempt, under dir.
func (r *flowRun) target() string     { return filepath.Join(r.base, "target") }
func (r *flowRun) walDir() string     { return filepath.Join(r.base, "wal") }
func (r *flowRun) statusFile() string { return filepath.Join(r.dir, "status", "backup_status") }
func (r *flowRun) tablespace(i int) string {
	return filepath.Join(r.base, fmt.Sprintf("ts%d", i+1))
}

// backupDirs are the directories a run of the flow fills: the target,
// the --waldir directory and one per tablespace.
func (r *flowRun) backupDirs() []string {
	dirs := []string{r.target(), r.walDir()}
	for i := range r.env.Server.Tablespaces {
		dirs = append(dirs, r.tablespace(i))
	}
	return dirs
}

// prepare makes the flow's directory and its status directory, readable
// by the owner's group (the reader's).
func (r *flowRun) prepare() error {
	if err := os.RemoveAll(r.dir); err != nil {
		return err
	}
	for _, d := range []string{r.dir, filepath.Dir(r.statusFile())} {
		if err := r.env.Owner.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	return nil
}

// logf writes one line about the flow.
func (r *flowRun) logf(format string, args ...any) {
	if r.env.Log != nil {
		fmt.Fprintf(r.env.Log, "taskflow %s/%s +%s: %s\n", r.sc.Name, r.flow.ID(),
			time.Since(r.start).Round(time.Second), fmt.Sprintf(format, args...))
	}
}

// args is the pg_basebackup command line; a Wrapper flow's runs it under
// pgbb-run, which is given the status file.
func (r *flowRun) args() []string {
	s := r.env.Server
	a := []string{filepath.Join(r.env.BinDirs[r.flow.Variant], "pg_basebackup"),
		"-D", r.target(), "-h", s.Host(), "-p", strconv.Itoa(s.Port), "-U", "postgres",
		"--checkpoint=fast", "--wal-method=stream", "--format=plain", "--max-rate=" + r.sc.MaxRate}
	for i, ts := range s.Tablespaces {
		a = append(a, "-T", ts+"="+r.tablespace(i))
	}
	if r.sc.WALDir {
		a = append(a, "--waldir="+r.walDir())
	}
	statusArgs := []string{"--status-file=" + r.statusFile(), fmt.Sprintf("--status-file-refresh=%d", r.sc.Refresh)}
	switch r.flow.Variant {
	case Patched:
		a = append(a, statusArgs...)
	case Wrapper:
		// -P: pgbb-run counts BYTES RECEIVED only from its progress
		// lines, and the stall starts once a tenth of the data arrived.
		a = append(a, "-P")
		a = append(append(append([]string{r.env.WrapperBin}, statusArgs...), "--"), a...)
	}
	return a
}

// appName is the application_name of the flow's connections, by which
// the stall finds its base backup sender.
func (r *flowRun) appName() string { return "pgbb-taskflow-" + r.flow.ID() }

// attempts runs the flow's attempts until one takes a backup as complete
// or none is left.
func (r *flowRun) attempts(ctx context.Context) error {
	backoff := time.Duration(r.sc.Backoff)
	n := r.sc.Attempts
	if r.flow.Unfaulted {
		n = 1
	}
	for i := 1; i <= n && !r.out.Converged; i++ {
		if i > 1 {
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff *= 2
		}
		attempt := r.attempt
		if r.flow.Fresh {
			attempt = r.freshAttempt
		}
		a, err := attempt(ctx, i)
		r.out.Attempts = append(r.out.Attempts, a)
		r.logf("attempt %d: found %q, %s%s", a.N, a.Found, a.Action, describeEnd(a))
		if err != nil {
			return err
		}
		if r.giveUp {
			// Nothing later attempts can do: an operator must look.
			return nil
		}
	}
	return nil
}

// describeEnd says how an attempt's run ended, for the log.
func describeEnd(a Attempt) string {
	switch {
	case a.Exit != nil && a.Note != "":
		return fmt.Sprintf(", exit %d: %s", *a.Exit, a.Note)
	case a.Exit != nil:
		return fmt.Sprintf(", exit %d", *a.Exit)
	case a.Stopped != "" && a.Note != "":
		return ", deadline: " + string(a.Stopped) + ": " + a.Note
	case a.Stopped != "":
		return ", deadline: " + string(a.Stopped)
	case a.Note != "":
		return ": " + a.Note
	}
	return ""
}

// attempt runs attempt n: judge what is there, clean up or wait, start a
// run, and meet the deadline.
func (r *flowRun) attempt(ctx context.Context, n int) (Attempt, error) {
	a := Attempt{N: n, At: time.Since(r.start)}
	deadline := time.Now().Add(time.Duration(r.sc.Deadline))
	if r.flow.Unfaulted {
		deadline = time.Now().Add(24 * time.Hour)
	}
	if n > 1 {
		start, err := r.lookBefore(ctx, &a, deadline)
		if err != nil || !start {
			return a, err
		}
	}
	b, exited, err := r.runAttempt(ctx, &a, deadline)
	if err != nil {
		return a, err
	}
	if exited {
		if *a.Exit == 0 {
			r.tookComplete(ctx, &a, b.output())
		} else {
			a.Note = errorLine(b.output())
		}
		return a, ctx.Err()
	}
	r.stopAtDeadline(ctx, &a, b)
	return a, ctx.Err()
}

// runAttempt starts attempt a's run and waits for it until deadline; it
// says whether the run exited by then (a.Exit holds its code).
func (r *flowRun) runAttempt(ctx context.Context, a *Attempt, deadline time.Time) (*backupRun, bool, error) {
	b, err := startRun(ctx, r.env.Owner, []string{"PGAPPNAME=" + r.appName(), "TZ=" + WriterTZ}, r.args())
	if err != nil {
		return nil, false, fmt.Errorf("start pg_basebackup: %w", err)
	}
	r.runs = append(r.runs, b)
	a.Action = "started"
	if !b.waitExit(ctx, time.Until(deadline)) {
		return b, false, nil
	}
	_, code := b.exited()
	a.Exit = &code
	return b, true, nil
}

// stopAtDeadline does to run b what the flow's policy does at a deadline.
func (r *flowRun) stopAtDeadline(ctx context.Context, a *Attempt, b *backupRun) {
	a.Stopped = r.flow.Policy
	if err := b.stop(r.flow.Policy); err != nil {
		a.Note = "stop: " + err.Error()
	}
	// Give a stopped run the time a scheduler gives before the next
	// attempt; a left one goes on.
	if r.flow.Policy != Leave {
		b.waitExit(ctx, 30*time.Second)
	}
}

// tookComplete records a run that exited 0, having printed out. Stock
// takes that as complete; a variant with a status file asks the reader
// (judgeExit0).
func (r *flowRun) tookComplete(ctx context.Context, a *Attempt, out string) {
	if r.flow.Variant == Stock {
		r.out.Converged = true
		return
	}
	rd, err := r.env.Reader.Read(ctx, r.statusFile())
	if err != nil {
		r.problem("exit 0, but the status file cannot be judged: %v", err)
		return
	}
	converged, problem := judgeExit0(rd, out)
	r.out.Converged = r.out.Converged || converged
	if problem != "" {
		r.problem("%s", problem)
	}
	if converged && !isCompleted(rd.Verdict) {
		a.Note = "exit 0: " + status.WarnCompleteUnsaid
	}
	a.Found = rd.Verdict
}

// isCompleted says whether a verdict of pgbb-status is a completed backup.
func isCompleted(verdict string) bool {
	return verdict == verdictCompleted || verdict == verdictNotDurable
}

// judgeExit0 judges what the reader said, rd, after a run with a status
// file (patched, or under the wrapper) that exited 0, having printed out:
// the backup is taken when the reader says completed, or when the run
// warned that the backup is complete but the status file could not say
// so (status.WarnCompleteUnsaid: the writer then removes the status
// file, or leaves one that does not say completed, and the exit code is
// the signal). Anything else is the writer's broken promise, returned as
// problem.
func judgeExit0(rd Reading, out string) (converged bool, problem string) {
	switch {
	case isCompleted(rd.Verdict):
		return true, ""
	case strings.Contains(out, status.WarnCompleteUnsaid):
		return true, ""
	}
	return false, fmt.Sprintf("exit 0, but pgbb-status says %s: %s", rd.Verdict, rd.Summary)
}

// problem records a broken promise of the writer.
func (r *flowRun) problem(format string, args ...any) {
	r.out.Problems = append(r.out.Problems, fmt.Sprintf(format, args...))
}

// lookBefore is the start of a retry: it judges what the last attempt
// left and cleans up. It returns whether to start a run now.
func (r *flowRun) lookBefore(ctx context.Context, a *Attempt, deadline time.Time) (bool, error) {
	if r.flow.Variant == Stock {
		return r.lookStock(a)
	}
	return r.lookStatus(ctx, a, deadline)
}

// lookStock does what a stock user can: backup_manifest means complete;
// any other remains are removed with rm -rf, with the tablespace and WAL
// directories the run was given.
func (r *flowRun) lookStock(a *Attempt) (bool, error) {
	if _, err := os.Stat(filepath.Join(r.target(), "backup_manifest")); err == nil {
		a.Found, a.Action = "manifest", "took-complete"
		r.out.Converged = true
		return false, nil
	}
	a.Found = "nothing"
	if _, err := os.Stat(r.target()); err == nil {
		a.Found = "directory"
	}
	live := r.liveRuns()
	for _, d := range r.backupDirs() {
		if err := os.RemoveAll(d); err != nil {
			return false, fmt.Errorf("rm -rf %s: %w", d, err)
		}
	}
	if live > 0 {
		r.out.LiveRemoved++
		a.Note = fmt.Sprintf("rm -rf while %d earlier run(s) still had live processes", live)
	}
	return true, nil
}

// look is what a retry does with the reader's verdict on what the last
// attempt left.
type look int

const (
	// lookWait: running, stalled, or not decided yet: wait, never remove.
	lookWait look = iota
	// lookTake: completed: take the backup.
	lookTake
	// lookRemove: failed, or in progress and dead: --remove-if-dead, then
	// start a run.
	lookRemove
	// lookStart: no status file: nothing to judge or clean up.
	lookStart
	// lookRefuse: completed-unconfirmed: the file says completed, but
	// its directories are missing or not its owner's. The backup is
	// neither taken (it is not known to be there) nor removed (it is
	// not known to be the flow's: pgbb-status --remove-if-dead never
	// removes a completed one); waiting does not change a final verdict,
	// and a new run into those directories could only fail or mix with
	// them, so the flow stops for an operator to look.
	lookRefuse
)

// decideLook maps the reader's verdict rd to what a retry does.
func decideLook(rd Reading) look {
	switch {
	case isCompleted(rd.Verdict):
		return lookTake
	case rd.Verdict == verdictUnconfirmed:
		return lookRefuse
	case rd.Verdict == verdictFailed || (rd.Verdict == verdictNot && rd.Final):
		return lookRemove
	case rd.Verdict == verdictNot && rd.Status.PID == 0:
		return lookStart
	}
	return lookWait
}

// lookStatus judges the status file (patched, wrapper) with pgbb-status:
// completed ends the flow, running or stalled is waited for until the
// deadline, failed or dead is removed with --remove-if-dead before a new
// run starts, and a completed file that its directories do not bear out
// is neither taken nor removed (see lookRefuse).
func (r *flowRun) lookStatus(ctx context.Context, a *Attempt, deadline time.Time) (bool, error) {
	for {
		rd, err := r.env.Reader.Read(ctx, r.statusFile())
		if err != nil {
			return false, err
		}
		if a.Found == "" {
			a.Found = rd.Verdict
		}
		switch decideLook(rd) {
		case lookTake:
			a.Action = "took-complete"
			r.out.Converged = true
			return false, nil
		case lookRefuse:
			a.Action, a.Note = "refused", "not taken, not removed: "+rd.Summary
			r.giveUp = true
			return false, nil
		case lookRemove:
			start, err := r.remove(ctx, a)
			if err != nil || start {
				return start, err
			}
			// Refused: a process of the run may still be on its
			// way out. Judge again, as an orchestrator polls.
		case lookStart:
			return true, nil
		}
		if a.Action != "refused" {
			// Running, stalled, or undecided: wait, never remove.
			a.Action = "waited"
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return false, err
		}
	}
}

// remove runs --remove-if-dead and says whether to start a run.
func (r *flowRun) remove(ctx context.Context, a *Attempt) (bool, error) {
	live := r.liveRuns()
	code, out, err := r.env.Reader.RemoveIfDead(ctx, r.statusFile())
	if err != nil {
		return false, err
	}
	if code != 0 {
		a.Action, a.Note = "refused", fmt.Sprintf("--remove-if-dead exit %d: %s", code, firstLine(out))
		return false, nil
	}
	a.Action = "removed"
	if live > 0 {
		r.out.LiveRemoved++
		a.Note = fmt.Sprintf("--remove-if-dead removed while %d earlier run(s) still had live processes", live)
	}
	return true, nil
}

// liveRuns counts earlier runs with a live process.
func (r *flowRun) liveRuns() int {
	n := 0
	for _, b := range r.runs {
		if b.alive() {
			n++
		}
	}
	return n
}

// judge hands the backup the flow took as complete to the oracle.
func (r *flowRun) judge(ctx context.Context, before workload.Mark) {
	if r.env.oracle != nil {
		r.env.oracle <- struct{}{}
		defer func() { <-r.env.oracle }()
	}
	scratch := filepath.Join(r.dir, "oracle")
	v, err := oracle.Judge(ctx, oracle.Input{
		BinDir: r.env.BinDirs[Patched], Acct: r.env.Owner, Target: r.target(),
		Format: "plain", WALMethod: "stream", Manifest: true, Scratch: scratch,
		Before: before, After: r.env.mark(), Timeout: 5 * time.Minute,
	})
	os.RemoveAll(scratch)
	if err != nil {
		r.out.Err = "oracle: " + err.Error()
		return
	}
	r.out.Oracle = &v
	r.out.TakenIncomplete = !v.Complete
	r.logf("oracle: complete %t %s", v.Complete, v.Reason)
}

// mark is the canary position, or zero without a workload.
func (e *Env) mark() workload.Mark {
	if e.Mark == nil {
		return workload.Mark{}
	}
	return e.Mark()
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errorLine returns the first line of s that reports an error, or its
// last line.
func errorLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range lines {
		if strings.Contains(l, "error: ") {
			return l
		}
	}
	return lines[len(lines)-1]
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
