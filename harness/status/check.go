package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Verdict is what a reader should do with a backup. Its zero value,
// NotComplete, is the safe one.
type Verdict int

const (
	// NotComplete: do not use the backup. There is no status file, it
	// cannot be read, it says "in progress" and the writing process is gone
	// (remove the directory and retry), or it says "in progress" and
	// whether the process runs cannot be told (another host, or an
	// uncertain check). Exit code 1.
	NotComplete Verdict = iota
	// Completed: the backup is complete and was synced to disk. Exit code 0.
	Completed
	// CompletedNotDurable: the backup is complete but pg_basebackup did
	// not sync all of it (--no-sync, -D -, --target, or a file it could
	// not open for the sync), so a crash of the machine since may have
	// lost part of it. Exit code 4.
	CompletedNotDurable
	// Failed: pg_basebackup exited with an error, named in
	// Status.Reason. Exit code 2.
	Failed
	// Running: the status file says "in progress" and names a process on
	// this host that is pg_basebackup and started no later than the
	// recorded start time, and it is not stalled. Exit code 3.
	Running
	// Stalled: like Running, the process is alive on this host, but it
	// makes no progress: it is stopped (SIGSTOP), or its status file is
	// older than StallAge in a phase with periodic rewrites. Do not remove
	// the backup; look at the process or the server. Exit code 5. Check
	// and Wait return it; Decide, which has no clock, says Running.
	Stalled
	// CompletedUnconfirmed: the status file says completed, but the
	// directories it records do not bear it out: one is missing, is not
	// a directory, is owned by another user than the status file, or
	// cannot be examined. The file does not describe a backup of its
	// owner's that is there (another user may have planted it in a shared
	// status directory); do not use the backup. Exit code 6. Check and
	// Wait return it; Decide, which does not look at the disk, says
	// Completed or CompletedNotDurable.
	CompletedUnconfirmed
)

// ExitCode returns the exit code pgbb-status uses for v:
// 0 Completed, 1 NotComplete, 2 Failed, 3 Running, 4 CompletedNotDurable,
// 5 Stalled, 6 CompletedUnconfirmed.
func (v Verdict) ExitCode() int {
	switch v {
	case CompletedUnconfirmed:
		return 6
	case Stalled:
		return 5
	case Completed:
		return 0
	case Failed:
		return 2
	case Running:
		return 3
	case CompletedNotDurable:
		return 4
	}
	return 1
}

// String returns the name of v used in JSON output.
func (v Verdict) String() string {
	switch v {
	case Completed:
		return "completed"
	case CompletedNotDurable:
		return "completed-not-durable"
	case Failed:
		return "failed"
	case Running:
		return "running"
	case Stalled:
		return "stalled"
	case CompletedUnconfirmed:
		return "completed-unconfirmed"
	}
	return "not-complete"
}

// MarshalText encodes v as its String.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// DefaultStartSlack is how much later than START TIME the writing process
// may have started and still count as the writer. START TIME is recorded
// at second resolution some time after pg_basebackup started, and the
// process start time derived from /proc is only as exact as the boot time.
const DefaultStartSlack = 2 * time.Second

// Liveness is the result of the liveness check of an "in progress" file.
type Liveness struct {
	// ThisHost is the host name of the machine the check ran on.
	ThisHost string `json:"this_host,omitempty"`
	// SameHost says the status file was written on this machine.
	SameHost bool `json:"same_host"`
	// Process describes the recorded pid on this machine, if examined.
	Process *ProcessInfo `json:"process,omitempty"`
	// Nested are the pg_basebackup processes in nested PID namespaces
	// that have the recorded pid there and may be the writer.
	Nested []NestedProcess `json:"nested,omitempty"`
	// Alive says the recorded process is pg_basebackup, still runs and is
	// the one that wrote the file.
	Alive bool `json:"alive"`
	// Certain says the check could tell; if false, Alive is false too
	// but the run may well be alive.
	Certain bool `json:"certain"`
	// Reason explains the result in a sentence.
	Reason string `json:"reason"`
}

// Decide turns a parsed status into a verdict, asking p whether an "in
// progress" run is alive; slack is as DefaultStartSlack. final says the
// state cannot change by itself any more: every verdict but Running and an
// uncertain NotComplete (another host, or a check that could not tell).
func Decide(s *Status, p Processes, slack time.Duration) (v Verdict, final bool, l *Liveness) {
	switch s.State {
	case StateCompleted:
		if s.Durable {
			return Completed, true, nil
		}
		return CompletedNotDurable, true, nil
	case StateFailed:
		return Failed, true, nil
	case StateInProgress:
		l = liveness(s, p, slack)
		switch {
		case l.Alive:
			return Running, false, l
		case !l.Certain:
			return NotComplete, false, l
		}
		return NotComplete, true, l
	}
	return NotComplete, true, nil
}

