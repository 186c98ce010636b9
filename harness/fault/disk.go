package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// Disk is a trial's backup storage on the power-loss layer
// (harness/powerfs): one file system mounted on <trial>/disk, holding the
// backup target, the tablespace directories and the directory of the
// status file, made durable before the run as an operator's prepared
// directories are. Every file-system call
// of the pg_basebackup process tree under them goes through the layer
// and is counted once. After the run, PowerOff cuts the power (unless a
// fault already did), unmounts, and materialises the durable state on the
// same paths, so the trial reads its signals and the oracle judges
// exactly what a machine would find after rebooting.
type Disk struct {
	// FS is the layer.
	FS *powerfs.FS
	// Mountpoint is where it is mounted, and where the durable state is
	// materialised after PowerOff.
	Mountpoint string
	// Target is pg_basebackup's -D directory; Tablespaces the
	// --tablespace-mapping directories; StatusFile the --status-file, in
	// a directory of its own next to them.
	Target      string
	Tablespaces []string
	StatusFile  string
	off         bool
	journaled   bool
}

// StatusDirName is the directory, next to the target, that holds a trial's
// status file: outside every directory pg_basebackup writes.
const StatusDirName = "status"

// JournalFile is the file, in the trial's directory, into which PowerOff
// writes the journal of a journaled disk (DiskCount's): every operation of
// the run with what it changed, for the offline explorer
// (harness/explore).
const JournalFile = "ops.journal"

// MarkFinishing is the journal mark DiskCount sets where it sees the
// finishing part of the run start.
const MarkFinishing = "finishing"

// DiskReport is what the layer saw in one trial.
type DiskReport struct {
	// Counts are the operations of each kind the process tree attempted.
	Counts map[string]int `json:"counts"`
	// Written is the number of bytes written.
	Written int64 `json:"written"`
	// Ops is the number of operations logged before the power was cut.
	Ops int `json:"ops"`
	// CrashOp is the operation a crash point cut the power at.
	CrashOp *powerfs.Op `json:"crash_op,omitempty"`
	// LastOps are the last operations before the power went.
	LastOps []string `json:"last_ops,omitempty"`
	// Refused counts operations that failed because the power was off.
	Refused int `json:"refused,omitempty"`
	// Rules are the fault rules in force and how often each fired.
	Rules    []string `json:"rules,omitempty"`
	RuleHits []int    `json:"rule_hits,omitempty"`
	// SpaceLimit is the ENOSPC byte count, 0 for none.
	SpaceLimit int64 `json:"space_limit,omitempty"`
	// TornStates is the number of torn states of the status file checked.
	TornStates int `json:"torn_states"`
	// Journal is the journal file of a journaled disk (JournalFile).
	Journal string `json:"journal,omitempty"`
}

// diskPlan is a plan that runs on the power-loss layer: it prepares the
// layer before the run and cuts its power after (onDisk).
type diskPlan interface {
	Fault
	Preparer
	Settler
}

// onDisk is the part of the disk plans that puts the run's target,
// tablespaces and status file on the power-loss layer before it starts
// (MountDisk) and cuts the power once its process tree is gone
// (PowerOff). A plan embedding it needs the disk calibration run.
type onDisk struct {
	// opts go to the layer.
	opts []powerfs.Option
}

// Prepare mounts the layer for the run.
func (o onDisk) Prepare(ctx context.Context, t *Target) (func(), error) {
	d, err := MountDisk(ctx, t.Dir, t.Acct, t.Tablespaces, status.FileName, o.opts...)
	if err != nil {
		return nil, err
	}
	t.Disk = d
	return func() { d.Close() }, nil
}

// Settle cuts the power: only the layer's durable state remains, at the
// paths the run wrote.
func (onDisk) Settle(ctx context.Context, t *Target, inj *Injection, out *Settled) error {
	rep, err := t.Disk.PowerOff()
	out.Disk = rep
	return err
}

func (onDisk) calibrator() Calibrator { return NewDiskCount() }

