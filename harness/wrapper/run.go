package wrapper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/status"
)

// Config is one run of the wrapper.
type Config struct {
	// StatusFile is the status file to write.
	StatusFile string
	// Refresh is the UPDATE INTERVAL: how often the file is rewritten
	// while data arrives and while waiting for WAL; 0: only at phase
	// changes.
	Refresh time.Duration
	// Argv is the pg_basebackup command line, program first.
	Argv []string
	// Stdin, Stdout are given to pg_basebackup (an *os.File is passed as
	// it is: -D - writes the backup to it); Stderr receives
	// pg_basebackup's standard error, unchanged, and the wrapper's
	// warnings.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Signals delivers SIGINT and SIGTERM sent to the wrapper.
	Signals <-chan os.Signal
	// Group is the process group pg_basebackup runs in, the wrapper's,
	// whose members are signalled and waited for; 0: only pg_basebackup
	// itself is (tests that run in-process).
	Group int
	// Grace is how long a signalled run is waited for before SIGKILL.
	Grace time.Duration
	// SyncFS is what the sync pass uses; nil: the operating system.
	SyncFS SyncFS
	// KeepOnSignal keeps what the run wrote when a signal ends it, as
	// pg_basebackup's own --no-clean does.
	KeepOnSignal bool
}

// Exit codes of Run besides pg_basebackup's own.
const (
	// ExitSyncFailed: pg_basebackup exited 0, but the wrapper's sync
	// pass failed or pg_basebackup reported an error during its sync.
	ExitSyncFailed = 1
	// ExitSignalBase plus the signal number: the run ended by a signal.
	ExitSignalBase = 128
)

// run is the state of one run.
type run struct {
	cfg   Config
	cmd   *Command
	w     *Writer
	st    *status.Status
	dirs  []*dirState
	watch *Watcher
	child *exec.Cmd
	done  chan *os.ProcessState
	eof   chan struct{}
	last  time.Time // of the last write
	// io and bytes are pg_basebackup's I/O counters and -P's byte count
	// when last looked at; progressAt is when either was last seen to
	// move.
	io         uint64
	bytes      uint64
	progressAt time.Time
}

// Run runs pg_basebackup as cfg says, writing the status file, and
// returns the exit code: pg_basebackup's, ExitSyncFailed, or
// ExitSignalBase plus a signal's number.
func Run(ctx context.Context, cfg Config) int {
	cwd, _ := os.Getwd()
	cmd, err := ParseCommand(cfg.Argv, cwd)
	if err != nil {
		fmt.Fprintf(cfg.Stderr, "pgbb-run: %v\n", err)
		return 64
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.SyncFS == nil {
		cfg.SyncFS = OSFS{}
	}
	if cmd.Informational {
		return passThrough(ctx, cfg, cmd)
	}
	if d := inside(cfg.StatusFile, cwd, cmd.LocalDirs()); d != "" {
		fmt.Fprintf(cfg.Stderr, "pgbb-run: the status file %s lies inside %s, which the backup writes: give a path outside it\n", cfg.StatusFile, d)
		return 64
	}
	r := &run{cfg: cfg, cmd: cmd, done: make(chan *os.ProcessState, 1), eof: make(chan struct{})}
	return r.main(ctx)
}

func (r *run) warn(format string, args ...any) {
	fmt.Fprintf(r.cfg.Stderr, "pgbb-run: warning: "+format+"\n", args...)
}

func (r *run) main(ctx context.Context) int {
	r.st = r.initial(ctx)
	r.dirs = lookDirs(r.cmd.LocalDirs())
	r.w = &Writer{Path: r.cfg.StatusFile, PID: os.Getpid(), Sync: r.cmd.Sync}
	r.st.Directories = directoryLines(r.dirs)
	if err := r.w.Write(r.st); err != nil {
		r.warn("could not write the status file: %v", err)
		if err := r.w.Remove(); err != nil {
			r.warn("could not remove the status file of an earlier run: %v", err)
		}
	}
	r.last = time.Now()
	if err := r.start(); err != nil {
		fmt.Fprintf(r.cfg.Stderr, "pgbb-run: %v\n", err)
		r.fail(fmt.Sprintf("error while %s: %v", r.phase(), err))
		return 1
	}
	ps, code, stopped := r.wait(ctx)
	if stopped {
		return code
	}
	return r.finish(ps)
}

// initial is the first version of the status file: in progress, starting.
func (r *run) initial(ctx context.Context) *status.Status {
	host, _ := os.Hostname()
	id := SelfIdentity()
	now := time.Now().UTC().Truncate(time.Second)
	return &status.Status{
		Version: status.FormatVersion, State: status.StateInProgress,
		StartTime: now, PID: os.Getpid(), Host: Clean(host),
		BootID: Clean(id.BootID), PIDNamespace: id.PIDNamespace, StartTicks: id.StartTicks,
		Label: Clean(r.cmd.Label), ProgramVersion: Clean(programVersion(ctx, r.cmd.Program)),
		Format: r.cmd.Format, Target: Clean(r.cmd.ServerTarget), WALMethod: r.cmd.WALMethod,
		Sync: r.cmd.Sync, Progress: true, UpdateInterval: int(r.cfg.Refresh / time.Second),
		Phase: status.PhaseStarting, UpdateTime: now,
	}
}

// programVersion is the first line of `pg_basebackup --version`, or
// "unknown".
func programVersion(ctx context.Context, program string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, program, "--version").Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil || line == "" {
		return "unknown"
	}
	return line
}

