package trial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pgbb/pgbb/harness/proc"
	"github.com/pgbb/pgbb/harness/status"
)

// InvRerunNotCompleted: a task flow that timed out retries with the same
// command. Into a target that holds a completed backup the retry must
// fail (the directory is not empty) and leave the completed backup's
// directories as they were (not removed, not emptied, nothing changed in
// them). Its status file must then no longer say "completed":
// pg_basebackup writes its first version before it checks the target, so
// the file says "failed" with the rerun's PID (or, if it could not be
// written, is gone), and describes the run that was started last, as its
// documentation promises; a "completed" left in place would describe
// another run than the one the caller started. The rerun leaves no
// temporary file of its own behind.
const InvRerunNotCompleted = "rerun-not-completed"

// Kinds of rerun after a completed run (Rerun.Kind).
const (
	// RerunTargetNotEmpty is the same command again: the target holds the
	// completed backup.
	RerunTargetNotEmpty = "target-not-empty"
	// RerunServerDown is the same command into a fresh target with the
	// server unreachable (a port nothing listens on): a nightly job that
	// reuses the status file with a directory per night, on a night the
	// server is down.
	RerunServerDown = "server-down"
)

// Rerun is how the same pg_basebackup command, run again into the target
// of a run that completed, went.
type Rerun struct {
	// Kind says how the rerun was bound to fail (RerunTargetNotEmpty,
	// RerunServerDown).
	Kind string `json:"kind"`
	// FreshTargetLeft is set when a RerunServerDown run left its fresh
	// target behind.
	FreshTargetLeft bool `json:"fresh_target_left,omitempty"`
	// Exit is the rerun's exit code (1 when it could not run or was
	// killed); PID its process.
	Exit int `json:"exit"`
	PID  int `json:"pid,omitempty"`
	// Status is the STATUS of the status file after the rerun ("" for
	// none, "invalid" for one that does not parse), StatusPID its PID.
	Status    string `json:"status,omitempty"`
	StatusPID int    `json:"status_pid,omitempty"`
	// Changed says the status file is not byte for byte what it was;
	// TmpFilesLeft names the temporary files (FILE.PID.tmp, FILE.tmp) that
	// appeared.
	Changed      bool     `json:"changed,omitempty"`
	TmpFilesLeft []string `json:"tmp_files_left,omitempty"`
	// DirsChanged lists what changed in the completed backup's
	// directories.
	DirsChanged []string `json:"dirs_changed,omitempty"`
	// Log is the end of its output.
	Log string `json:"log,omitempty"`
}

// rerunOverCompleted runs, after a trial whose status file says completed
// (on the ordinary file system), the same pg_basebackup command twice
// more, with the same status file: into a fresh target with the server
// unreachable (rec.RerunServerDown), then, with the status file put back
// as the completed run left it, into the same target (rec.Rerun). It adds
// the violations; dirs are the directories the run wrote the backup into.
// A run that wrote to standard output (-D -) has no directory to collide
// with: the same command is a new backup, and is not run.
func rerunOverCompleted(ctx context.Context, s Spec, rec *Record, dirs []string) error {
	if !rec.StatusFile || rec.StatusPath == "" || rec.Disk != nil || !rec.StatusCompleted() || s.Scenario.Stdout {
		return nil
	}
	path := rec.StatusPath
	before, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("rerun: %w", err)
	}
	fresh := filepath.Join(filepath.Dir(path), "rerun-fresh-target")
	down, err := serverDownArgs(rec.Args, fresh)
	if err != nil {
		return fmt.Errorf("rerun: %w", err)
	}
	r, err := rerunOnce(ctx, s, rec, dirs, RerunServerDown, down)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(fresh); err == nil {
		r.FreshTargetLeft = true
		if err := os.RemoveAll(fresh); err != nil {
			return fmt.Errorf("rerun: %w", err)
		}
	}
	rec.RerunServerDown = r
	rec.Violations = append(rec.Violations, checkRerun(r)...)
	if err := restoreFile(path, before, s.Acct.UID, s.Acct.GID); err != nil {
		return fmt.Errorf("rerun: put the completed status file back: %w", err)
	}
	r, err = rerunOnce(ctx, s, rec, dirs, RerunTargetNotEmpty, rec.Args)
	if err != nil {
		return err
	}
	rec.Rerun = r
	rec.Violations = append(rec.Violations, checkRerun(r)...)
	return nil
}

// serverDownArgs returns args (a pg_basebackup command line of the trial)
// with the target replaced by fresh and the port by one nothing listens
// on.
func serverDownArgs(args []string, fresh string) ([]string, error) {
	port, err := closedPort()
	if err != nil {
		return nil, err
	}
	out := slices.Clone(args)
	var sawD, sawP bool
	for i := 0; i+1 < len(out); i++ {
		switch out[i] {
		case "-D":
			out[i+1], sawD = fresh, true
		case "-p":
			out[i+1], sawP = strconv.Itoa(port), true
		}
	}
	if !sawD || !sawP {
		return nil, fmt.Errorf("the trial's command has no -D or no -p: %q", args)
	}
	return out, nil
}