// MountDisk mounts the layer on dir/disk with the target, tablespace and
// status directories in it, owned by acct, durable from the start; the
// status file is statusName in the status directory, and the torn states
// of it and its temporary files (isStatusFile) are recorded. opts go to
// the layer.
func MountDisk(ctx context.Context, dir string, acct osuser.Account, tablespaces int, statusName string, opts ...powerfs.Option) (*Disk, error) {
	mp := filepath.Join(dir, "disk")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	// The unprivileged user must reach the mount point.
	if err := os.Chmod(mp, 0o755); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	fs := powerfs.New(append([]powerfs.Option{powerfs.Owner(acct.UID, acct.GID), powerfs.RootMode(0o755)}, opts...)...)
	d := &Disk{FS: fs, Mountpoint: mp, Target: filepath.Join(mp, "target")}
	d.journaled = fs.Journaling()
	if err := fs.MkdirAll("target", 0o700); err != nil {
		return nil, err
	}
	for i := 1; i <= tablespaces; i++ {
		name := fmt.Sprintf("ts%d", i)
		if err := fs.MkdirAll(name, 0o700); err != nil {
			return nil, err
		}
		d.Tablespaces = append(d.Tablespaces, filepath.Join(mp, name))
	}
	if err := fs.MkdirAll(StatusDirName, 0o700); err != nil {
		return nil, err
	}
	d.StatusFile = filepath.Join(mp, StatusDirName, statusName)
	fs.TrackTornFunc(func(name string) bool { return isStatusFile(statusName, name) })
	if err := fs.Mount(ctx, mp); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	return d, nil
}

// isStatusFile says whether a file called name is the status file called
// statusName or one of its temporary files: statusName.PID.tmp, PID being
// the writer's, which is not known before the run starts, or the legacy
// statusName.tmp (status.ParseTempPath).
func isStatusFile(statusName, name string) bool {
	_, tmp := status.ParseTempPath(statusName, name)
	return name == statusName || tmp
}

// PowerOff cuts the power (if a fault did not already), unmounts, and
// writes the durable state into the mount point, so that Target and
// Tablespaces now hold what survived. Call it once pg_basebackup's whole
// process tree is gone.
func (d *Disk) PowerOff() (*DiskReport, error) {
	if d.off {
		return nil, errors.New("disk: already powered off")
	}
	snap := d.FS.PowerLoss()
	rep := d.report(snap.Seq)
	if err := d.FS.Unmount(); err != nil {
		return rep, fmt.Errorf("disk: %w", err)
	}
	d.off = true
	if d.journaled {
		j, err := d.FS.Journal(map[string]string{"mountpoint": d.Mountpoint, "target": d.Target,
			"tablespaces": strings.Join(d.Tablespaces, ","), "status": d.StatusFile})
		if err == nil {
			rep.Journal = filepath.Join(filepath.Dir(d.Mountpoint), JournalFile)
			err = j.WriteFile(rep.Journal)
		}
		if err != nil {
			return rep, fmt.Errorf("disk: %w", err)
		}
	}
	if err := snap.Materialise(d.Mountpoint); err != nil {
		return rep, fmt.Errorf("disk: %w", err)
	}
	return rep, nil
}

// Close unmounts the layer if PowerOff did not; for error paths.
func (d *Disk) Close() error {
	if d.off {
		return nil
	}
	d.off = true
	d.FS.PowerLoss()
	return d.FS.Unmount()
}

// report summarises the layer's log.
func (d *Disk) report(seq int) *DiskReport {
	fs := d.FS
	rep := &DiskReport{Counts: fs.Counts(), Written: fs.Written(), Ops: seq, Refused: fs.Refused(),
		RuleHits: fs.RuleHits(), SpaceLimit: fs.SpaceLimit()}
	if op, ok := fs.CrashOp(); ok {
		rep.CrashOp = &op
	}
	for _, r := range fs.Rules() {
		rep.Rules = append(rep.Rules, r.String())
	}
	log := fs.Log()
	for _, op := range log[max(0, len(log)-8):] {
		rep.LastOps = append(rep.LastOps, op.String())
	}
	return rep
}

