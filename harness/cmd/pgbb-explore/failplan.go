package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/explore"
	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// failKind is a kind of failing reference run: the fault that makes the
// run fail, and what the REASON of its "failed" status must name.
type failKind struct {
	// name names the kind in -failing and in file names.
	name string
	// reason is a word the REASON must hold.
	reason string
	// plan makes the run's fault plan.
	plan func() fault.Fault
}

// failKinds are the failing runs the explorer can journal.
var failKinds = []failKind{
	{name: "eio-sync", reason: "syncing", plan: func() fault.Fault { return eioSyncPlan{} }},
	{name: "sigterm", reason: "SIGTERM", plan: func() fault.Fault { return sigtermPlan{} }},
}

// journaledDisk puts a failing run on a journaled power-loss layer (as
// the clean calibration run is) and cuts the power once its process
// group is gone, so that the journal holds the whole run.
type journaledDisk struct{}

// Available says why the layer cannot run here.
func (journaledDisk) Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: the power-loss layer mounts a FUSE file system")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("needs /dev/fuse: %w", err)
	}
	return nil
}

// Prepare mounts the journaled layer for the run.
func (journaledDisk) Prepare(ctx context.Context, t *fault.Target) (func(), error) {
	d, err := fault.MountDisk(ctx, t.Dir, t.Acct, t.Tablespaces, status.FileName, powerfs.Journaled())
	if err != nil {
		return nil, err
	}
	t.Disk = d
	return func() { d.Close() }, nil
}

// Settle cuts the power and writes the journal.
func (journaledDisk) Settle(ctx context.Context, t *fault.Target, inj *fault.Injection, out *fault.Settled) error {
	rep, err := t.Disk.PowerOff()
	out.Disk = rep
	return err
}

// eioSyncPlan fails with EIO one open for writing of the final sync walk
// (its fsync pass opens every file O_RDWR): the run fails while syncing.
// The rule is set once the data is in (the opens for writing from then
// on are the sync walk's), on the Nth such open, N sampled over the first
// half of the files.
type eioSyncPlan struct{ journaledDisk }

// Name is the campaign's plan of the same fault, so that the trial
// judges the run as it judges that plan's.
func (eioSyncPlan) Name() string { return scenario.PlanEIOOpenSync }

// Inject sets the rule when the data is in and waits for the run's end.
func (eioSyncPlan) Inject(ctx context.Context, t *fault.Target) (fault.Injection, error) {
	inj := fault.Injection{Plan: scenario.PlanEIOOpenSync, Finishing: true}
	if !t.Phases.Wait(ctx, fault.PhaseEndOfData, t.Done) {
		inj.Detail = "the run ended before the end of its data"
		return inj, ctx.Err()
	}
	files, _ := t.Disk.FS.Stats()
	r := powerfs.Rule{Op: powerfs.OpOpen, ForWrite: true, Nth: 1 + t.Rand.IntN(max(files/2, 1)), Times: 1}
	t.Disk.FS.AddRule(r)
	inj.Anchor = fault.PhaseEndOfData.String()
	inj.Detail = r.String() + " (counted from the end of the data)"
	select {
	case <-t.Done:
	case <-ctx.Done():
		return inj, ctx.Err()
	}
	for _, op := range t.Disk.FS.Log() {
		if op.Injected {
			inj.Fired, inj.At = true, op.At
			inj.Detail += ": " + op.String()
			break
		}
	}
	return inj, nil
}

// sigtermPlan sends SIGTERM to pg_basebackup alone while it streams:
// once the data is arriving and the WAL streaming child has written to
// the layer, after a seeded delay of up to 200 ms. It marks the journal
// (explore.MarkFailing) just before.
type sigtermPlan struct{ journaledDisk }

// Name is the campaign's plan of the same signal, so that the trial
// judges the run as it judges that plan's (signal-fails-run).
func (sigtermPlan) Name() string { return scenario.PlanTerm }

// Inject waits for the WAL child's first write, then signals.
func (sigtermPlan) Inject(ctx context.Context, t *fault.Target) (fault.Injection, error) {
	inj := fault.Injection{Plan: scenario.PlanTerm, Anchor: fault.PhaseReceiving.String(), Detail: "SIGTERM"}
	if !t.Phases.Wait(ctx, fault.PhaseReceiving, t.Done) {
		inj.Detail = "the run ended before it received data"
		return inj, ctx.Err()
	}
	if !waitChildOp(ctx, t) {
		inj.Detail = "the WAL streaming child never wrote before the run ended"
		return inj, ctx.Err()
	}
	delay := time.Duration(t.Rand.IntN(200)) * time.Millisecond
	select {
	case <-time.After(delay):
	case <-t.Done:
		inj.Detail = "the run ended first"
		return inj, nil
	case <-ctx.Done():
		return inj, ctx.Err()
	}
	t.Disk.FS.Mark(explore.MarkFailing)
	inj.Fired, inj.At, inj.Phase = true, t.Phases.Elapsed(), t.Phases.Current().String()
	inj.Offset = delay
	if err := syscall.Kill(t.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return inj, fmt.Errorf("SIGTERM to %d: %w", t.PID, err)
	}
	inj.Detail = fmt.Sprintf("SIGTERM %s after the WAL child's first write", delay)
	return inj, nil
}

// waitChildOp waits until a process of the run other than pg_basebackup
// itself (its WAL streaming child) has operated on the layer; false when
// the run ended first.
func waitChildOp(ctx context.Context, t *fault.Target) bool {
	seen := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		log := t.Disk.FS.Log()
		for _, op := range log[seen:] {
			if op.PID != 0 && int(op.PID) != t.PID {
				return true
			}
		}
		seen = len(log)
		select {
		case <-tick.C:
		case <-t.Done:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
