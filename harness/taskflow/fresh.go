package taskflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/status"
)

// A fresh flow is the scheduler of a nightly job or an unattended retry
// loop: it never runs pgbb-status and never cleans up. Each attempt runs
// into a directory of its own (b-1, b-2, ...: the usual way around
// "directory exists but is not empty"), with the same --status-file every
// time, and the scheduler judges only by what a shell script has:
//
//	pg_basebackup -D b-$n/target ... --status-file=S & pid=$!; wait $pid; rc=$?
//	[ $rc = 0 ] || [ -e b-$n/backup_manifest ]                  # stock
//	grep -q '^STATUS: completed' S && grep -qx "PID: $pid" S    # patched
//
// (the PID check is what the README tells a script that reuses one status
// file: the file may be another run's, one left going by an earlier
// attempt, or an earlier run's when this one was killed before its first
// write)
// after the run exited or the deadline stopped it. What the dead attempts
// leave (directories, orphaned processes, temporary files) stays.

// FreshOutcome is what a fresh flow took and left behind.
type FreshOutcome struct {
	// Taken is the attempt whose backup the flow took (0: none).
	Taken int `json:"taken,omitempty"`
	// FalseCompletions counts backups taken as complete that are not the
	// attempt's own complete backup: the oracle rejected it, or the
	// "completed" the scheduler read was another run's. FalseNotes say
	// which.
	FalseCompletions int      `json:"false_completions"`
	FalseNotes       []string `json:"false_notes,omitempty"`
	// DeadAttempts are the attempts not taken; LeftBytes the bytes under
	// their directories at the flow's end, which nobody removes.
	DeadAttempts int   `json:"dead_attempts"`
	LeftBytes    int64 `json:"left_bytes"`
	// Orphans counts runs of dead attempts with a process still alive at
	// the flow's end, writing into directories nobody will take.
	Orphans int `json:"orphans"`
	// Blocked counts runs that failed on the status file, a dead run's
	// leftovers in a retry's way; BlockedNotes say how.
	Blocked      int      `json:"blocked"`
	BlockedNotes []string `json:"blocked_notes,omitempty"`
	// Planted counts the temporary status files the harness left after a
	// SIGKILL, as a run killed while it rewrote the file leaves one;
	// StaleTemps the temporary files of the status file at the flow's end.
	Planted    int `json:"planted"`
	StaleTemps int `json:"stale_temps"`
	// Missed counts runs that exited 0 whose status file did not say
	// completed when the scheduler read it (another run's version had
	// replaced it, or it could not be written): complete backups left.
	Missed int `json:"missed"`
}

// attemptDir is attempt n's own directory in a fresh flow.
func (r *flowRun) attemptDir(n int) string { return filepath.Join(r.dir, fmt.Sprintf("b-%d", n)) }

// fresh returns the flow's FreshOutcome, made on first use.
func (r *flowRun) fresh() *FreshOutcome {
	if r.out.FreshResult == nil {
		r.out.FreshResult = &FreshOutcome{}
	}
	return r.out.FreshResult
}

// freshAttempt runs attempt n of a fresh flow: a run into b-n, the
// deadline's policy, then the shell script's judgement.
func (r *flowRun) freshAttempt(ctx context.Context, n int) (Attempt, error) {
	a := Attempt{N: n, At: time.Since(r.start), Found: "fresh"}
	r.fresh()
	r.base = r.attemptDir(n)
	if err := r.env.Owner.MkdirAll(r.base, 0o750); err != nil {
		return a, fmt.Errorf("attempt directory: %w", err)
	}
	deadline := time.Now().Add(time.Duration(r.sc.Deadline))
	b, exited, err := r.runAttempt(ctx, &a, deadline)
	if err != nil {
		return a, err
	}
	if exited {
		if *a.Exit != 0 {
			a.Note = errorLine(b.output())
			r.checkBlocked(n, b.output())
		}
	} else {
		r.stopAtDeadline(ctx, &a, b)
		if r.flow.Policy == Kill && r.flow.Variant == Patched {
			r.plantTemp(b.pid())
		}
	}
	if err := ctx.Err(); err != nil {
		return a, err
	}
	r.judgeFresh(&a, b)
	return a, nil
}

