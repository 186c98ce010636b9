package explore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/status"
)

// The rules of a failing run's crash states (Config.Failing), besides
// RuleNotTorn and RuleTornNeverParses, which hold for every run.
const (
	// RuleNeverCompleted: the status file of a run that fails never says
	// "completed".
	RuleNeverCompleted = "failing-never-completed"
	// RuleThisRun: a status file that parses is this run's (its PID is
	// the pid that wrote it on the layer).
	RuleThisRun = "status-is-this-runs"
	// RuleFailedReason: a status file that says "failed" gives a REASON
	// that names what failed (Failing.Reason: the signal, the step).
	RuleFailedReason = "failed-names-reason"
	// RuleFailedAfterWALChild: "failed" is never there (on disk after a
	// crash, or to a live reader) while the WAL streaming child still
	// works: no operation of another process of the run follows it.
	RuleFailedAfterWALChild = "failed-after-wal-child"
	// RuleFailedIsLast: "failed" is never there while the run still
	// changes the backup directories (the clean-up): a scheduler that
	// reads "failed" may retry at once, into the same directories.
	RuleFailedIsLast = "failed-is-last"
	// RuleFailedAtExit: the run exits with "failed" as its last version,
	// and (unless SYNC: off) a power loss after the exit leaves it.
	RuleFailedAtExit = "failed-durable-at-exit"
	// RuleRetryNotBlocked: every crash state lets a scheduler that uses
	// the reader start again: the backup directories are empty or gone
	// (a retry can start), or pgbb-status --remove-if-dead, the run
	// being dead, would clear them.
	RuleRetryNotBlocked = "retry-not-blocked"
)

// Failing says that the journal is a run that fails, and what to expect
// of it.
type Failing struct {
	// Reason is a word the REASON of a "failed" status file must hold
	// (the signal's name, the step that failed).
	Reason string
	// Dirs are the backup directories, relative to the layer's root (the
	// target and the tablespace directories); default: the journal's.
	Dirs []string
	// Remover judges whether --remove-if-dead would clear a state whose
	// directories are not empty; nil: such states are undecided.
	Remover Remover
}

// Remover says whether `pgbb-status --remove-if-dead`, run once the run
// is over (its pid gone), would remove what a crash state holds.
type Remover interface {
	// Removes judges the state s: ok says everything recorded would be
	// removed (a dry run's exit 0); why says what was planned or why it
	// was refused. An error means it could not judge.
	Removes(ctx context.Context, s *powerfs.Snapshot) (ok bool, why string, err error)
}

// FailResult is what the exploration of a failing run found besides the
// counts every exploration has.
type FailResult struct {
	// RunPID is the pid that wrote the status file; WALChildOps counts
	// the operations of the run's other processes (the WAL streaming
	// child), LastChildOp the last one's number (0: the journal cannot
	// tell when the child was gone).
	RunPID      int `json:"run_pid"`
	WALChildOps int `json:"wal_child_ops"`
	LastChildOp int `json:"last_child_op,omitempty"`
	// FailedVisible is the operation after which a live reader saw
	// "failed" (0: never); LastBackupOp the last operation that changed
	// the backup directories.
	FailedVisible int `json:"failed_visible,omitempty"`
	LastBackupOp  int `json:"last_backup_op,omitempty"`
	// FinalState is the status the run ended with (what it left, as the
	// programs saw it at the exit).
	FinalState string `json:"final_state"`
	// RetryFree counts the states whose backup directories are empty or
	// gone; Removable those --remove-if-dead would clear; Judged the
	// distinct shapes the Remover judged (each materialised once).
	RetryFree int `json:"retry_free"`
	Removable int `json:"removable"`
	Judged    int `json:"shapes_judged"`
	// UndecidedWhy counts the undecided states by reason.
	UndecidedWhy map[string]int `json:"undecided_why,omitempty"`
}

// FailStart returns the index in the log of the first operation of the
// failure: the earlier of the mark "failing" (set when the fault was
// injected) and the first operation the layer failed on purpose. 0 when
// neither is there.
func FailStart(j *powerfs.Journal) int {
	start := -1
	if seq, ok := j.MarkSeq(MarkFailing); ok {
		start = seq
	}
	for i, op := range j.Log {
		if op.Injected {
			if start < 0 || i < start {
				start = i
			}
			break
		}
	}
	return max(start, 0)
}