// TornView is what a reader of the status file would find in one torn
// state.
type TornView struct {
	// State names the torn state.
	State string
	// Content is the status file's content in it.
	Content []byte
	torn    powerfs.TornState
}

// Materialise writes the torn state's whole durable tree into dst.
func (v TornView) Materialise(dst string) error { return v.torn.Materialise(dst) }

// StatusViews returns the distinct contents the status file at rel
// (relative to the mount point, e.g. "target/backup_status") has in the
// torn states recorded: a torn write of it, or the durable file at that
// moment when the write or rename was of the temporary file.
func (d *Disk) StatusViews(rel string) []TornView {
	seen := map[string]bool{}
	var out []TornView
	for _, t := range d.FS.TornStates() {
		content, name := t.Content, t.String()
		if t.Path != rel {
			b, err := t.Base.ReadFile(rel)
			if err != nil {
				continue
			}
			content = b
			name = fmt.Sprintf("%s as durable at #%d (%s)", rel, t.Seq, t)
		}
		if seen[string(content)] {
			continue
		}
		seen[string(content)] = true
		out = append(out, TornView{State: name, Content: content, torn: t})
	}
	return out
}

// diskAvailable says why the layer cannot run on this machine.
func diskAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: the power-loss layer mounts a FUSE file system with mount(2)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("needs the kernel's FUSE device (in a container: --device /dev/fuse --cap-add SYS_ADMIN): %w", err)
	}
	return nil
}

var (
	_ diskPlan = powerLossTime{}
	_ diskPlan = powerLossAt{}
	_ diskPlan = eioFault{}
	_ diskPlan = enospcFault{}
	_ diskPlan = &DiskCount{}
)

// finishingPhases are the phases, in order, that may start the finishing
// part of a run.
var finishingPhases = []Phase{PhaseEndOfData, PhaseWALWait, PhaseSync, PhaseRename, PhaseCompleted}

// waitFinishing waits for the finishing part of the run: the first of
// finishingPhases it reaches. false when the run ended first.
func waitFinishing(ctx context.Context, t *Target) (Phase, bool) {
	for _, p := range finishingPhases {
		if t.Phases.Wait(ctx, p, t.Done) {
			return p, true
		}
		select {
		case <-t.Done:
			return p, false
		case <-ctx.Done():
			return p, false
		default:
		}
	}
	return PhaseCompleted, false
}

// killTree SIGKILLs pg_basebackup's process group (the WAL child too):
// the power is off, the machine is gone.
func killTree(t *Target) error {
	if err := syscall.Kill(-t.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", t.PID, err)
	}
	return nil
}

// needDisk returns the target's disk or an error.
func needDisk(t *Target, plan string) (*Disk, error) {
	if t.Disk == nil {
		return nil, fmt.Errorf("%s: the trial has no power-loss disk", plan)
	}
	return t.Disk, nil
}

// atScheduledTime schedules the disk plan name at a random time over the
// calibrated clean run from phase from on (weighted towards the
// finishing part, as the kill plan is) and waits for it. ok is false,
// with the error to return, when the plan cannot run or the run ended (or
// ctx was cancelled) first.
func atScheduledTime(ctx context.Context, t *Target, name string, from Phase) (inj Injection, d *Disk, ok bool, err error) {
	anchor, off, fin := schedule(t.Rand, t.Calibration.Timeline, from)
	inj = Injection{Plan: name, Anchor: anchor.String(), Offset: off, Finishing: fin}
	if d, err = needDisk(t, name); err != nil {
		return inj, nil, false, err
	}
	if !wait(ctx, t, anchor, off) {
		return inj, nil, false, ctx.Err()
	}
	return inj, d, true, nil
}

// powerLossTime cuts the power at a random time over a calibrated clean
// run, weighted towards the finishing part, like the kill plan.
type powerLossTime struct{ onDisk }

func (powerLossTime) Name() string     { return scenario.PlanPowerLoss }
func (powerLossTime) Available() error { return diskAvailable() }
func (f powerLossTime) Inject(ctx context.Context, t *Target) (Injection, error) {
	inj, d, ok, err := atScheduledTime(ctx, t, f.Name(), PhaseStart)
	if !ok {
		return inj, err
	}
	fired(&inj, t)
	snap := d.FS.PowerLoss()
	inj.Detail = fmt.Sprintf("power cut after operation #%d", snap.Seq)
	return inj, killTree(t)
}