// liveness checks whether the process recorded in an "in progress" status
// is still the one running the backup.
func liveness(s *Status, p Processes, slack time.Duration) *Liveness {
	l := &Liveness{}
	host, err := p.Hostname()
	if err != nil {
		l.Reason = fmt.Sprintf("cannot tell whether pid %d runs: this machine's host name: %v", s.PID, err)
		return l
	}
	l.ThisHost = host
	if host != s.Host {
		l.Reason = fmt.Sprintf("written on host %q, this is %q: cannot tell from here whether pid %d still runs", s.Host, host, s.PID)
		return l
	}
	l.SameHost = true
	if doubt := bootDoubt(s, p); doubt != "" {
		l.Reason = doubt
		return l
	}
	ns, knowsNS := p.(PIDNamespaces)
	if !knowsNS || s.PIDNamespace == "" {
		// A writer that could not tell its namespace (not Linux,
		// or no /proc), or a reader that knows none: judge the pid
		// here, in doubt if it might be numbered elsewhere.
		judgeHere(l, s, p, slack, true)
		return l
	}
	mine, err := ns.PIDNamespace()
	switch {
	case err != nil:
		l.Reason = fmt.Sprintf("the writer's pid %d is numbered in PID namespace %s, and this reader's cannot be told (%v): cannot tell from here whether it runs",
			s.PID, s.PIDNamespace, err)
	case fmt.Sprintf("pid:[%d]", mine) == s.PIDNamespace:
		judgeHere(l, s, p, slack, false)
	case mine != InitialPIDNamespace:
		l.Reason = fmt.Sprintf("the writer's pid %d is numbered in PID namespace %s, and this reader runs in pid:[%d], which is not the host's: cannot tell from here whether it runs",
			s.PID, s.PIDNamespace, mine)
	default:
		judgeNested(l, s, ns, slack)
	}
	return l
}

// bootDoubt returns why the pid of s cannot be judged on this boot of
// this machine, or "" if it can: the status file records a BOOT ID that
// is not this machine's, or this machine's cannot be read. Another boot
// ID means that the machine restarted since the run started, and then the
// run is over, or that another machine has the same host name; the two
// cannot be told apart, so the answer is "cannot tell", never "dead".
func bootDoubt(s *Status, p Processes) string {
	b, ok := p.(Boots)
	if !ok || s.BootID == "" {
		return ""
	}
	id, err := b.BootID()
	switch {
	case err != nil:
		return fmt.Sprintf("the writer's pid %d belongs to boot %s, and this machine's boot ID cannot be read (%v): cannot tell from here whether it runs",
			s.PID, s.BootID, err)
	case id != s.BootID:
		return fmt.Sprintf("the writer's pid %d belongs to boot %s, this machine is in boot %s: it restarted since, or another machine has the host name %q; cannot tell from here whether the run goes on",
			s.PID, s.BootID, id, s.Host)
	}
	return ""
}

// judgeNested judges the pid of s, which the writer recorded in the PID
// namespace s.PIDNamespace, from the host's namespace, which sees every
// process of the machine: the writer is a live pg_basebackup whose last
// NSpid entry (its pid in its own namespace) is the recorded pid and whose
// namespace is the recorded one. None such means the run died; one whose
// namespace this reader may not see leaves it unknown.
func judgeNested(l *Liveness, s *Status, ns PIDNamespaces, slack time.Duration) {
	nested, err := ns.NestedWriters(s.PID)
	if err != nil {
		l.Reason = fmt.Sprintf("the writer's pid %d is numbered in PID namespace %s, and the processes of other namespaces cannot be told: %v", s.PID, s.PIDNamespace, err)
		return
	}
	var unseen, late []NestedProcess
	for _, n := range nested {
		m := compareStart(s, n.StartTicks, n.TicksAsOwn, n.StartTime, slack)
		switch {
		case n.NSpid[len(n.NSpid)-1] != s.PID || m == startOther || (n.Namespace != s.PIDNamespace && n.Namespace != ""):
			continue
		case n.Namespace == "":
			unseen = append(unseen, n)
		case m == startLater:
			late = append(late, n)
		default:
			l.Nested = []NestedProcess{n}
			l.Alive, l.Certain = true, true
			l.Reason = fmt.Sprintf("pid %d in PID namespace %s is %s (pid %d here), %s",
				s.PID, s.PIDNamespace, WriterName, n.PID, startedHow(s, n.StartTicks, n.TicksAsOwn, n.StartTime))
			return
		}
	}
	switch {
	case len(unseen) > 0:
		l.Nested = unseen
		l.Reason = fmt.Sprintf("a %s has pid %d in a PID namespace this reader may not see (pid %d here): cannot tell whether it is the writer, in %s",
			WriterName, s.PID, unseen[0].PID, s.PIDNamespace)
		return
	case len(late) > 0:
		n := late[0]
		l.Nested = late
		l.Reason = fmt.Sprintf("pid %d in PID namespace %s is a %s (pid %d here) %s",
			s.PID, s.PIDNamespace, WriterName, n.PID, startedLater(s, n.StartTicks, n.TicksAsOwn, n.StartTime))
		return
	}
	l.Certain = true
	l.Reason = fmt.Sprintf("no %s has pid %d in PID namespace %s, where the writer ran: the run died", WriterName, s.PID, s.PIDNamespace)
}