// closedPort returns a TCP port of the loopback interface that nothing
// listens on (it was free a moment ago: a server that took it since would
// refuse pg_basebackup's user or database anyway).
func closedPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// restoreFile puts data back at path as a file of uid and gid, by rename,
// as pg_basebackup writes its status file.
func restoreFile(path string, data []byte, uid, gid uint32) error {
	tmp := path + ".harness-restore"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Lchown(tmp, int(uid), int(gid)); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// rerunOnce runs args, a pg_basebackup command given the completed run's
// status file, and says how it went: its exit, the status file after it,
// the temporary files it left, what changed in dirs.
func rerunOnce(ctx context.Context, s Spec, rec *Record, dirs []string, kind string, args []string) (*Rerun, error) {
	path := rec.StatusPath
	before, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rerun: %w", err)
	}
	tmpBefore, err := status.TempFiles(path)
	if err != nil {
		return nil, fmt.Errorf("rerun: %w", err)
	}
	dirsBefore, err := snapshotDirs(dirs)
	if err != nil {
		return nil, fmt.Errorf("rerun: %w", err)
	}
	cmd := proc.Command(ctx, s.Acct, []string{"TZ=" + rec.TZ}, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r := &Rerun{Kind: kind, Log: proc.Tail(out.String(), 4)}
	if cmd.Process != nil {
		r.PID = cmd.Process.Pid
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		r.Exit = exit.ExitCode()
	case err != nil:
		r.Exit = 1
	}
	after, rerr := os.ReadFile(path)
	r.Changed = rerr != nil || !bytes.Equal(before, after)
	if rerr == nil {
		r.Status = "invalid"
		if st, err := status.Parse(after); err == nil {
			r.Status, r.StatusPID = st.State.String(), st.PID
		}
	}
	tmpAfter, err := status.TempFiles(path)
	if err != nil {
		return nil, fmt.Errorf("rerun: %w", err)
	}
	for _, p := range tmpAfter {
		if !slices.Contains(tmpBefore, p) {
			r.TmpFilesLeft = append(r.TmpFilesLeft, p)
		}
	}
	dirsAfter, err := snapshotDirs(dirs)
	if err != nil {
		return nil, fmt.Errorf("rerun: %w", err)
	}
	r.DirsChanged = diffSnapshots(dirsBefore, dirsAfter)
	return r, nil
}

// checkRerun returns the InvRerunNotCompleted violations of r, a rerun
// over a completed backup.
func checkRerun(r *Rerun) []Violation {
	var vs []Violation
	what := "the same command run again into the completed backup's directory"
	if r.Kind == RerunServerDown {
		what = "the same command run again into a fresh directory, the server unreachable,"
	}
	add := func(format string, args ...any) {
		vs = append(vs, Violation{InvRerunNotCompleted, strings.Replace(fmt.Sprintf(format, args...), "the same command run again into the completed backup's directory", what, 1)})
	}
	if r.FreshTargetLeft {
		add("the same command run again into the completed backup's directory left its fresh target behind, although it failed before writing anything there")
	}
	if len(r.DirsChanged) > 0 {
		add("the same command run again into the completed backup's directory changed the backup: %s", strings.Join(r.DirsChanged, "; "))
	}
	if len(r.TmpFilesLeft) > 0 {
		add("the same command run again left a temporary status file: %s", strings.Join(r.TmpFilesLeft, ", "))
	}
	if r.Exit == 0 {
		add("the same command run again into the completed backup's directory exited 0")
		return vs
	}
	switch {
	case r.Status == "completed" && !r.Changed:
		add("the same command run again into the completed backup's directory exited %d and left the earlier run's completed status file (PID %d) in place, which no longer describes the run started last (PID %d): %s",
			r.Exit, r.StatusPID, r.PID, r.Log)
	case r.Status == "completed":
		add("the same command run again into the completed backup's directory exited %d, but rewrote the status file to say completed (PID %d; the rerun's is %d): %s",
			r.Exit, r.StatusPID, r.PID, r.Log)
	case r.Status == "":
		// Removed because it could not be written: allowed, and it no
		// longer says completed.
	case r.Status != "failed" || r.StatusPID != r.PID:
		add("the same command run again into the completed backup's directory exited %d and left a status file that says %s, want failed with the rerun's PID %d: %s",
			r.Exit, describeRerunStatus(r), r.PID, r.Log)
	}
	return vs
}

// describeRerunStatus says what the status file said after a rerun.
func describeRerunStatus(r *Rerun) string {
	switch r.Status {
	case "":
		return "nothing (no file)"
	case "invalid":
		return "nothing valid"
	}
	return fmt.Sprintf("%q with PID %d", r.Status, r.StatusPID)
}

// snapshotDirs snapshots each of dirs (see snapshot) into one map; a
// directory that does not exist has no entry.
func snapshotDirs(dirs []string) (map[string]string, error) {
	all := map[string]string{}
	for _, d := range dirs {
		if _, err := os.Lstat(d); errors.Is(err, os.ErrNotExist) {
			continue
		}
		m, err := snapshot(d, func(string) bool { return false })
		if err != nil {
			return nil, err
		}
		for p, v := range m {
			all[p] = v
		}
	}
	return all, nil
}
