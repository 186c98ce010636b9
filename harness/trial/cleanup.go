package trial

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/proc"
	"github.com/pgbb/pgbb/harness/status"
)

// Invariants of the clean-up after a run that did not complete.
const (
	// InvRemoveExact: after a run that died (status "in progress" or
	// "failed", its process group gone), status.RemoveIfDead on its
	// status file removes exactly the recorded directories (created ones
	// gone, existing ones empty) and touches nothing else in the trial's
	// directory (the status file itself and its temporary file aside:
	// Cleanup records what became of them).
	InvRemoveExact = "remove-if-dead-exact"
	// InvRetrySucceeds: pg_basebackup run again with the same command line
	// into the same target then succeeds and writes a completed status.
	InvRetrySucceeds = "retry-succeeds"
)

// Cleanup is what --remove-if-dead did after a run that did not complete,
// and how the retry into the same target went.
type Cleanup struct {
	// Exit is RemoveIfDead's exit code; Refused or Error why not 0.
	Exit    int    `json:"exit"`
	Refused string `json:"refused,omitempty"`
	Error   string `json:"error,omitempty"`
	// Steps are what it did, one line per recorded directory.
	Steps []string `json:"steps,omitempty"`
	// StatusLeft and TmpLeft say the status file and a temporary file of
	// the run (FILE.PID.tmp of its pid, or the legacy FILE.tmp) were
	// there after the removal.
	StatusLeft bool `json:"status_left,omitempty"`
	TmpLeft    bool `json:"tmp_left,omitempty"`
	// Wrong lists what is not as it should be afterwards: a recorded
	// directory left, an existing one not empty, anything else changed.
	Wrong []string `json:"wrong,omitempty"`
	// RetryExit is the retry's exit code (-1: not run), RetryStatus its
	// status file's STATUS, RetryLog the end of its output on failure.
	RetryExit   int    `json:"retry_exit"`
	RetryStatus string `json:"retry_status,omitempty"`
	RetryLog    string `json:"retry_log,omitempty"`
	// RetryUnsaid says the retry warned that the backup is complete but
	// the status file could not say so (status.WarnCompleteUnsaid).
	RetryUnsaid bool `json:"retry_unsaid,omitempty"`
}

// cleanupAndRetry runs, after a trial whose run left an "in progress" or
// "failed" status file with DIRECTORY lines and broke no invariant, the
// removal an operator would run (--remove-if-dead on the status file) and
// then the same pg_basebackup again; it records both in rec.Cleanup and
// adds the violations. Trials on the power-loss layer are left alone.
func cleanupAndRetry(ctx context.Context, s Spec, rec *Record) error {
	if !rec.StatusFile || rec.StatusPath == "" || rec.Disk != nil || len(rec.Violations) > 0 || !rec.Status.Valid ||
		(rec.Status.State != "in progress" && rec.Status.State != "failed") {
		return nil
	}
	st, err := status.ReadFile(rec.StatusPath)
	if err != nil || !st.Progress || len(st.Directories) == 0 {
		return nil // a series without DIRECTORY lines: nothing to judge
	}
	c := &Cleanup{RetryExit: -1}
	rec.Cleanup = c
	recorded := map[string]bool{}
	for _, d := range st.Directories {
		recorded[d.Path] = true
	}
	under := removable(rec.StatusPath, st.PID, recorded)
	before, err := snapshot(s.Dir, under)
	if err != nil {
		return fmt.Errorf("clean-up: %w", err)
	}
	whole, err := snapshot(s.Dir, nothing)
	if err != nil {
		return fmt.Errorf("clean-up: %w", err)
	}

	rm := fault.RemoveIfDead(ctx, rec.StatusPath, false, status.WithProcesses(fault.WritersNamespace()))
	c.Exit, c.Refused, c.Error = rm.ExitCode, rm.Refused, rm.Error
	_, err = os.Lstat(rec.StatusPath)
	c.StatusLeft = err == nil
	for _, tmp := range runTemps(rec.StatusPath, st.PID) {
		if _, err := os.Lstat(tmp); err == nil {
			c.TmpLeft = true
		}
	}
	for _, step := range rm.Steps {
		c.Steps = append(c.Steps, step.String())
	}
	if rm.ExitCode == status.ExitRemoved {
		wrong, err := removedExactly(st.Directories, before, s.Dir, under)
		if err != nil {
			return err
		}
		c.Wrong = append(c.Wrong, wrong...)
	}
	switch {
	case rm.ExitCode == status.ExitRefused && rm.HoldsManifest:
		// The run may have completed without recording it (its final
		// version could be neither written nor removed): the removal must
		// leave the backup to pg_verifybackup, and change nothing.
		return keptWhole(s.Dir, whole, rec)
	case rm.ExitCode != status.ExitRemoved:
		rec.Violations = append(rec.Violations, Violation{InvRemoveExact,
			fmt.Sprintf("--remove-if-dead after a dead run (%s) exited %d: %s%s", rec.Status.State, rm.ExitCode, rm.Refused, rm.Error)})
		return nil
	case len(c.Wrong) > 0:
		rec.Violations = append(rec.Violations, Violation{InvRemoveExact,
			"--remove-if-dead did not remove exactly the recorded directories: " + strings.Join(c.Wrong, "; ")})
		return nil
	}

	return retry(ctx, s, rec)
}