// judgeHere judges the pid of s as a pid of the namespace p sees. With
// doubt, a death found is made uncertain where the pid may be numbered in
// another namespace (see namespaceDoubt).
func judgeHere(l *Liveness, s *Status, p Processes, slack time.Duration, doubt bool) {
	info, err := p.Process(s.PID)
	if err != nil {
		l.Reason = fmt.Sprintf("cannot tell whether pid %d runs: %v", s.PID, err)
		return
	}
	l.Process = &info
	l.Certain = true
	// A dead run: what the pid is here, and what that means.
	var found, died string
	switch {
	case !info.Exists:
		found, died = fmt.Sprintf("pid %d is gone", s.PID), "the run died"
	case info.Zombie:
		found, died = fmt.Sprintf("pid %d has exited (zombie)", s.PID), "the run died"
	case info.Name != WriterName:
		found = fmt.Sprintf("pid %d is now %q, not %s", s.PID, info.Name, WriterName)
		died = "the run died and its pid was reused"
	default:
		found = judgeWriterStart(l, s, info, slack)
		died = "the run died and its pid was reused"
	}
	if found != "" {
		l.Reason = found + ": " + died
		if doubt {
			namespaceDoubt(l, found, s, p, slack)
		}
	}
}

// namespaceDoubt makes the certain death found in l uncertain where the
// recorded pid may be numbered in another PID namespace than the one p
// sees: the reader is not in the host's namespace (or cannot tell), or a
// pg_basebackup in a nested namespace has that pid there and did not start
// after START TIME. found says what the pid is here. A p without
// PIDNamespaces is trusted as it is.
func namespaceDoubt(l *Liveness, found string, s *Status, p Processes, slack time.Duration) {
	ns, ok := p.(PIDNamespaces)
	if !ok {
		return
	}
	doubt := func(format string, args ...any) {
		l.Certain = false
		l.Reason = fmt.Sprintf(format, args...)
	}
	inode, err := ns.PIDNamespace()
	switch {
	case err != nil:
		doubt("this reader's PID namespace cannot be told (%v), so pid %d, numbered in the writer's namespace, cannot be judged from here (here: %s)",
			err, s.PID, found)
		return
	case inode != InitialPIDNamespace:
		doubt("this reader runs in a PID namespace other than the host's (pid:[%d]), so pid %d, numbered in the writer's namespace, cannot be judged from here (here: %s)",
			inode, s.PID, found)
		return
	}
	nested, err := ns.NestedWriters(s.PID)
	if err != nil {
		doubt("%s, but whether a %s in another PID namespace has pid %d there cannot be told: %v", found, WriterName, s.PID, err)
		return
	}
	for _, n := range nested {
		// One that started later by the wall clock counts: the clock
		// may have been set forward since.
		if compareStart(s, n.StartTicks, n.TicksAsOwn, n.StartTime, slack) != startOther {
			l.Nested = append(l.Nested, n)
		}
	}
	if len(l.Nested) > 0 {
		n := l.Nested[0]
		doubt("a %s in another PID namespace has pid %d there (pid %d here, started at %s): cannot tell whether it is the writer (here: %s)",
			WriterName, s.PID, n.PID, n.StartTime.UTC().Format(time.RFC3339), found)
	}
}

