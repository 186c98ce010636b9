package explore

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/status"
)

// Verdict is a checker's judgement of one crash state.
type Verdict int

const (
	// NothingClaimed: no status file, or one that says "in progress" or
	// "failed": such a backup is not used, nothing needs to be there.
	NothingClaimed Verdict = iota
	// Complete: the status file says completed and every path and byte
	// of the completed run's final state is there, and nothing else.
	Complete
	// Undecided: completed, everything there, and more (paths the run
	// did not end with): only the oracle can tell whether that harms.
	Undecided
	// Broken: a rule is broken (Violation says which).
	Broken
)

var verdictNames = [...]string{"nothing claimed", "complete", "undecided", "violation"}

// String names the verdict.
func (v Verdict) String() string { return verdictNames[v] }

// The rules a crash state can break.
const (
	// RuleNotTorn: a status file that is there parses (a reader never
	// finds a damaged one).
	RuleNotTorn = "status-not-torn"
	// RuleTornNeverParses: a torn write never yields a status file that
	// parses as something the run did not write whole.
	RuleTornNeverParses = "torn-never-parses"
	// RuleCompletedIsComplete: a completed status file stands over every
	// path and byte of the completed run's final state.
	RuleCompletedIsComplete = "completed-is-complete"
	// RuleDurableAtExit: once the run exited, having written "completed"
	// and "DURABLE: yes", a power loss leaves a completed status file.
	RuleDurableAtExit = "durable-at-exit"
	// RuleFirstVersionDurable: once the run's first version of the status
	// file is in place and the run has gone on to other work, a power
	// loss never takes the file back to what was there before (an
	// earlier run's, maybe "completed", at a reused status path), even
	// with --no-sync: every later state holds a status file.
	RuleFirstVersionDurable = "first-version-durable"
)

// Checker judges crash states without a server: it reads the status file
// at a path given relative to the layer's root (the target's
// backup_status, or wherever --status-file put it) and compares a
// completed state with the completed run's final state.
type Checker struct {
	status string
	// noSync says the run was made with --no-sync (its final status
	// says SYNC: off): nothing but the first version is promised to
	// survive a power loss.
	noSync bool
	// firstDone is the number of the operation after which the run's
	// first version must be durable (FirstVersionDone; 0: never).
	firstDone int
	differ    *powerfs.Differ
	parsed    map[string]parsed
	// whole are the contents written whole to the status file or its
	// temporary file by one write.
	whole map[string]bool
}

// parsed is a status file's content parsed once.
type parsed struct {
	st  *status.Status
	err error
}

// NewChecker returns a checker of the status file at statusRel (relative
// to the layer's root) against ref, the completed run's final state. The
// status file and its temporary files (statusRel.PID.tmp, whatever the
// PID, and the legacy statusRel.tmp) are left out of the comparison.
func NewChecker(statusRel string, ref *powerfs.Snapshot) (*Checker, error) {
	c := &Checker{status: statusRel, parsed: map[string]parsed{}, whole: map[string]bool{}}
	data, err := ref.ReadFile(statusRel)
	if err != nil {
		return nil, fmt.Errorf("the completed run's final state: %w", err)
	}
	st, err := status.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("the completed run's final status file %s: %w", statusRel, err)
	}
	if st.State != status.StateCompleted {
		return nil, fmt.Errorf("the run's final status file %s says %s, not completed", statusRel, st.State)
	}
	c.noSync = !st.Sync
	c.differ = powerfs.NewDiffer(ref, c.isStatus)
	return c, nil
}

// FirstVersionDone returns the number (Seq) of the first operation of the
// run that wrote the status file at statusRel, after its first rename
// onto statusRel, that touches neither the status file, nor a temporary
// file of it, nor their directory: by then the writer's first version
// has returned, and must be durable. 0 when the journal has no such
// operation.
func FirstVersionDone(j *powerfs.Journal, statusRel string) int {
	return FirstVersionDoneLog(j.Log, statusRel)
}

// FirstVersionDoneLog is FirstVersionDone over a layer's log of
// operations (powerfs.FS.Log), journaled or not.
func FirstVersionDoneLog(log []powerfs.Op, statusRel string) int {
	dir := path.Dir(statusRel)
	renamed := -1
	for i, op := range log {
		if op.Kind == powerfs.OpRename && op.Errno == 0 && op.NewPath == statusRel {
			renamed = i
			break
		}
	}
	if renamed < 0 {
		return 0
	}
	pid := log[renamed].PID
	for _, op := range log[renamed+1:] {
		if op.PID != pid {
			continue
		}
		_, tmp := status.ParseTempPath(statusRel, op.Path)
		if op.Path != statusRel && !tmp && op.Path != dir {
			return op.Seq
		}
	}
	return 0
}