// start starts pg_basebackup, with --verbose, its standard error read by
// the watcher. It runs with the parent-death signal, which Linux sends
// when the thread that started it ends: that thread stays locked to the
// goroutine that waits for it.
func (r *run) start() error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting pg_basebackup: %w", err)
	}
	c := exec.Command(r.cmd.Program, r.cmd.RunArgs()...)
	c.Env = untranslated(os.Environ())
	c.Stdin, c.Stdout, c.Stderr = r.cfg.Stdin, r.cfg.Stdout, pw
	c.SysProcAttr = childAttr()
	r.child = c
	r.watch = NewWatcher(r.cfg.Stderr)
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with pg_basebackup
		if err := c.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = c.Wait()
		r.done <- c.ProcessState
	}()
	err = <-started
	pw.Close()
	if err != nil {
		pr.Close()
		return fmt.Errorf("starting pg_basebackup: %w", err)
	}
	go func() {
		r.watch.Run(pr)
		pr.Close()
		close(r.eof)
	}()
	return nil
}

// untranslated returns env with pg_basebackup's messages set to be
// untranslated (LC_MESSAGES=C): the watcher reads the phases, the WAL
// locations and the sync's errors from them, and a pg_basebackup built
// with NLS prints them in the user's language otherwise. LC_ALL would
// override LC_MESSAGES, so its value becomes LANG's and the other LC_*
// variables it overrode are dropped; LANGUAGE is dropped too.
func untranslated(env []string) []string {
	all := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LC_ALL="); ok {
			all = v
		}
	}
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "LC_ALL" || name == "LC_MESSAGES" || name == "LANGUAGE":
			continue
		case all != "" && (name == "LANG" || strings.HasPrefix(name, "LC_")):
			continue
		}
		out = append(out, kv)
	}
	if all != "" {
		out = append(out, "LANG="+all)
	}
	return append(out, "LC_MESSAGES=C")
}

// wait waits for pg_basebackup, rewriting the status file meanwhile. On
// a signal it stops the run and returns its exit code with stopped set.
func (r *run) wait(ctx context.Context) (ps *os.ProcessState, code int, stopped bool) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ps := <-r.done:
			return ps, 0, false
		case sig := <-r.cfg.Signals:
			return nil, r.stop(sig), true
		case <-ctx.Done():
			return nil, r.stop(syscall.SIGTERM), true
		case <-tick.C:
			r.refresh()
		}
	}
}

// phase is the phase pg_basebackup is in, as its standard error says.
func (r *run) phase() status.Phase {
	if r.watch == nil {
		return status.PhaseStarting
	}
	return r.watch.Observed().Phase
}