// powerLossAt cuts the power before or after a sampled operation of one
// kind in the finishing part of the run. The operation is counted over
// the whole process tree from the moment the finishing part starts; the
// sample is uniform over an estimate of how many such operations the
// finishing part has (the sync walk visits every file and directory) for
// half of the trials, and among the last 16 of the estimate for the
// other half.
type powerLossAt struct {
	onDisk
	name string
	kind powerfs.OpKind
}

func (f powerLossAt) Name() string   { return f.name }
func (powerLossAt) Available() error { return diskAvailable() }
func (f powerLossAt) Inject(ctx context.Context, t *Target) (Injection, error) {
	inj, d, ok, err := startFinishing(ctx, t, f.name)
	if !ok {
		return inj, err
	}
	files, dirs := d.FS.Stats()
	est := finishingOps(t, f.kind, files, dirs)
	k := 1 + t.Rand.IntN(est)
	if t.Rand.IntN(2) == 0 {
		// Half of the samples among the last 16 of the estimate, where
		// the manifest and the status file are synced and renamed.
		k = est - t.Rand.IntN(min(16, est))
	}
	cp := powerfs.CrashPoint{Op: f.kind, N: d.FS.Count(f.kind) + k, After: t.Rand.IntN(2) == 1}
	d.FS.SetCrashPoints(cp)
	inj.Detail = fmt.Sprintf("%s (finishing %s %d of about %d)", cp, f.kind, k, est)
	select {
	case <-d.FS.Crashed():
		fired(&inj, t)
		if op, ok := d.FS.CrashOp(); ok {
			inj.Detail += ": " + op.String()
		}
		return inj, killTree(t)
	case <-t.Done:
		inj.Detail += ": not reached before the run ended"
		return inj, nil
	case <-ctx.Done():
		return inj, ctx.Err()
	}
}

// startFinishing is the common start of the plans that strike in the
// finishing part of a run: it checks that the trial runs on the disk
// layer and waits for the finishing part. ok is false when the plan must
// stop there, with err saying why (nil when the run simply ended first).
func startFinishing(ctx context.Context, t *Target, plan string) (inj Injection, d *Disk, ok bool, err error) {
	inj = Injection{Plan: plan, Finishing: true}
	if d, err = needDisk(t, plan); err != nil {
		return inj, nil, false, err
	}
	anchor, reached := waitFinishing(ctx, t)
	inj.Anchor = anchor.String()
	if !reached {
		inj.Detail = "the run ended before its finishing part"
		return inj, nil, false, ctx.Err()
	}
	return inj, d, true, nil
}

// finishingOps is how many operations of a kind the finishing part of
// the run has: as counted by the clean run on the layer that calibrates
// the trials (DiskCount), else estimated.
func finishingOps(t *Target, k powerfs.OpKind, files, dirs int) int {
	if n := t.Calibration.DiskOps[k.String()]; n > 0 {
		return int(n)
	}
	return estimate(k, files, dirs)
}

// estimate is how many operations of a kind the finishing part of a run
// has, about, when no calibration run counted them (measured on 18.6
// patched, plain format, scale 1): the sync walk fsyncs every file and
// directory; five renames (the status file at three phase changes, the
// manifest, the completed status file); four or more writes (the end of
// the WAL, the status file).
func estimate(k powerfs.OpKind, files, dirs int) int {
	switch k {
	case powerfs.OpFsync:
		return files + 4
	case powerfs.OpFsyncDir:
		return dirs + 4
	case powerfs.OpRename:
		return 5
	}
	return 4
}

// DiskCount is the fault plan of the clean run on the power-loss layer
// that calibrates a scenario's disk plans, as the traced clean run does
// for kill-syscall: it injects nothing and counts the operations of each
// kind from the moment the finishing part is seen to start to the run's
// end (Injection.FinishingOps), so that the plans striking at the Nth
// operation of that part sample among the operations a run really has.
// Its layer is journaled: the explorer (harness/explore) replays the
// journal.
type DiskCount struct {
	onDisk
	ops map[string]int64
}