// isStatus says whether rel is the status file or one of its temporary
// files: statusRel.PID.tmp of any writer's pid (a run on the layer is
// replayed, not started here, so its pid is not known), or the legacy
// statusRel.tmp.
func (c *Checker) isStatus(rel string) bool {
	_, tmp := status.ParseTempPath(c.status, rel)
	return rel == c.status || tmp
}

// StatusWrite says whether op writes the status file or its temporary
// file.
func (c *Checker) StatusWrite(op powerfs.Op) bool {
	return op.Kind == powerfs.OpWrite && c.isStatus(op.Path)
}

// NoteWrite remembers a whole write of the status file or its temporary
// file at offset 0: a version the writer meant.
func (c *Checker) NoteWrite(op powerfs.Op) {
	if c.StatusWrite(op) && op.Off == 0 {
		c.whole[string(op.Data())] = true
	}
}

// Check judges a state; torn says a write of the status file in it was
// cut short. The message says what is wrong, or what was found.
func (c *Checker) Check(s *powerfs.Snapshot, torn bool) (Verdict, string, string) {
	return c.checkAt(s, torn, 0)
}

// checkAt is Check for a state after the operation numbered prefix (0:
// not known).
func (c *Checker) checkAt(s *powerfs.Snapshot, torn bool, prefix int) (Verdict, string, string) {
	data, err := s.ReadFile(c.status)
	if errors.Is(err, fs.ErrNotExist) {
		if c.firstDone > 0 && prefix >= c.firstDone {
			return Broken, RuleFirstVersionDurable, fmt.Sprintf("no status file after operation %d, although the run's first version had returned before operation %d: at a reused status path, the earlier run's file would be back", prefix, c.firstDone)
		}
		return NothingClaimed, "", "no status file"
	}
	if err != nil {
		return Broken, RuleNotTorn, err.Error()
	}
	p, ok := c.parsed[string(data)]
	if !ok {
		p.st, p.err = status.Parse(data)
		c.parsed[string(data)] = p
	}
	if p.err != nil && c.noSync {
		// --no-sync renames each later version into place unsynced: after
		// a power loss the name may be there without the bytes. A reader
		// refuses such a file (not complete); the first version, the one
		// that replaces an earlier run's file, is synced.
		return NothingClaimed, "", fmt.Sprintf("a status file that does not parse (%d bytes), unsynced with --no-sync: the reader says not complete", len(data))
	}
	if p.err != nil {
		return Broken, RuleNotTorn, fmt.Sprintf("the status file (%d bytes) does not parse: %v", len(data), p.err)
	}
	if torn && !c.whole[string(data)] {
		return Broken, RuleTornNeverParses, fmt.Sprintf("a torn write left a status file that parses as %s", p.st.State)
	}
	if p.st.State != status.StateCompleted {
		return NothingClaimed, "", "status " + p.st.State.String()
	}
	if !p.st.Durable && c.noSync {
		// DURABLE: no of a --no-sync run: the reader says "completed but
		// not durable", which promises nothing after a power loss. (With
		// sync on, a completed file stands for its backup, DURABLE: no
		// or not: writing it before the sync is the mistake.)
		return NothingClaimed, "", "status completed, DURABLE: no, with --no-sync"
	}
	d := c.differ.Diff(s, 8)
	if len(d.Missing)+len(d.Changed) > 0 {
		var parts []string
		if len(d.Missing) > 0 {
			parts = append(parts, "missing "+strings.Join(d.Missing, ", "))
		}
		if len(d.Changed) > 0 {
			parts = append(parts, "other bytes in "+strings.Join(d.Changed, ", "))
		}
		return Broken, RuleCompletedIsComplete, "status completed, but " + strings.Join(parts, "; ")
	}
	if len(d.Extra) > 0 {
		return Undecided, "", "status completed, everything there, and also " + strings.Join(d.Extra, ", ")
	}
	return Complete, "", "status completed over the whole final state"
}

// CheckExit judges the durable state once the run is over: it must read
// completed over the whole final state.
func (c *Checker) CheckExit(s *powerfs.Snapshot) (Verdict, string, string) {
	return c.checkExitAt(s, 0)
}

// checkExitAt is CheckExit for the state after the last operation, the
// one numbered last (0: not known).
func (c *Checker) checkExitAt(s *powerfs.Snapshot, last int) (Verdict, string, string) {
	v, rule, msg := c.checkAt(s, false, last)
	if v == NothingClaimed && c.noSync {
		// --no-sync: only the first version was made durable.
		return v, rule, msg + " (--no-sync: nothing but the first version is durable)"
	}
	if v == NothingClaimed {
		return Broken, RuleDurableAtExit, "the run is over and reported completion, but after a power loss: " + msg
	}
	return v, rule, msg
}
