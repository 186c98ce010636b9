package trial

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pgbb/pgbb/harness/explore"
	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
)

// DiskResult is what the power-loss layer saw in a trial, and what its
// torn states of the status file read as.
type DiskResult struct {
	*fault.DiskReport
	// TornViews is the number of distinct contents the status file has in
	// the torn states (every prefix of each write of the status file or
	// its temporary file, and each temporary file not renamed).
	TornViews int `json:"torn_views"`
	// TornInvalid lists torn states in which the status file is present
	// but not valid (a torn or damaged file: none may exist).
	TornInvalid []TornCheck `json:"torn_invalid,omitempty"`
	// TornCompleted lists torn states in which the status file reads
	// completed, with the oracle's verdict on that state's backup.
	TornCompleted []TornCheck `json:"torn_completed,omitempty"`
	// FirstVersionLost says why the power cut took the status file away
	// although the run's first version of it had returned before
	// (explore.FirstVersionDoneLog): at a reused status path an earlier
	// run's file would be back.
	FirstVersionLost string `json:"first_version_lost,omitempty"`
}

// TornCheck is the reading of one torn state.
type TornCheck struct {
	// State names the torn state.
	State string `json:"state"`
	// Status is the status file in it.
	Status StatusFile `json:"status"`
	// Oracle is the verdict on the state's backup, when it was judged.
	Oracle *oracle.Verdict `json:"oracle,omitempty"`
}

// maxTornOracles bounds how many torn states per trial the oracle judges
// (each one is a server start).
const maxTornOracles = 2

// checkTorn reads the status file of every torn state with the trial's
// reader, and has the oracle judge the backup of the first states whose
// status reads completed.
func checkTorn(ctx context.Context, s Spec, rec *Record, d *fault.Disk) error {
	if rec.Disk == nil || !s.StatusFile {
		return nil
	}
	rel, err := filepath.Rel(d.Mountpoint, d.StatusFile)
	if err != nil {
		return err
	}
	if err := checkFirstVersion(rec, d, filepath.ToSlash(rel)); err != nil {
		return err
	}
	views := d.StatusViews(filepath.ToSlash(rel))
	rec.Disk.TornViews = len(views)
	rec.Disk.TornStates = len(d.FS.TornStates())
	dir := filepath.Join(s.Dir, "torn")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("torn states: %w", err)
	}
	defer os.RemoveAll(dir)
	judged := 0
	for i, v := range views {
		p := filepath.Join(dir, fmt.Sprintf("view%d", i), filepath.Base(d.StatusFile))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("torn states: %w", err)
		}
		if err := os.WriteFile(p, v.Content, 0o644); err != nil {
			return fmt.Errorf("torn states: %w", err)
		}
		sf := s.Status.Read(p)
		c := TornCheck{State: v.State, Status: sf}
		switch {
		case sf.Present && !sf.Valid:
			rec.Disk.TornInvalid = append(rec.Disk.TornInvalid, c)
		case sf.Valid && sf.State == "completed":
			if judged < maxTornOracles {
				judged++
				verdict, err := judgeTorn(ctx, s, rec, v, filepath.Join(dir, fmt.Sprintf("state%d", i)))
				if err != nil {
					return err
				}
				c.Oracle = verdict
			}
			rec.Disk.TornCompleted = append(rec.Disk.TornCompleted, c)
		}
	}
	return nil
}

// checkFirstVersion records in rec.Disk that the durable state after the
// power cut has no status file, although the run had gone on to other
// work after its first version of it (at rel, relative to the layer's
// root) returned.
func checkFirstVersion(rec *Record, d *fault.Disk, rel string) error {
	first := explore.FirstVersionDoneLog(d.FS.Log(), rel)
	if first == 0 || rec.Disk.Ops < first {
		return nil
	}
	_, err := os.Lstat(d.StatusFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rec.Disk.FirstVersionLost = fmt.Sprintf("the power was cut after operation %d, and the run's first version of the status file had returned before operation %d, yet no status file survived", rec.Disk.Ops, first)
	case err != nil:
		return fmt.Errorf("first status version: %w", err)
	}
	return nil
}

// judgeTorn materialises a torn state and has the oracle judge its
// backup. Its tablespace links still point at the final durable state's
// tablespace directories.
func judgeTorn(ctx context.Context, s Spec, rec *Record, v fault.TornView, dir string) (*oracle.Verdict, error) {
	tree := filepath.Join(dir, "disk")
	if err := v.Materialise(tree); err != nil {
		return nil, fmt.Errorf("torn state %s: %w", v.State, err)
	}
	if err := s.Acct.MkdirAll(filepath.Join(dir, "oracle"), 0o755); err != nil {
		return nil, err
	}
	verdict, err := oracle.Judge(ctx, oracle.Input{
		BinDir: s.BinDir, Acct: s.Acct, Target: filepath.Join(tree, "target"), Format: s.Scenario.Format,
		WALMethod: s.Scenario.WALMethod, Manifest: s.Scenario.Manifest, Scratch: filepath.Join(dir, "oracle"),
		Before: rec.Before, After: rec.After,
	})
	if err != nil {
		return nil, fmt.Errorf("torn state %s: oracle: %w", v.State, err)
	}
	return &verdict, nil
}

// checkDisk returns the invariants the torn states of the status file
// break: a torn state is never an invalid file, and reads completed only
// over a backup the oracle finds complete.
func checkDisk(r *Record) []Violation {
	if r.Disk == nil {
		return nil
	}
	var vs []Violation
	for _, c := range r.Disk.TornInvalid {
		msg := "torn state " + c.State + ": status file is invalid: " + c.Status.Error
		if c.Status.ClaimsCompleted {
			msg = "torn state " + c.State + ": torn status file reads \"STATUS: completed\": " + c.Status.Error
		}
		vs = append(vs, Violation{Invariant: InvNotTorn, Message: msg})
	}
	if r.Disk.FirstVersionLost != "" {
		vs = append(vs, Violation{Invariant: InvFirstVersionDurable, Message: r.Disk.FirstVersionLost})
	}
	for _, c := range r.Disk.TornCompleted {
		switch {
		case c.Oracle == nil:
			vs = append(vs, Violation{Invariant: InvCompletedVerified,
				Message: "torn state " + c.State + ": status reads completed; not judged (too many such states)"})
		case !c.Oracle.Complete:
			vs = append(vs, Violation{Invariant: InvCompletedVerified,
				Message: "torn state " + c.State + ": status reads completed but the oracle rejects the backup: " + c.Oracle.Reason})
		}
	}
	return vs
}
