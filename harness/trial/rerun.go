package trial

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/pgbb/pgbb/harness/proc"
)

// InvRerunKeepsCompleted: a task flow that timed out retries with the
// same command. Into a target that holds a completed backup the retry must
// fail (the directory is not empty) and leave the backup's status file as
// it was, byte for byte: a retry that rewrites it ("in progress",
// "failed") hides a complete backup, and invites --remove-if-dead to
// delete it.
const InvRerunKeepsCompleted = "rerun-keeps-completed"

// Rerun is how the same pg_basebackup command, run again into the target
// of a run that completed, went.
type Rerun struct {
	// Exit is the rerun's exit code (1 for any failure to run).
	Exit int `json:"exit"`
	// Changed says the status file is not byte for byte what it was;
	// TmpLeft that its temporary file (FILE.tmp) appeared.
	Changed bool `json:"changed,omitempty"`
	TmpLeft bool `json:"tmp_left,omitempty"`
	// Log is the end of its output.
	Log string `json:"log,omitempty"`
}

// rerunOverCompleted runs, after a trial whose status file says completed
// (on the ordinary file system), the same pg_basebackup command again into
// the same target, with the same status file, records it in rec.Rerun and
// adds the violation. A run that wrote to standard output (-D -) has no
// directory to collide with: the same command is a new backup, and is not
// run.
func rerunOverCompleted(ctx context.Context, s Spec, rec *Record) error {
	if !rec.StatusFile || rec.StatusPath == "" || rec.Disk != nil || !rec.StatusCompleted() || s.Scenario.Stdout {
		return nil
	}
	path := rec.StatusPath
	before, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("rerun: %w", err)
	}
	out, err := proc.Run(ctx, s.Acct, []string{"TZ=" + rec.TZ}, rec.Args...)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r := &Rerun{Log: proc.Tail(out, 4)}
	if err != nil {
		r.Exit = 1
	}
	after, rerr := os.ReadFile(path)
	r.Changed = rerr != nil || !bytes.Equal(before, after)
	if _, err := os.Lstat(path + ".tmp"); err == nil {
		r.TmpLeft = true
	}
	rec.Rerun = r
	switch {
	case r.Exit == 0:
		rec.Violations = append(rec.Violations, Violation{InvRerunKeepsCompleted,
			"the same command run again into the completed backup's directory exited 0"})
	case r.Changed || r.TmpLeft:
		rec.Violations = append(rec.Violations, Violation{InvRerunKeepsCompleted,
			fmt.Sprintf("the same command run again into the completed backup's directory failed (as it must) but rewrote its status file (changed %t, temporary file left %t): %s", r.Changed, r.TmpLeft, r.Log)})
	}
	return nil
}