// MarkFailing is the journal mark a failing run sets where its fault is
// injected.
const MarkFailing = "failing"

// FailChecker judges the crash states of a run that fails.
type FailChecker struct {
	cfg    Failing
	status string
	parsed map[string]parsed
	whole  map[string]bool
	res    *FailResult
	// final is the run's last status, as the programs saw it at the exit.
	final *status.Status
	// removals caches the Remover's verdicts by the shape of a state.
	removals map[string]removal
	ctx      context.Context
	err      error
}

// removal is a Remover's verdict.
type removal struct {
	ok  bool
	why string
}

// NewFailChecker returns the checker of the failing run j, whose status
// file is statusRel and whose state at the exit, as the programs saw it,
// is ref.
func NewFailChecker(ctx context.Context, j *powerfs.Journal, statusRel string, ref *powerfs.Snapshot, cfg Failing) (*FailChecker, error) {
	c := &FailChecker{cfg: cfg, status: statusRel, parsed: map[string]parsed{}, whole: map[string]bool{},
		res: &FailResult{UndecidedWhy: map[string]int{}}, removals: map[string]removal{}, ctx: ctx}
	if len(c.cfg.Dirs) == 0 {
		c.cfg.Dirs = backupDirs(j)
	}
	if tr, ok := c.cfg.Remover.(*TreeRemover); ok && len(tr.Dirs) == 0 {
		tr.Dirs = c.cfg.Dirs
	}
	if data, err := ref.ReadFile(statusRel); err == nil {
		if st, err := status.Parse(data); err == nil {
			c.final = st
			c.res.FinalState = st.State.String()
		}
	}
	if c.final == nil {
		c.res.FinalState = "none or unreadable"
	}
	c.scan(j)
	return c, nil
}

// backupDirs returns the target and tablespace directories a journal
// names, relative to its mount point ("target" when it names none).
func backupDirs(j *powerfs.Journal) []string {
	mp := j.Meta["mountpoint"]
	abs := []string{j.Meta["target"]}
	if ts := j.Meta["tablespaces"]; ts != "" {
		abs = append(abs, strings.Split(ts, ",")...)
	}
	var out []string
	for _, a := range abs {
		if rel, ok := strings.CutPrefix(a, mp+"/"); ok && mp != "" {
			out = append(out, rel)
		}
	}
	if len(out) == 0 {
		out = []string{"target"}
	}
	return out
}

// scan finds in the log the pid that writes the status file, the
// operations of the run's other processes, and the last change of the
// backup directories.
func (c *FailChecker) scan(j *powerfs.Journal) {
	for _, op := range j.Log {
		if c.isStatus(op.Path) && op.Errno == 0 && (op.Kind == powerfs.OpWrite || op.Kind == powerfs.OpCreate) {
			c.res.RunPID = int(op.PID)
			break
		}
	}
	for _, op := range j.Log {
		if op.PID != 0 && int(op.PID) != c.res.RunPID && c.res.RunPID != 0 {
			c.res.WALChildOps++
			c.res.LastChildOp = op.Seq
		}
		if changes(op) && op.Kind != powerfs.OpFsync && op.Kind != powerfs.OpFsyncDir && op.Kind != powerfs.OpOpen &&
			(c.inBackup(op.Path) || c.inBackup(op.NewPath)) {
			c.res.LastBackupOp = op.Seq
		}
	}
}

// isStatus says whether rel is the status file or one of its temporary
// files.
func (c *FailChecker) isStatus(rel string) bool {
	_, tmp := status.ParseTempPath(c.status, rel)
	return rel == c.status || tmp
}

