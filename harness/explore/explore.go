// Package explore builds, offline, every crash state of the finishing part
// of one recorded run on the power-loss layer, as ALICE does: it replays
// the run's journal (harness/powerfs) through the persistence model and,
// at every prefix of the log from the start of the finishing part to the
// exit, takes the durable state (the pessimistic one: only what was
// synced), every state in which any subset of the last K operations not
// yet synced reached the disk anyway, and the states in which a write of
// the status file was torn (each prefix of its bytes). A Checker judges
// each state without a server; the states it cannot decide are left for
// the oracle (Materialise writes one to disk). A run that fails (an I/O
// error, a signal) is explored from its failure on (Config.Failing) and
// judged by a FailChecker: never "completed", "failed" with its REASON,
// only once the WAL child and the clean-up are done, durable at the exit,
// and no state that blocks a retry.
package explore

import (
	"context"
	"fmt"
	"time"

	"github.com/pgbb/pgbb/harness/powerfs"
)

// Config says what to explore.
type Config struct {
	// Status is the status file's path relative to the layer's root
	// ("target/backup_status"); its temporary files are Status+".PID.tmp"
	// (status.TempPath, PID the writer's) and, from earlier writers,
	// Status+".tmp".
	Status string
	// K bounds the unsynced operations combined: every subset of the
	// last K at each prefix (2^K states per prefix, with the pessimistic
	// one).
	K int
	// From is the index in the log of the first operation explored; -1
	// starts at the finishing part (FinishingStart).
	From int
	// NoTorn leaves out the torn writes of the status file.
	NoTorn bool
	// KeepUndecided bounds the undecided states whose names are kept
	// (default 1000); all are counted.
	KeepUndecided int
	// KeepViolations bounds the violations kept (default 100); all are
	// counted.
	KeepViolations int
	// Failing, when set, says the journal is a run that fails (an I/O
	// error, a signal): its states are judged by the rules of a failing
	// run (FailChecker), and From -1 starts at the failure (FailStart).
	Failing *Failing
}