// nothing skips nothing in a snapshot.
func nothing(string) bool { return false }

// keptWhole adds an InvRemoveExact violation to rec if a removal that
// refused, since the target holds backup_manifest, changed anything under
// dir since before (a snapshot of everything there).
func keptWhole(dir string, before map[string]string, rec *Record) error {
	after, err := snapshot(dir, nothing)
	if err != nil {
		return fmt.Errorf("clean-up: %w", err)
	}
	if changed := diffSnapshots(before, after); len(changed) > 0 {
		rec.Violations = append(rec.Violations, Violation{InvRemoveExact,
			"--remove-if-dead refused a target holding backup_manifest, yet changed: " + strings.Join(changed, "; ")})
	}
	return nil
}

// runTemps are the temporary files of the run of pid that wrote the
// status file at path: FILE.PID.tmp, and FILE.tmp, which earlier writers
// used whatever their pid.
func runTemps(path string, pid int) []string {
	return []string{status.TempPath(path, pid), status.LegacyTempPath(path)}
}

// removable says what --remove-if-dead may change after the run of pid
// that wrote the status file at path: the status file, the run's
// temporary files (runTemps; another pid's is another run's, never the
// removal's) and whatever lies in the recorded directories.
func removable(path string, pid int, recorded map[string]bool) func(string) bool {
	temps := runTemps(path, pid)
	return func(p string) bool {
		if p == path || slices.Contains(temps, p) {
			return true
		}
		for d := range recorded {
			if p == d || strings.HasPrefix(p, d+string(filepath.Separator)) {
				return true
			}
		}
		return false
	}
}

// retry runs the same pg_basebackup again into the cleaned target, as an
// operator's retry would: it must complete.
func retry(ctx context.Context, s Spec, rec *Record) error {
	c := rec.Cleanup
	out, err := proc.Run(ctx, s.Acct, []string{"TZ=" + rec.TZ}, rec.Args...)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	c.RetryExit = 0
	if err != nil {
		c.RetryExit = 1
		c.RetryLog = proc.Tail(out, 6)
	}
	if again, err := status.ReadFile(rec.StatusPath); err == nil {
		c.RetryStatus = again.State.String()
	}
	c.RetryUnsaid = strings.Contains(out, status.WarnCompleteUnsaid)
	rec.Violations = append(rec.Violations, checkRetry(c)...)
	return nil
}

// checkRetry returns the InvRetrySucceeds violations of the retry c
// records: it must exit 0 with a completed status, or exit 0 having warned
// that the status file could not say so (status.WarnCompleteUnsaid).
func checkRetry(c *Cleanup) []Violation {
	if c.RetryExit == 0 && (c.RetryStatus == "completed" || c.RetryUnsaid) {
		return nil
	}
	return []Violation{{InvRetrySucceeds,
		fmt.Sprintf("the retry into the cleaned target failed (exit %d, status %q): %s", c.RetryExit, c.RetryStatus, c.RetryLog)}}
}

// removedExactly says what a removal that reported success did wrong: a
// directory the run created left, one that existed gone or not emptied,
// or anything else under dir (outside the recorded directories and the
// status files) changed since before.
func removedExactly(dirs []status.Directory, before map[string]string, dir string, under func(string) bool) ([]string, error) {
	var wrong []string
	for _, d := range dirs {
		entries, err := os.ReadDir(d.Path)
		switch {
		case d.Created && err == nil:
			wrong = append(wrong, "created directory left: "+d.Path)
		case !d.Created && err != nil:
			wrong = append(wrong, "existing directory gone: "+d.Path)
		case !d.Created && len(entries) > 0:
			wrong = append(wrong, "existing directory not emptied: "+d.Path)
		}
	}
	after, err := snapshot(dir, under)
	if err != nil {
		return nil, fmt.Errorf("clean-up: %w", err)
	}
	return append(wrong, diffSnapshots(before, after)...), nil
}

// snapshot lists every path under root that is not skipped, with its type
// and size, and, for files, modification time.
func snapshot(root string, skip func(string) bool) (map[string]string, error) {
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skip(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.IsDir() {
			m[p] = "dir"
		} else {
			m[p] = fmt.Sprintf("%s %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		}
		return nil
	})
	return m, err
}

// diffSnapshots names what changed between two snapshots.
func diffSnapshots(before, after map[string]string) []string {
	var out []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			out = append(out, "removed "+p)
		} else if a != b && b != "dir" {
			out = append(out, "changed "+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "appeared "+p)
		}
	}
	sort.Strings(out)
	return out
}