// inBackup says whether rel lies in a backup directory (not the
// directory itself).
func (c *FailChecker) inBackup(rel string) bool {
	for _, d := range c.cfg.Dirs {
		if strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// StatusWrite says whether op writes the status file or its temporary
// file.
func (c *FailChecker) StatusWrite(op powerfs.Op) bool {
	return op.Kind == powerfs.OpWrite && c.isStatus(op.Path)
}

// NoteWrite remembers a whole write of the status file or its temporary
// file at offset 0.
func (c *FailChecker) NoteWrite(op powerfs.Op) {
	if c.StatusWrite(op) && op.Off == 0 {
		c.whole[string(op.Data())] = true
	}
}

// Result returns what the checker found besides the verdicts.
func (c *FailChecker) Result() *FailResult { return c.res }

// Err returns the first error of the Remover.
func (c *FailChecker) Err() error { return c.err }

// parse parses a status file's content once.
func (c *FailChecker) parse(data []byte) parsed {
	p, ok := c.parsed[string(data)]
	if !ok {
		p.st, p.err = status.Parse(data)
		c.parsed[string(data)] = p
	}
	return p
}

// step follows the live view: after op, as the programs see the status
// file, does it say "failed" for the first time?
func (c *FailChecker) step(rp *powerfs.Replayer, op powerfs.Op) {
	if c.res.FailedVisible > 0 || op.Errno != 0 {
		return
	}
	touches := op.NewPath == c.status || (op.Path == c.status && op.Kind != powerfs.OpFsync && op.Kind != powerfs.OpFsyncDir)
	if !touches {
		return
	}
	data, err := readLive(rp.FS(), c.status)
	if err != nil {
		return
	}
	if p := c.parse(data); p.err == nil && p.st.State == status.StateFailed {
		c.res.FailedVisible = op.Seq
	}
}

// readLive reads a file of the replayed file system as the programs see
// it now.
func readLive(fsys *powerfs.FS, rel string) ([]byte, error) {
	ino := powerfs.RootIno
	for _, el := range strings.Split(rel, "/") {
		a, e := fsys.Lookup(ino, el)
		if e != 0 {
			return nil, e
		}
		ino = a.Ino
	}
	a, e := fsys.GetAttr(ino)
	if e != 0 {
		return nil, e
	}
	buf := make([]byte, a.Size)
	k, e := fsys.Read(ino, 0, buf)
	if e != 0 {
		return nil, e
	}
	return buf[:k], nil
}

// liveViolations are the rules the live view breaks: "failed" seen by a
// reader of the running system before the WAL child was done, or before
// the last change of the backup directories.
func (c *FailChecker) liveViolations() []Violation {
	r := c.res
	if r.FailedVisible == 0 {
		return nil
	}
	id := StateID{Prefix: r.FailedVisible}.String() + " (live)"
	var out []Violation
	if r.LastChildOp > r.FailedVisible {
		out = append(out, Violation{State: id, Rule: RuleFailedAfterWALChild, Message: fmt.Sprintf(
			"a reader saw \"failed\" after operation #%d, and the WAL streaming child still operated at #%d", r.FailedVisible, r.LastChildOp)})
	}
	if r.LastBackupOp > r.FailedVisible {
		out = append(out, Violation{State: id, Rule: RuleFailedIsLast, Message: fmt.Sprintf(
			"a reader saw \"failed\" after operation #%d, and the run still changed the backup directories at #%d", r.FailedVisible, r.LastBackupOp)})
	}
	return out
}

// judgeState judges one crash state after the operation numbered prefix.
func (c *FailChecker) judgeState(s *powerfs.Snapshot, torn bool, prefix int) (Verdict, string, string) {
	data, err := s.ReadFile(c.status)
	var st *status.Status
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Broken, RuleNotTorn, err.Error()
	default:
		p := c.parse(data)
		if p.err != nil {
			return Broken, RuleNotTorn, fmt.Sprintf("the status file (%d bytes) does not parse: %v", len(data), p.err)
		}
		if torn && !c.whole[string(data)] {
			return Broken, RuleTornNeverParses, fmt.Sprintf("a torn write left a status file that parses as %s", p.st.State)
		}
		st = p.st
		if v, rule, msg := c.judgeStatus(st, prefix); v == Broken {
			return v, rule, msg
		}
	}
	return c.judgeRetry(s, st)
}

// judgeStatus applies the rules on a status file that parses.
func (c *FailChecker) judgeStatus(st *status.Status, prefix int) (Verdict, string, string) {
	r := c.res
	switch {
	case st.State == status.StateCompleted:
		return Broken, RuleNeverCompleted, "the run fails, and its status file says completed"
	case r.RunPID != 0 && st.PID != r.RunPID:
		return Broken, RuleThisRun, fmt.Sprintf("the status file names pid %d; the run that wrote it on the layer is %d", st.PID, r.RunPID)
	case st.State != status.StateFailed:
		return NothingClaimed, "", ""
	case c.cfg.Reason != "" && !strings.Contains(st.Reason, c.cfg.Reason):
		return Broken, RuleFailedReason, fmt.Sprintf("the status file says failed with REASON %q, which does not name %q", st.Reason, c.cfg.Reason)
	case r.LastChildOp > prefix:
		return Broken, RuleFailedAfterWALChild, fmt.Sprintf("\"failed\" is on disk after operation #%d, and the WAL streaming child still operated at #%d", prefix, r.LastChildOp)
	case r.LastBackupOp > prefix:
		return Broken, RuleFailedIsLast, fmt.Sprintf("\"failed\" is on disk after operation #%d, and the run still changed the backup directories at #%d", prefix, r.LastBackupOp)
	}
	return NothingClaimed, "", ""
}

// judgeRetry judges whether the state lets a scheduler start again.
func (c *FailChecker) judgeRetry(s *powerfs.Snapshot, st *status.Status) (Verdict, string, string) {
	shape, empty := c.shape(s)
	if empty {
		c.res.RetryFree++
		return NothingClaimed, "", "the backup directories are empty or gone: a retry can start"
	}
	if st == nil {
		// No status file beside directories that hold something: nothing
		// proves the run dead. The series writes its first version
		// (synced) before it creates anything and replaces every version
		// by a rename, so it could have prevented this.
		return Broken, RuleRetryNotBlocked, "no status file, and the backup directories hold " + shape +
			": nothing proves the run dead (a stock user faces the same: the log is the only signal)"
	}
	if c.cfg.Remover == nil {
		c.res.UndecidedWhy["no remover"]++
		return Undecided, "", "the backup directories hold " + shape + "; no remover to judge --remove-if-dead"
	}
	data, _ := s.ReadFile(c.status)
	key := string(data) + "\x00" + shape
	rm, ok := c.removals[key]
	if !ok {
		var err error
		rm.ok, rm.why, err = c.cfg.Remover.Removes(c.ctx, s)
		if err != nil {
			if c.err == nil {
				c.err = err
			}
			return Undecided, "", "could not judge: " + err.Error()
		}
		c.removals[key] = rm
		c.res.Judged++
	}
	switch {
	case rm.ok:
		c.res.Removable++
		return NothingClaimed, "", "--remove-if-dead would clear it: " + rm.why
	case strings.Contains(rm.why, "backup_manifest"):
		// By design: a backup that has its manifest is left for
		// pg_verifybackup, whatever the status file says.
		c.res.UndecidedWhy["backup_manifest in the target: left for pg_verifybackup"]++
		return Undecided, "", "--remove-if-dead refuses: " + rm.why
	}
	return Broken, RuleRetryNotBlocked, fmt.Sprintf("the status file says %s, the backup directories hold %s, and --remove-if-dead (the run dead) refuses: %s",
		st.State, shape, rm.why)
}

// shape describes what the backup directories hold: each one's top-level
// names (what --remove-if-dead judges a directory by, besides kinds and
// owners, which the run's files share), and whether all are empty or
// gone.
func (c *FailChecker) shape(s *powerfs.Snapshot) (string, bool) {
	var parts []string
	empty := true
	for _, d := range c.cfg.Dirs {
		names, err := s.ReadDir(d)
		if err != nil {
			parts = append(parts, d+" (gone)")
			continue
		}
		if len(names) > 0 {
			empty = false
		}
		parts = append(parts, fmt.Sprintf("%s: [%s]", d, strings.Join(names, " ")))
	}
	return strings.Join(parts, "; "), empty
}

// judgeExit judges the durable state once the run is over: it left
// "failed" (with its REASON), and that version is durable unless the
// run did not sync.
func (c *FailChecker) judgeExit(s *powerfs.Snapshot, last int) (Verdict, string, string) {
	if c.final == nil || c.final.State != status.StateFailed {
		return Broken, RuleFailedAtExit, "the run failed and exited, and its status file says " + c.res.FinalState + ", not failed"
	}
	v, rule, msg := c.judgeState(s, false, last)
	if v == Broken {
		return v, rule, msg
	}
	data, err := s.ReadFile(c.status)
	if c.final.Sync {
		var got string
		switch {
		case err != nil:
			got = "no status file"
		case c.parse(data).err != nil:
			got = "a status file that does not parse"
		case c.parse(data).st.State != status.StateFailed:
			got = "status " + c.parse(data).st.State.String()
		}
		if got != "" {
			return Broken, RuleFailedAtExit, "the run exited having written \"failed\" (SYNC: on), but after a power loss: " + got
		}
	}
	return v, rule, msg
}