// ErrIsDirectory is returned (wrapped) when the path given as the status
// file is a directory: pg_basebackup writes its status file only where
// --status-file says, never into a backup directory.
var ErrIsDirectory = errors.New("is a directory: give the status file that pg_basebackup wrote with --status-file")

// Report is the result of Check: what was found, and the verdict.
type Report struct {
	// Path is the path examined, as given.
	Path string `json:"path"`
	// StatusFile is the status file read (or looked for): Path.
	StatusFile string `json:"status_file"`
	// Owner is the owner of the status file, if it was opened: the user
	// whose run it describes, if anyone's.
	Owner *FileOwner `json:"owner,omitempty"`
	// Verdict decides; ExitCode is Verdict.ExitCode().
	Verdict  Verdict `json:"verdict"`
	ExitCode int     `json:"exit_code"`
	// Final says the verdict cannot change by itself any more; see Decide.
	// A missing or unreadable status file is not final: the run may not
	// have written it yet. A directory is final (Err wraps
	// ErrIsDirectory): waiting does not turn it into a status file.
	Final bool `json:"final"`
	// Summary says the verdict in a sentence.
	Summary string `json:"summary"`
	// Status is the parsed status file, if it could be read.
	Status *Status `json:"status,omitempty"`
	// Unconfirmed says why a status file that says completed is not
	// borne out by its directories (Verdict CompletedUnconfirmed).
	Unconfirmed string `json:"unconfirmed,omitempty"`
	// Err says why the status file could not be used; Error is its text.
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`
	// Liveness is the liveness check of an "in progress" file.
	Liveness *Liveness `json:"liveness,omitempty"`
	// Progress is what an "in progress" file with progress lines says
	// about how far the run got; with the verdict Stalled, why.
	Progress *Progress `json:"progress,omitempty"`
	// TimedOut says Wait gave up before a final verdict.
	TimedOut bool `json:"timed_out,omitempty"`
	// OtherRun is the PID of the run that wrote the status file when
	// WithRunPID named another: the file is not the caller's run's
	// (Verdict NotComplete, not final).
	OtherRun int `json:"other_run,omitempty"`
}

// config holds the options of Check, Wait and RemoveIfDead.
type config struct {
	procs Processes
	slack time.Duration
	now   func() time.Time
	lease time.Duration
	// leaseClock is the clock a lease is observed on (the system's if
	// zero).
	leaseClock leaseClock
	// between, if set, is called by RemoveIfDead between its steps
	// (tests: to change the disk there).
	between func(step string)
	// runPID, if not zero, is the pid of the run the caller started
	// (WithRunPID).
	runPID int
}

// hook calls c.between, if set, with the caller's credentials.
func (c config) hook(step string) {
	if c.between != nil {
		asCaller(func() error { c.between(step); return nil })
	}
}

// newConfig applies opts to the defaults.
func newConfig(opts []Option) config {
	c := config{procs: Procfs{}, slack: DefaultStartSlack, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Option changes how Check and Wait decide.
type Option func(*config)

// WithProcesses makes the liveness check ask p instead of Procfs{}. Unless
// p implements PIDNamespaces, its pids are taken to be the writer's.
func WithProcesses(p Processes) Option { return func(c *config) { c.procs = p } }

// WithStartSlack sets how much later than START TIME the writing process
// may have started (default DefaultStartSlack).
func WithStartSlack(d time.Duration) Option { return func(c *config) { c.slack = d } }

// WithRunPID makes Check and Wait judge the status file only as the file
// of the run whose process id is pid, the pg_basebackup the caller
// started: a file written by another process (an earlier run's, left in
// place because the caller's run was killed before its first write, or
// has not written yet) is NotComplete, not final, whatever it says.
func WithRunPID(pid int) Option { return func(c *config) { c.runPID = pid } }

// WithClock makes Check, Wait and RemoveIfDead take the time from now
// instead of time.Now (tests).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Check examines the status file at path (the --status-file that
// pg_basebackup was given) and decides. It never returns Completed or
// CompletedNotDurable unless the status file parsed and says so. A missing
// file is NotComplete and not final: the run has not written it yet, or
// was never given it. A directory is refused (NotComplete, final, Err
// wrapping ErrIsDirectory): pg_basebackup writes no status file into a
// backup directory.
//
// A live run is Running, or Stalled when its process is stopped or, in a
// phase with periodic rewrites (Phase.Heartbeat) and a non-zero UPDATE
// INTERVAL, its UPDATE TIME is older than StallAge. Report.Progress has
// the percentage and an estimate of the time left, from the rate since
// START TIME (Wait uses the rate between the samples it saw).
func Check(path string, opts ...Option) *Report {
	return check(path, newConfig(opts), nil)
}

// check is Check with the first sample Wait saw of the run, if any.
func check(path string, c config, first *sample) *Report {
	r := &Report{Path: path, StatusFile: path}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		r.unreadable(fmt.Errorf("%s %w", path, ErrIsDirectory), path+" "+ErrIsDirectory.Error())
		r.Final = true
		return r
	}
	s, fi, err := readStatusFile(path)
	if fi != nil {
		r.Owner = fileOwner(fi)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r.unreadable(err, "no status file: the run has not written it yet, or was not given this --status-file; not known to be complete")
	case err != nil:
		return r.unreadable(err, "status file cannot be used")
	}
	r.Status = s
	if c.runPID != 0 && s.PID != c.runPID {
		r.OtherRun = s.PID
		r.Verdict, r.ExitCode = NotComplete, NotComplete.ExitCode()
		r.Summary = fmt.Sprintf("the status file is another run's (PID %d, STATUS %s), not the one of pid %d: that run has not written it yet, or died before its first write; not known to be complete", s.PID, s.State, c.runPID)
		return r
	}
	r.Verdict, r.Final, r.Liveness = Decide(s, c.procs, c.slack)
	if r.Verdict == Completed || r.Verdict == CompletedNotDurable {
		if r.Unconfirmed = unconfirmed(s, r.Owner); r.Unconfirmed != "" {
			r.Verdict = CompletedUnconfirmed
		}
	}
	var proc *ProcessInfo
	if r.Liveness != nil {
		proc = r.Liveness.Process
	}
	dead := r.Verdict == NotComplete && r.Final
	r.Progress = progress(s, c.now(), first, proc, r.Verdict == Running, dead)
	if r.Progress != nil && r.Progress.Stalled {
		r.Verdict = Stalled
	}
	r.ExitCode = r.Verdict.ExitCode()
	switch r.Verdict {
	case Completed:
		r.Summary = "completed and durable"
	case CompletedUnconfirmed:
		r.Summary = "the status file says completed, but " + r.Unconfirmed +
			": it does not describe a backup of its owner's that is there; do not use it"
	case CompletedNotDurable:
		if s.Sync {
			r.Summary = "completed but not durable (not every file was synced by pg_basebackup): a crash of the machine since may have lost part of it"
		} else {
			r.Summary = "completed but not durable (--no-sync): a crash of the machine since may have lost part of it"
		}
	case Failed:
		r.Summary = "failed: " + s.Reason
	case Running:
		r.Summary = "still running: " + r.Liveness.Reason
	case Stalled:
		r.Summary = "alive but stalled: " + r.Progress.Note + "; do not remove it while its process lives"
	default:
		if r.Liveness != nil && r.Liveness.Certain {
			r.Summary = "not complete, and no longer running: " + r.Liveness.Reason + "; remove the backup before retrying"
		} else if r.Liveness != nil {
			r.Summary = "in progress, but whether it still runs is unknown: " + r.Liveness.Reason
		} else {
			r.Summary = "not complete"
		}
	}
	return r
}

// unreadable fills in r for a status file that cannot be used.
func (r *Report) unreadable(err error, summary string) *Report {
	r.Verdict = NotComplete
	r.ExitCode = NotComplete.ExitCode()
	r.Final = false
	r.Err = err
	r.Error = err.Error()
	r.Summary = summary
	return r
}

// Wait checks path every interval until the verdict is final or ctx is
// done, and returns the last report; if ctx ended first, its TimedOut is
// set. Give ctx a deadline: a status file that is never written is never
// final.
//
// The rate in Report.Progress is measured between the first "in progress"
// file of the run that Wait saw (in the phase receiving data) and the
// latest, once they are a second apart; before that, from START TIME.
func Wait(ctx context.Context, path string, interval time.Duration, opts ...Option) *Report {
	c := newConfig(opts)
	t := time.NewTicker(interval)
	defer t.Stop()
	var first *sample
	for {
		r := check(path, c, first)
		if r.Final {
			return r
		}
		if s := r.Status; s != nil && s.State == StateInProgress && s.Phase == PhaseReceiving &&
			!s.UpdateTime.IsZero() && !first.sameRun(s) {
			first = &sample{pid: s.PID, start: s.StartTime, at: s.UpdateTime, bytes: s.BytesReceived}
		}
		select {
		case <-ctx.Done():
			r.TimedOut = true
			return r
		case <-t.C:
		}
	}
}