// refresh rewrites the status file when a directory appeared, the phase
// changed, or, in a phase with periodic updates, the interval passed
// and the run made progress (waiting for WAL: always).
//
// A periodic rewrite while data arrives says when pg_basebackup was last
// seen making progress (UPDATE TIME), which may be up to an interval
// before the rewrite: a run that stopped making progress then turns
// stalled for a reader when its last progress is the stall age old, not
// up to an interval later.
func (r *run) refresh() {
	o := r.watch.Observed()
	r.watchProgress(o)
	due := r.cfg.Refresh > 0 && time.Since(r.last) >= r.cfg.Refresh
	changed := notice(r.dirs) || o.Phase != r.st.Phase
	stamp := time.Now()
	if !changed && due {
		switch o.Phase {
		case status.PhaseWaitingForWAL:
			changed = true
		case status.PhaseReceiving:
			changed = r.progressAt.After(r.last)
			stamp = r.progressAt
		}
	}
	if !changed {
		return
	}
	r.st.Phase = o.Phase
	r.progress(o)
	r.writeAt(stamp)
}

// watchProgress notes when pg_basebackup was last seen making progress:
// its I/O counters or -P's byte count moved since the last look (always,
// if the counters cannot be read).
func (r *run) watchProgress(o Observed) {
	n, ok := ioCounter(r.child.Process.Pid)
	if !ok || n != r.io || o.BytesReceived != r.bytes {
		r.progressAt = time.Now()
	}
	r.io, r.bytes = n, o.BytesReceived
}

// progress takes the bytes of -P's last progress line into the status.
func (r *run) progress(o Observed) {
	r.st.BytesReceived, r.st.BytesTotal = o.BytesReceived, o.BytesTotal
	if r.st.BytesTotal < r.st.BytesReceived {
		r.st.BytesTotal = 0 // an estimate below what arrived says nothing
	}
}

// followMode makes the status file group-readable once pg_basebackup is
// seen to make the backup's files so (groupReadable): a reader in the
// owner's group may then read it, as it may the patched pg_basebackup's
// (written with the backup's file mode). It never goes back.
func (r *run) followMode() {
	if !r.w.GroupRead && groupReadable(r.dirs) {
		r.w.GroupRead = true
	}
}

// write rewrites the in-progress file; a failure only warns.
func (r *run) write() { r.writeAt(time.Now()) }

// writeAt rewrites the in-progress file with UPDATE TIME at; a failure
// only warns.
func (r *run) writeAt(at time.Time) {
	r.followMode()
	r.st.UpdateTime = at.UTC().Truncate(time.Second)
	r.st.Directories = directoryLines(r.dirs)
	if err := r.w.Write(r.st); err != nil {
		r.warn("could not write the status file: %v", err)
	}
	r.last = time.Now()
}

// stop ends the run on the wrapper's first signal: it forwards the signal
// to pg_basebackup and its group, waits for them (Grace, then SIGKILL),
// removes what the run wrote unless --no-clean, and writes failed. A
// second signal ends the wrapper at once.
func (r *run) stop(sig os.Signal) int {
	s, _ := sig.(syscall.Signal)
	r.signalRun(s)
	gone, again := r.waitGone(time.Now().Add(r.cfg.Grace))
	if again != nil {
		return r.exitNow(again)
	}
	if !gone {
		r.signalRun(syscall.SIGKILL)
		if _, again = r.waitGone(time.Now().Add(2 * time.Second)); again != nil {
			return r.exitNow(again)
		}
	}
	return r.stopped(s, r.phase())
}

// stopped cleans up after a run stopped by signal s in phase, unless
// --no-clean, and writes failed.
func (r *run) stopped(s syscall.Signal, phase status.Phase) int {
	notice(r.dirs)
	r.clean()
	r.fail(fmt.Sprintf("terminated by signal %s while %s", signalName(s), phase))
	return ExitSignalBase + int(s)
}

// clean removes what a run ended by a signal wrote (pg_basebackup does
// not: it has no signal handler), unless --no-clean or KeepOnSignal.
func (r *run) clean() {
	if r.cmd.NoClean || r.cfg.KeepOnSignal {
		return
	}
	if err := removeCreated(r.dirs); err != nil {
		r.warn("%v", err)
	}
}

// exitNow ends the run on a second signal: SIGKILL to the run, no
// clean-up, the status file left in progress (its PID dead).
func (r *run) exitNow(sig os.Signal) int {
	r.signalRun(syscall.SIGKILL)
	r.warn("second signal %v: exiting at once", sig)
	s, _ := sig.(syscall.Signal)
	return ExitSignalBase + int(s)
}