// Violation is a crash state that breaks a rule.
type Violation struct {
	State   string `json:"state"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// Result is what an exploration found.
type Result struct {
	// Ops is the length of the log; From the index where the
	// exploration started; Prefixes the prefixes from there, Changing
	// those that changed the model (the others repeat the state before).
	Ops, From, Prefixes, Changing int
	// StartFrom and StartTo bound, for a clean run explored from its
	// finishing part, the operations explored at its start as well (log
	// indexes, StartTo included): from the first rename of the status
	// file into place to StartOps operations after its first version
	// returned (FirstVersionDone). Both 0 when there was none.
	StartFrom, StartTo int
	// K is the bound used.
	K int
	// States counts the states built: Pessimistic (one per changing
	// prefix), Subsets (unsynced operations persisted), Torn.
	States, Pessimistic, Subsets, Torn int
	// Per verdict: states judged cheaply (NothingClaimed, Complete),
	// Undecided (for the oracle), Broken.
	NothingClaimed, Complete, UndecidedCount, ViolationCount int
	// Undecided names undecided states (up to KeepUndecided);
	// Violations the first violations (up to KeepViolations), and
	// ByRule counts violations per rule.
	Undecided  []string
	Violations []Violation
	ByRule     map[string]int
	// Replay is the time spent rebuilding the reference; Elapsed the
	// whole exploration's; FirstViolation the time to the first
	// violation, from the exploration's start.
	Replay, Elapsed, FirstViolation time.Duration
	// Fail is what a failing run's exploration found besides (nil for a
	// clean run).
	Fail *FailResult `json:"fail,omitempty"`
}

// Cheap returns the number of states the checker decided alone.
func (r *Result) Cheap() int { return r.NothingClaimed + r.Complete + r.ViolationCount }

// PerSecond returns the states built per second.
func (r *Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.States) / r.Elapsed.Seconds()
}

// FinishingStart returns the index in the log where the finishing part
// starts: the earlier of the mark the calibration run set when the run's
// log said so (fault.MarkFinishing) and the create of
// backup_manifest.tmp, which follows the last data byte of every
// tablespace. 0 when neither is there.
func FinishingStart(j *powerfs.Journal, mark string) int {
	start := -1
	if seq, ok := j.MarkSeq(mark); ok {
		start = seq
	}
	for i, op := range j.Log {
		if op.Kind == powerfs.OpCreate && op.Errno == 0 && op.Name == "backup_manifest.tmp" {
			if start < 0 || i < start {
				start = i
			}
			break
		}
	}
	return max(start, 0)
}

// Reference replays the whole journal and returns the completed run's
// final state: what the programs saw at the exit.
func Reference(j *powerfs.Journal) (*powerfs.Snapshot, error) {
	r, err := powerfs.NewReplayer(j)
	if err != nil {
		return nil, err
	}
	for !r.Done() {
		if _, err := r.Step(); err != nil {
			return nil, err
		}
	}
	return r.Volatile(), nil
}

// stateJudge judges the states of one exploration: a clean run's
// (Checker) or a failing run's (FailChecker).
type stateJudge interface {
	StatusWrite(op powerfs.Op) bool
	NoteWrite(op powerfs.Op)
	// step sees each operation once replayed (the live view).
	step(rp *powerfs.Replayer, op powerfs.Op)
	judgeState(s *powerfs.Snapshot, torn bool, prefix int) (Verdict, string, string)
	judgeExit(s *powerfs.Snapshot, last int) (Verdict, string, string)
}

func (c *Checker) step(*powerfs.Replayer, powerfs.Op) {}

func (c *Checker) judgeState(s *powerfs.Snapshot, torn bool, prefix int) (Verdict, string, string) {
	return c.checkAt(s, torn, prefix)
}

func (c *Checker) judgeExit(s *powerfs.Snapshot, last int) (Verdict, string, string) {
	return c.checkExitAt(s, last)
}

// Explore builds and checks every crash state of the journal's run from
// cfg.From on.
func Explore(ctx context.Context, j *powerfs.Journal, cfg Config) (*Result, error) {
	start := time.Now()
	if cfg.K < 0 || cfg.K > 16 {
		return nil, fmt.Errorf("explore: K %d: want 0 to 16", cfg.K)
	}
	if cfg.KeepUndecided == 0 {
		cfg.KeepUndecided = 1000
	}
	if cfg.KeepViolations == 0 {
		cfg.KeepViolations = 100
	}
	ref, err := Reference(j)
	if err != nil {
		return nil, fmt.Errorf("explore: %w", err)
	}
	var chk stateJudge
	var fail *FailChecker
	from := cfg.From
	if cfg.Failing != nil {
		if fail, err = NewFailChecker(ctx, j, cfg.Status, ref, *cfg.Failing); err != nil {
			return nil, fmt.Errorf("explore: %w", err)
		}
		chk = fail
		if from < 0 {
			from = FailStart(j)
		}
	}
	res := &Result{Ops: len(j.Log), K: cfg.K, ByRule: map[string]int{}}
	if cfg.Failing == nil {
		c, err := NewChecker(cfg.Status, ref)
		if err != nil {
			return nil, fmt.Errorf("explore: %w", err)
		}
		c.firstDone = FirstVersionDone(j, cfg.Status)
		chk = c
		if from < 0 {
			from = FinishingStart(j, "finishing")
			res.StartFrom, res.StartTo = startWindow(j, cfg.Status, c.firstDone)
		}
	}
	res.From, res.Replay = from, time.Since(start)
	w := &walker{cfg: cfg, chk: chk, res: res, start: start}
	if w.rp, err = powerfs.NewReplayer(j); err != nil {
		return nil, fmt.Errorf("explore: %w", err)
	}
	for !w.rp.Done() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		next := w.rp.Next()
		explore := next >= from || res.StartTo > 0 && next >= res.StartFrom && next <= res.StartTo
		op, err := w.rp.Step()
		if err != nil {
			return res, fmt.Errorf("explore: %w", err)
		}
		chk.NoteWrite(op)
		chk.step(w.rp, op)
		if !explore {
			continue
		}
		res.Prefixes++
		if changes(op) {
			res.Changing++
			w.prefix(op)
		}
	}
	// The run is over: what it reported done must be durable.
	if len(j.Log) > 0 {
		last := j.Log[len(j.Log)-1].Seq
		v, rule, msg := chk.judgeExit(w.rp.Durable(), last)
		w.res.States++
		w.count(StateID{Prefix: last}, v, rule, msg)
	}
	if fail != nil {
		res.Fail = fail.Result()
		for _, v := range fail.liveViolations() {
			w.res.States++
			w.countNamed(v.State, Broken, v.Rule, v.Message)
		}
		if err := fail.Err(); err != nil {
			return res, fmt.Errorf("explore: %w", err)
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// StartOps is how many operations after its first version returned the
// start of a clean run is explored (Result.StartTo).
const StartOps = 32

// startWindow returns the log indexes of the first rename of the status
// file at statusRel into place and of the StartOps-th operation after the
// one numbered firstDone (FirstVersionDone); both 0 without them.
func startWindow(j *powerfs.Journal, statusRel string, firstDone int) (int, int) {
	if firstDone == 0 {
		return 0, 0
	}
	from := -1
	for i, op := range j.Log {
		if op.Kind == powerfs.OpRename && op.Errno == 0 && op.NewPath == statusRel {
			from = i
			break
		}
	}
	for i, op := range j.Log {
		if op.Seq == firstDone && from >= 0 {
			return from, min(i+StartOps, len(j.Log)-1)
		}
	}
	return 0, 0
}

// changes says whether an applied operation changed the model: a state
// after it differs from the state before.
func changes(op powerfs.Op) bool {
	switch op.Kind {
	case powerfs.OpOpen:
		return op.Trunc && op.Errno == 0
	case powerfs.OpFsync, powerfs.OpFsyncDir:
		return op.Crash != "before"
	}
	return op.Errno == 0 && op.Crash != "before"
}

// walker explores the states of each prefix.
type walker struct {
	start time.Time
	cfg   Config
	chk   stateJudge
	res   *Result
	rp    *powerfs.Replayer
}

// prefix builds and checks the states after op: the pessimistic one,
// every subset of the last K unsynced operations persisted, and those
// with a persisted write of the status file torn.
func (w *walker) prefix(op powerfs.Op) {
	base := w.rp.Durable()
	cands := w.rp.Unsynced(w.cfg.K)
	for mask := 0; mask < 1<<len(cands); mask++ {
		var sel []powerfs.Op
		for i, c := range cands {
			if mask&(1<<i) != 0 {
				sel = append(sel, c)
			}
		}
		id := StateID{Prefix: op.Seq, Persisted: seqs(sel)}
		s := base
		if mask == 0 {
			w.res.Pessimistic++
		} else {
			s = base.Persist(sel...)
			w.res.Subsets++
		}
		w.judge(id, s, false, op.Seq)
		if w.cfg.NoTorn {
			continue
		}
		for i, c := range sel {
			if w.chk.StatusWrite(c) {
				w.torn(base, id, sel, i, op.Seq)
			}
		}
	}
}

// torn builds the states in which the persisted write sel[i] of the
// status file reached the disk only in part: every proper prefix of it.
func (w *walker) torn(base *powerfs.Snapshot, id StateID, sel []powerfs.Op, i, prefix int) {
	write := sel[i]
	torn := append([]powerfs.Op(nil), sel...)
	for k := 1; k < len(write.Data()); k++ {
		torn[i] = write.Torn(k)
		tid := id
		tid.Torn, tid.TornLen = write.Seq, k
		w.res.Torn++
		w.judge(tid, base.Persist(torn...), true, prefix)
	}
}

// judge checks one state, after the operation numbered prefix, and
// counts the verdict.
func (w *walker) judge(id StateID, s *powerfs.Snapshot, torn bool, prefix int) {
	w.res.States++
	v, rule, msg := w.chk.judgeState(s, torn, prefix)
	w.count(id, v, rule, msg)
}

// count counts a verdict.
func (w *walker) count(id StateID, v Verdict, rule, msg string) {
	w.countNamed(id.String(), v, rule, msg)
}

// countNamed counts a verdict on the state called id.
func (w *walker) countNamed(id string, v Verdict, rule, msg string) {
	switch v {
	case NothingClaimed:
		w.res.NothingClaimed++
	case Complete:
		w.res.Complete++
	case Undecided:
		w.res.UndecidedCount++
		if len(w.res.Undecided) < w.cfg.KeepUndecided {
			w.res.Undecided = append(w.res.Undecided, id)
		}
	case Broken:
		if w.res.ViolationCount == 0 {
			w.res.FirstViolation = time.Since(w.start)
		}
		w.res.ViolationCount++
		w.res.ByRule[rule]++
		if len(w.res.Violations) < w.cfg.KeepViolations {
			w.res.Violations = append(w.res.Violations, Violation{State: id, Rule: rule, Message: msg})
		}
	}
}

// seqs returns the operations' numbers.
func seqs(ops []powerfs.Op) []int {
	out := make([]int, len(ops))
	for i, op := range ops {
		out[i] = op.Seq
	}
	return out
}