// judgeFresh judges attempt a, whose run is b, as the shell script does,
// and records a backup taken on another run's "completed".
func (r *flowRun) judgeFresh(a *Attempt, b *backupRun) {
	if r.flow.Variant == Stock {
		_, err := os.Stat(filepath.Join(r.target(), "backup_manifest"))
		if stockTakes(a.Exit, err == nil) {
			r.takeFresh(a)
		}
		return
	}
	data, err := os.ReadFile(r.statusFile())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.Note = joinNote(a.Note, "status file: "+err.Error())
	}
	if !grepCompletedBy(data, b.pid()) {
		if a.Exit != nil && *a.Exit == 0 {
			r.fresh().Missed++
			a.Note = joinNote(a.Note, "exit 0, but the status file did not say completed: "+describeStatus(data, r.pids()))
		}
		return
	}
	r.takeFresh(a)
	if why := foreignCompletion(data, r.pids(), a.N, r.target()); why != "" {
		why += r.overlap(data, b)
		r.falseCompletion(fmt.Sprintf("attempt %d took b-%d on a completed that is not its run's: %s", a.N, a.N, why))
		a.Note = joinNote(a.Note, "false completion: "+why)
	}
}

// takeFresh ends the flow with attempt a's backup.
func (r *flowRun) takeFresh(a *Attempt) {
	a.Action = "took-complete"
	r.out.Converged = true
	r.fresh().Taken = a.N
}

// falseCompletion records a backup taken as complete that is not.
func (r *flowRun) falseCompletion(note string) {
	f := r.fresh()
	if f.FalseCompletions == 0 {
		f.FalseCompletions = 1
	}
	f.FalseNotes = append(f.FalseNotes, note)
}

// overlap says whether the run whose completed the status file data is
// was alive when b, a later attempt's run, started: two live runs then
// shared the file and the last writer won; or had ended before it: a dead
// run's completed left standing, which the writer promises never to
// leave once a later run has started.
func (r *flowRun) overlap(data []byte, b *backupRun) string {
	s, err := status.Parse(data)
	if err != nil {
		return ""
	}
	for _, o := range r.runs {
		if o == b || o.pid() != s.PID {
			continue
		}
		if done, _ := o.exited(); done && o.ended.Before(b.started) {
			return "; that run had ended before this attempt's started: a dead run's completed left standing"
		}
		return "; that run was still alive when this attempt's started (left running): two live runs shared the file and its completed came last"
	}
	return ""
}

// pids are the pids of the flow's runs, attempt 1's first.
func (r *flowRun) pids() []int {
	out := make([]int, len(r.runs))
	for i, b := range r.runs {
		out[i] = b.pid()
	}
	return out
}

// checkBlocked records a run of attempt n that failed on the status file
// (its output names it): a dead run's leftovers in a retry's way.
func (r *flowRun) checkBlocked(n int, out string) {
	if r.flow.Variant != Patched || !blockedByStatusFile(out, r.statusFile()) {
		return
	}
	f := r.fresh()
	f.Blocked++
	f.BlockedNotes = append(f.BlockedNotes, fmt.Sprintf("attempt %d: %s", n, errorLine(out)))
}

// plantTemp leaves the temporary status file of the killed run pid,
// half written, as a SIGKILL during a rewrite leaves it, unless the kill
// left one already: the next run must not stumble on it.
func (r *flowRun) plantTemp(pid int) {
	tmp := status.TempPath(r.statusFile(), pid)
	if _, err := os.Lstat(tmp); err == nil {
		return
	}
	data, _ := os.ReadFile(r.statusFile())
	if err := r.env.Owner.WriteFile(tmp, data[:len(data)/2], 0o600); err != nil {
		r.logf("plant %s: %v", tmp, err)
		return
	}
	r.fresh().Planted++
}