// NewDiskCount returns the plan of one disk calibration run.
func NewDiskCount() *DiskCount {
	return &DiskCount{onDisk: onDisk{opts: []powerfs.Option{powerfs.Journaled()}}}
}

func (*DiskCount) Name() string     { return scenario.PlanNone }
func (*DiskCount) Available() error { return diskAvailable() }

// Label names the run in trial ids.
func (*DiskCount) Label() string { return diskCountLabel }

// Calibrate gives the disk plans the counts of the finishing part.
func (c *DiskCount) Calibrate(cal *Calibration) { cal.DiskOps = c.ops }

// Inject waits for the finishing part and counts its operations.
func (c *DiskCount) Inject(ctx context.Context, t *Target) (Injection, error) {
	inj, d, ok, err := startFinishing(ctx, t, scenario.PlanNone)
	inj.Finishing = false
	if !ok {
		return inj, err
	}
	d.FS.Mark(MarkFinishing)
	var start [len(countedKinds)]int64
	for i, k := range countedKinds {
		start[i] = int64(d.FS.Count(k))
	}
	select {
	case <-t.Done:
	case <-ctx.Done():
		return inj, ctx.Err()
	}
	inj.FinishingOps = map[string]int64{}
	for i, k := range countedKinds {
		inj.FinishingOps[k.String()] = int64(d.FS.Count(k)) - start[i]
	}
	c.ops = inj.FinishingOps
	inj.Detail = fmt.Sprintf("calibration: finishing part counted from %s", inj.Anchor)
	return inj, nil
}

// countedKinds are the operations DiskCount counts.
var countedKinds = [...]powerfs.OpKind{powerfs.OpFsync, powerfs.OpFsyncDir, powerfs.OpRename, powerfs.OpWrite}

// eioFault fails one operation of the finishing part with EIO: an open
// for writing (the fsync pass of the sync walk opens every file O_RDWR),
// an fsync, a directory fsync, or a rename. The run goes on; the power is
// cut after it ends.
type eioFault struct {
	onDisk
	name string
}

func (f eioFault) Name() string   { return f.name }
func (eioFault) Available() error { return diskAvailable() }
func (f eioFault) Inject(ctx context.Context, t *Target) (Injection, error) {
	inj, d, ok, err := startFinishing(ctx, t, f.name)
	if !ok {
		return inj, err
	}
	files, dirs := d.FS.Stats()
	var r powerfs.Rule
	switch f.name {
	case scenario.PlanEIOOpenSync:
		r = powerfs.Rule{Op: powerfs.OpOpen, ForWrite: true, Nth: 1 + t.Rand.IntN(max(files, 1))}
	case scenario.PlanEIOFsync:
		r = powerfs.Rule{Op: powerfs.OpFsync, Nth: 1 + t.Rand.IntN(finishingOps(t, powerfs.OpFsync, files, dirs))}
	case scenario.PlanEIOFsyncDir:
		r = powerfs.Rule{Op: powerfs.OpFsyncDir, Nth: 1 + t.Rand.IntN(finishingOps(t, powerfs.OpFsyncDir, files, dirs))}
	default:
		r = powerfs.Rule{Op: powerfs.OpRename, Nth: 1 + t.Rand.IntN(finishingOps(t, powerfs.OpRename, files, dirs))}
	}
	r.Times = 1
	d.FS.AddRule(r)
	inj.Detail = r.String() + " (counted from the finishing part)"
	select {
	case <-t.Done:
	case <-ctx.Done():
		return inj, ctx.Err()
	}
	if hits := d.FS.RuleHits(); len(hits) > 0 && hits[len(hits)-1] > 0 {
		inj.Fired = true
		inj.Phase = t.Phases.Current().String()
		for _, op := range d.FS.Log() {
			if op.Injected && op.Kind == r.Op {
				inj.Detail += ": " + op.String()
				inj.At = op.At
				break
			}
		}
	} else {
		inj.Detail += ": no such operation"
	}
	return inj, nil
}