// signalRun sends sig to pg_basebackup and the other members of the
// group.
func (r *run) signalRun(sig syscall.Signal) {
	if p := r.child.Process; p != nil {
		_ = p.Signal(sig)
	}
	if r.cfg.Group > 0 {
		signalAll(groupMembers(r.cfg.Group, ""), sig)
	}
}

// waitGone waits until pg_basebackup has exited and no other member of
// the group is left, or deadline: gone says whether they are. A signal
// meanwhile is returned at once.
func (r *run) waitGone(deadline time.Time) (gone bool, again os.Signal) {
	for time.Now().Before(deadline) {
		select {
		case ps := <-r.done:
			r.done <- ps // keep it for the next look
			if r.cfg.Group == 0 || len(groupMembers(r.cfg.Group, "")) == 0 {
				return true, nil
			}
		case sig := <-r.cfg.Signals:
			return false, sig
		}
		select {
		case sig := <-r.cfg.Signals:
			return false, sig
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false, nil
}

// fail writes the final failed version.
func (r *run) fail(reason string) {
	r.followMode()
	r.st.State = status.StateFailed
	r.st.EndTime = time.Now().UTC().Truncate(time.Second)
	r.st.Reason = Clean(reason)
	r.st.Directories = directoryLines(r.dirs)
	if err := r.w.Write(r.st); err != nil {
		r.warn("could not write the status file: %v", err)
	}
}

// finish judges pg_basebackup's exit once it and its WAL child are done.
func (r *run) finish(ps *os.ProcessState) int {
	ws, _ := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		// Someone else's signal ended pg_basebackup alone: a stock WAL
		// child does not watch its parent and would stream on into the
		// directories about to be removed. Stop what is left of the run.
		r.stopLeft()
	}
	r.drain()
	o := r.watch.Observed()
	notice(r.dirs)
	switch {
	case ws.Signaled():
		r.clean()
		r.fail(fmt.Sprintf("pg_basebackup terminated by signal %s while %s", signalName(ws.Signal()), o.Phase))
		return ExitSignalBase + int(ws.Signal())
	case ps.ExitCode() != 0:
		r.fail(failReason(o, ps.ExitCode()))
		return ps.ExitCode()
	case o.SyncError != "":
		r.fail("error while syncing: pg_basebackup reported: " + o.SyncError)
		return ExitSyncFailed
	}
	return r.complete(o)
}

// drain waits (Grace at most) for the end of pg_basebackup's standard
// error, which its WAL child holds too, and for the rest of the group,
// so that every message it printed is taken into account.
func (r *run) drain() {
	// One deadline for both waits: a timer's channel fires once.
	deadline := time.NewTimer(r.cfg.Grace)
	defer deadline.Stop()
	select {
	case <-r.eof:
	case <-deadline.C:
		r.warn("pg_basebackup exited, but its standard error is still open (its WAL streaming child?)")
		if r.cfg.Group > 0 && len(groupMembers(r.cfg.Group, status.WriterName)) > 0 {
			r.warn("a pg_basebackup is still running in the process group")
		}
		return
	}
	for r.cfg.Group > 0 && len(groupMembers(r.cfg.Group, status.WriterName)) > 0 {
		select {
		case <-deadline.C:
			r.warn("a pg_basebackup is still running in the process group")
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopLeft stops the members of the run's process group left once
// pg_basebackup is gone: SIGTERM, then SIGKILL after Grace.
func (r *run) stopLeft() {
	if r.cfg.Group <= 0 {
		return
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		left := groupMembers(r.cfg.Group, "")
		if len(left) == 0 {
			return
		}
		signalAll(left, sig)
		wait := r.cfg.Grace
		if sig == syscall.SIGKILL {
			wait = 2 * time.Second
		}
		for end := time.Now().Add(wait); len(groupMembers(r.cfg.Group, "")) > 0 && time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// failReason is the REASON of a run that exited with code.
func failReason(o Observed, code int) string {
	if o.LastError != "" {
		return fmt.Sprintf("error while %s: %s", o.Phase, o.LastError)
	}
	return fmt.Sprintf("error while %s: pg_basebackup exited with status %d", o.Phase, code)
}

// complete finishes a run pg_basebackup ended with exit 0: the sync pass
// (unless --no-sync), then completed. A completed file that cannot be
// written (nor what it must record be found) is removed: the backup is
// kept, and the exit code is still 0.
func (r *run) complete(o Observed) int {
	durable := r.cmd.Sync && !r.cmd.ToStdout() && r.cmd.ServerTarget == ""
	if durable {
		// The sync pass comes after all pg_basebackup did; the phase
		// never goes back (after "finishing", it stays there).
		r.st.Phase = later(later(o.Phase, r.st.Phase), status.PhaseSyncing)
		// What pg_basebackup printed since the last look (it may have
		// finished within one) counts: after the data, all of it.
		r.progress(o)
		r.write()
		res := make(chan error, 1)
		go func() { res <- SyncPass(r.cfg.SyncFS, recordedPaths(r.dirs)) }()
		select {
		case sig := <-r.cfg.Signals:
			s, _ := sig.(syscall.Signal)
			return r.stopped(s, status.PhaseSyncing)
		case err := <-res:
			if err != nil {
				fmt.Fprintf(r.cfg.Stderr, "pgbb-run: error: %v\n", err)
				r.fail("error while syncing: " + err.Error())
				return ExitSyncFailed
			}
		}
	}
	if err := r.fillCompleted(o, durable); err != nil {
		r.unsaid(err)
		return 0
	}
	r.followMode()
	if err := r.w.Write(r.st); err != nil {
		r.unsaid(err)
	}
	return 0
}

// fillCompleted turns the status into the completed one: the WAL start
// and end points (from --verbose, or the manifest) and the system
// identifier (from the backup's files).
func (r *run) fillCompleted(o Observed, durable bool) error {
	info, err := BackupInfo{}, error(nil)
	if len(r.cmd.LocalDirs()) > 0 {
		info, err = ReadBackupInfo(r.cmd.Target, r.cmd.Format)
	} else {
		err = errors.New("the backup is not in a local directory (-D - or --target)")
	}
	if !info.HaveSystemID {
		return fmt.Errorf("system identifier unknown: %w", err)
	}
	if !o.Started {
		o.Started, o.StartLSN, o.Timeline = info.Started, info.StartLSN, info.Timeline
	}
	if !o.Ended {
		o.Ended, o.EndLSN = info.Ended, info.EndLSN
	}
	if !o.Started || !o.Ended {
		return errors.New("WAL start or end point unknown (no --verbose output for them, no manifest)")
	}
	s := r.st
	s.State, s.Durable = status.StateCompleted, durable
	s.Started, s.StartLSN, s.Timeline, s.SystemID = true, o.StartLSN, o.Timeline, info.SystemID
	s.EndLSN, s.EndTime = o.EndLSN, time.Now().UTC().Truncate(time.Second)
	s.Directories = directoryLines(r.dirs)
	return nil
}

// unsaid handles a completed status that cannot be written: no earlier
// version may stand for this run, so the file is removed.
func (r *run) unsaid(err error) {
	r.warn("%s: %v", status.WarnCompleteUnsaid, err)
	if err := r.w.Remove(); err != nil {
		r.warn("could not remove the status file: %v", err)
	}
}

// passThrough runs an informational command line (--help, --version)
// without a status file.
func passThrough(ctx context.Context, cfg Config, cmd *Command) int {
	c := exec.CommandContext(ctx, cmd.Program, cmd.Args...)
	c.Stdin, c.Stdout, c.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintf(cfg.Stderr, "pgbb-run: %v\n", err)
		return 1
	}
	return 0
}

// signalName names a signal as the REASON does: SIGTERM.
func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL",
		syscall.SIGHUP: "SIGHUP", syscall.SIGQUIT: "SIGQUIT", syscall.SIGABRT: "SIGABRT",
		syscall.SIGSEGV: "SIGSEGV", syscall.SIGPIPE: "SIGPIPE",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}

// inside returns the directory of dirs that holds file (relative to
// cwd), or "".
func inside(file, cwd string, dirs []string) string {
	file = absDir(file, cwd)
	for _, d := range dirs {
		if rel, err := filepath.Rel(d, file); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return d
		}
	}
	return ""
}

// later is the later of two phases.
func later(a, b status.Phase) status.Phase {
	if b.Order() > a.Order() {
		return b
	}
	return a
}