// measureLeft records, at the flow's end and before its processes are
// stopped, what the dead attempts leave: bytes, live processes and
// temporary status files.
func (r *flowRun) measureLeft() {
	f := r.fresh()
	f.DeadAttempts, f.LeftBytes, f.Orphans = 0, 0, 0
	for i, b := range r.runs {
		if i+1 == f.Taken {
			continue
		}
		f.DeadAttempts++
		n, err := treeBytes(r.attemptDir(i + 1))
		if err != nil {
			r.logf("measure %s: %v", r.attemptDir(i+1), err)
		}
		f.LeftBytes += n
		if b.alive() {
			f.Orphans++
		}
	}
	if tmps, err := status.TempFiles(r.statusFile()); err == nil {
		f.StaleTemps = len(tmps)
	}
}

// stockTakes is a stock scheduler's judgement: exit code 0 within the
// deadline (exit nil: the deadline stopped the run), or backup_manifest
// in the target.
func stockTakes(exit *int, manifest bool) bool {
	return (exit != nil && *exit == 0) || manifest
}

// grepCompleted is `grep -q '^STATUS: completed'` over the status file
// data (nil: no file).
func grepCompleted(data []byte) bool {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("STATUS: completed")) {
			return true
		}
	}
	return false
}

// grepCompletedBy is grepCompleted and `grep -qx "PID: $pid"` over the
// status file data: completed, by the run the scheduler started.
func grepCompletedBy(data []byte, pid int) bool {
	if !grepCompleted(data) {
		return false
	}
	want := []byte(fmt.Sprintf("PID: %d", pid))
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if bytes.Equal(line, want) {
			return true
		}
	}
	return false
}

// foreignCompletion says why the status file data, which says completed,
// is not the completion of attempt n's run, or returns "" if it is: it
// must parse, record the pid of attempt n's run (pids[i] is attempt
// i+1's) and, if it records directories, attempt n's target first.
func foreignCompletion(data []byte, pids []int, n int, target string) string {
	s, err := status.Parse(data)
	switch {
	case err != nil:
		return "the file says completed but does not parse: " + err.Error()
	case s.State != status.StateCompleted:
		return fmt.Sprintf("the file's STATUS is %s", s.State)
	case n < 1 || n > len(pids):
		return fmt.Sprintf("attempt %d started no run", n)
	case s.PID != pids[n-1]:
		return fmt.Sprintf("it is %s, not attempt %d's (pid %d)", whoseRun(s.PID, pids), n, pids[n-1])
	case len(s.Directories) > 0 && s.Directories[0].Path != target:
		return fmt.Sprintf("it records DIRECTORY %s, not %s", s.Directories[0].Path, target)
	}
	return ""
}

// whoseRun names the run of pid among pids (attempt i+1's is pids[i]).
func whoseRun(pid int, pids []int) string {
	for i, p := range pids {
		if p == pid {
			return fmt.Sprintf("attempt %d's (pid %d)", i+1, pid)
		}
	}
	return fmt.Sprintf("pid %d's, no run of this flow", pid)
}

// describeStatus says what the status file data says and whose it is.
func describeStatus(data []byte, pids []int) string {
	if data == nil {
		return "no file"
	}
	s, err := status.Parse(data)
	if err != nil {
		return "unparsable: " + err.Error()
	}
	return fmt.Sprintf("%s, %s", s.State, whoseRun(s.PID, pids))
}

// blockedByStatusFile says whether the output of a run that failed names
// the status file at path (or a temporary file of it): the run failed on
// it, not on the server or its own directories.
func blockedByStatusFile(out, path string) bool {
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, "error") && strings.Contains(line, filepath.Base(path)) {
			return true
		}
	}
	return false
}

// treeBytes sums the sizes of the regular files under dir, symbolic links
// not followed; a missing dir is 0.
func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}

// joinNote appends b to the note a.
func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
