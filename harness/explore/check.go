package explore

import (
	"errors"
	"fmt"
	"io/fs"
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
)

// Checker judges crash states without a server: it reads the status file
// at a path given relative to the layer's root (the target's
// backup_status, or wherever --status-file put it) and compares a
// completed state with the completed run's final state.
type Checker struct {
	status string
	differ *powerfs.Differ
	parsed map[string]parsed
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
	c.differ = powerfs.NewDiffer(ref, c.isStatus)
	return c, nil
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
	data, err := s.ReadFile(c.status)
	if errors.Is(err, fs.ErrNotExist) {
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
	if p.err != nil {
		return Broken, RuleNotTorn, fmt.Sprintf("the status file (%d bytes) does not parse: %v", len(data), p.err)
	}
	if torn && !c.whole[string(data)] {
		return Broken, RuleTornNeverParses, fmt.Sprintf("a torn write left a status file that parses as %s", p.st.State)
	}
	if p.st.State != status.StateCompleted {
		return NothingClaimed, "", "status " + p.st.State.String()
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
	v, rule, msg := c.Check(s, false)
	if v == NothingClaimed {
		return Broken, RuleDurableAtExit, "the run is over and reported completion, but after a power loss: " + msg
	}
	return v, rule, msg
}