// statusFileIOError fails operations on the status file itself, never on
// the backup: a write of a version (EIO or ENOSPC), the fsync of its
// temporary file, its rename into place, or the fsync of its directory,
// the Nth such operation (N from 1 to 4, so that the first version can be
// hit too) or every one from the Nth on. The rule is set before the run
// starts. The run's backup must not suffer for it (trial's
// status-fault-harmless); the power is cut after the run, as for every
// disk plan.
type statusFileIOError struct {
	onDisk
	rule powerfs.Rule
}

func (*statusFileIOError) Name() string     { return scenario.PlanStatusFileIOError }
func (*statusFileIOError) Available() error { return diskAvailable() }

// Prepare mounts the layer and sets the rule.
func (f *statusFileIOError) Prepare(ctx context.Context, t *Target) (func(), error) {
	release, err := f.onDisk.Prepare(ctx, t)
	if err != nil {
		return nil, err
	}
	f.rule = statusFileRule(t.Rand, filepath.Base(t.Disk.StatusFile))
	t.Disk.FS.AddRule(f.rule)
	return release, nil
}

// statusFileRule samples the rule of statusFileIOError for a status file
// called statusName in StatusDirName.
func statusFileRule(r *rand.Rand, statusName string) powerfs.Rule {
	tmp := statusName + ".*" // FILE.PID.tmp, and the legacy FILE.tmp
	rules := []powerfs.Rule{
		{Op: powerfs.OpWrite, Path: tmp},
		{Op: powerfs.OpWrite, Path: tmp, Errno: syscall.ENOSPC},
		{Op: powerfs.OpFsync, Path: tmp},
		{Op: powerfs.OpRename, Path: statusName},
		{Op: powerfs.OpFsyncDir, Path: StatusDirName},
	}
	rule := rules[r.IntN(len(rules))]
	rule.Nth = 1 + r.IntN(4)
	if r.IntN(2) == 0 {
		rule.Times = 1
	}
	return rule
}

func (f *statusFileIOError) Inject(ctx context.Context, t *Target) (Injection, error) {
	inj := Injection{Plan: f.Name(), Detail: f.rule.String()}
	d, err := needDisk(t, f.Name())
	if err != nil {
		return inj, err
	}
	select {
	case <-t.Done:
	case <-ctx.Done():
		return inj, ctx.Err()
	}
	for _, op := range d.FS.Log() {
		if op.Injected {
			inj.Fired = true
			inj.At = op.At
			inj.Detail += ": " + op.String()
			break
		}
	}
	if !inj.Fired {
		inj.Detail += ": no such operation"
	}
	return inj, nil
}

// enospcFault makes writes fail with ENOSPC from a byte count on: at a
// random time over the run (weighted towards the finishing part, like the
// kill plan), the disk gets up to 64 kB more room (up to 4 kB in the
// finishing part, which writes little).
type enospcFault struct{ onDisk }

func (enospcFault) Name() string     { return scenario.PlanENOSPC }
func (enospcFault) Available() error { return diskAvailable() }
func (f enospcFault) Inject(ctx context.Context, t *Target) (Injection, error) {
	inj, d, ok, err := atScheduledTime(ctx, t, f.Name(), PhaseReceiving)
	if !ok {
		return inj, err
	}
	room := int64(64 << 10)
	if inj.Finishing {
		room = 4 << 10
	}
	limit := d.FS.Written() + 1 + t.Rand.Int64N(room)
	d.FS.SetSpaceLimit(limit)
	inj.Detail = fmt.Sprintf("ENOSPC from byte %d", limit)
	select {
	case <-t.Done:
	case <-ctx.Done():
		return inj, ctx.Err()
	}
	for _, op := range d.FS.Log() {
		if op.Kind == powerfs.OpWrite && op.Injected {
			inj.Fired = true
			inj.At = op.At
			inj.Detail += ": " + op.String()
			break
		}
	}
	if !inj.Fired {
		inj.Detail += ": never reached"
	}
	return inj, nil
}
