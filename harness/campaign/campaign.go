// Package campaign runs crash scenarios end to end, top to bottom: for
// each scenario, start a source cluster per worker, load its dataset,
// start the write workload, calibrate with clean runs (the control, which
// must pass, and the fault.Calibrators the scenario's plans need: a traced
// run, a run on the power-loss layer; one fault.Calibration), then run the
// trials, each with its fault plan and seed, save
// one JSON record per trial, and keep the directories of failing trials
// with the command that replays them.
package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
	"github.com/pgbb/pgbb/harness/workload"
)

// Config says what a campaign runs and where.
type Config struct {
	// Scenarios to run, in order.
	Scenarios []scenario.Scenario
	// BinDir holds the PostgreSQL programs under test; Acct runs them.
	BinDir string
	Acct   osuser.Account
	// Variant ("patched", "stock" or a patch series label) and whether
	// the build writes a status file.
	Variant    string
	StatusFile bool
	// WrapperBin is a pgbb-run binary (BuildTool) for the wrapper
	// variant: every run, the clean ones included, is pg_basebackup
	// under it, which writes the status file; empty: none.
	WrapperBin string
	// Parallel is the number of workers (each with its own cluster).
	Parallel int
	// Seed is the campaign seed.
	Seed int64
	// Scratch is the root of clusters and trial directories.
	Scratch string
	// RunDir receives the JSON records; empty: OnRecord keeps them.
	RunDir string
	// Keep keeps every trial directory, not only failing ones.
	Keep bool
	// ReaderBin is a pgbb-status binary (BuildTool), which the stop plan
	// also runs in a PID namespace of its own; empty: it does not.
	ReaderBin string
	// OtherUser, if set, is an account of another user in Acct's group
	// (build.EnsureReader): the source is then initialised with group
	// access, so that pg_basebackup's status files are group-readable,
	// and the stop plan also runs ReaderBin as that user.
	OtherUser *osuser.Account
	// KeepFailing bounds the evidence of a badly broken build: only the
	// first KeepFailing failing trials (in the order they finish) of each
	// invariant and fault plan keep their directories; the others' are
	// removed, their records kept (Result.Dropped). 0 keeps every failing
	// trial's directory; Keep keeps everything.
	KeepFailing int
	// Replay runs only the trial of this id (<scenario>/<index>).
	Replay string
	// Shard runs only a share of the trials (ShardTrials); the zero Shard
	// runs them all.
	Shard Shard
	// ReplayCommand returns the command line that replays a trial.
	ReplayCommand func(id string) string
	// StopAtViolation ends the campaign at the first record that breaks
	// an invariant: trials already running finish, no new one starts, and
	// later scenarios do not run (the known-bad variants' tests and
	// benchmark measure the time to that record).
	StopAtViolation bool
	// Log receives progress lines; OnRecord is called for every record.
	Log      io.Writer
	OnRecord func(*trial.Record)
}

// Result is what a campaign produced.
type Result struct {
	// Records are every trial's record, calibration runs included.
	Records []*trial.Record
	// Skipped counts trials not started because a scenario's budget ran
	// out, per scenario.
	Skipped map[string]int
	// Dropped counts failing trials whose directories were removed, over
	// Config.KeepFailing.
	Dropped int
	// Elapsed is the campaign's wall time.
	Elapsed time.Duration
	// FirstViolation is the first record that broke an invariant, nil if
	// none did; ToFirstViolation the time from the campaign's start (its
	// clusters' set-up included) to that record, and RecordsToFirstViolation
	// the records finished by then, it included (control runs count: a
	// control can break an invariant too).
	FirstViolation          *trial.Record
	ToFirstViolation        time.Duration
	RecordsToFirstViolation int
}

// TrialSeed derives a trial's seed from the campaign seed, the scenario
// and the trial index, so that any trial can be replayed alone.
func TrialSeed(seed int64, scenarioName string, index int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", seed, scenarioName, index)
	return h.Sum64()
}

// ParseID splits a trial id into scenario and index.
func ParseID(id string) (string, int, error) {
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return "", 0, fmt.Errorf("trial id %q: want <scenario>/<index>", id)
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 {
		return "", 0, fmt.Errorf("trial id %q: want <scenario>/<index>", id)
	}
	return id[:i], n, nil
}

// Validate checks, before anything starts, that every scenario is
// possible and its fault plans can run on this machine.
func Validate(scs []scenario.Scenario) error {
	for _, s := range scs {
		if err := s.Check(); err != nil {
			return fmt.Errorf("%s:%d: %w", s.File, s.Line, err)
		}
		for _, p := range s.Faults {
			f, err := fault.ByName(p)
			if err != nil {
				return fmt.Errorf("%s:%d: %w", s.File, s.Line, err)
			}
			if err := f.Available(); err != nil {
				return fmt.Errorf("%s:%d: fault plan %s: %w", s.File, s.Line, p, err)
			}
		}
	}
	return nil
}

// Run runs the campaign. It returns the records gathered so far also when
// it fails (for example on Ctrl-C).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	c := newCampaign(cfg)
	c.work = c.worker
	if err := c.prepare(); err != nil {
		return c.res, err
	}
	c.checkReaders(ctx)
	err := c.run(ctx)
	c.res.Elapsed = time.Since(c.start)
	return c.res, err
}

// newCampaign makes a campaign of cfg, with at least one worker, started
// now; its work is left to the caller to set.
func newCampaign(cfg Config) *campaign {
	if cfg.Parallel < 1 {
		cfg.Parallel = 1
	}
	return &campaign{cfg: cfg, res: &Result{Skipped: map[string]int{}}, start: time.Now()}
}

// prepare checks the configuration and makes the run and scratch
// directories.
func (c *campaign) prepare() error {
	if err := Validate(c.cfg.Scenarios); err != nil {
		return err
	}
	if err := c.cfg.Shard.Check(); err != nil {
		return err
	}
	if c.cfg.Replay != "" && !c.cfg.Shard.Whole() {
		return fmt.Errorf("replay %s: a replay runs one trial, not a shard (%s)", c.cfg.Replay, c.cfg.Shard)
	}
	if c.cfg.RunDir != "" {
		if err := os.MkdirAll(filepath.Join(c.cfg.RunDir, "trials"), 0o755); err != nil {
			return fmt.Errorf("run directory: %w", err)
		}
	}
	if err := mkdirReachable(c.cfg.Acct, c.cfg.Scratch); err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	if c.cfg.OtherUser != nil {
		// The other user reaches the status files through the group.
		if err := os.Chmod(c.cfg.Scratch, 0o750); err != nil {
			return fmt.Errorf("scratch directory: %w", err)
		}
	}
	return checkSpace(c.cfg.Scratch, c.cfg.Scenarios, c.cfg.Parallel)
}

// checkReaders finds out, when a scenario has a plan that runs the built
// reader, whether it can run from another PID namespace here (a container
// may not allow it), and says on the log what the stop plan's reader will
// not run as, and why: the records say it again, for the summary.
func (c *campaign) checkReaders(ctx context.Context) {
	if !slices.ContainsFunc(c.cfg.Scenarios, func(s scenario.Scenario) bool { return fault.RunsReader(s.Faults) }) {
		return
	}
	if c.cfg.ReaderBin != "" {
		if err := fault.CheckOtherNamespace(ctx); err != nil {
			c.readerGaps.OtherNamespace = err.Error()
		}
	}
	g := fault.ReadersNotRun(&fault.Target{ReaderBin: c.cfg.ReaderBin, OtherUser: c.cfg.OtherUser, ReaderGaps: c.readerGaps})
	if g.OtherUser != "" {
		c.logf("the stop plan's reader does not run as another OS user: %s", g.OtherUser)
	}
	if g.OtherNamespace != "" {
		c.logf("the stop plan's reader does not run from another PID namespace: %s", g.OtherNamespace)
	}
}

// run runs the trials of each scenario that has any to run.
func (c *campaign) run(ctx context.Context) error {
	trials, err := c.trials()
	if err != nil {
		return err
	}
	for k, s := range c.cfg.Scenarios {
		if len(trials[k]) == 0 {
			continue
		}
		if c.stopped.Load() {
			break
		}
		if err := c.scenario(ctx, s, trials[k]); err != nil {
			return fmt.Errorf("scenario %s: %w", s.Name, err)
		}
	}
	return nil
}

// trials returns the indices of the trials to run, per scenario: the
// replayed one, or the shard's.
func (c *campaign) trials() ([][]int, error) {
	if c.cfg.Replay == "" {
		return ShardTrials(c.cfg.Scenarios, c.cfg.Seed, c.cfg.Shard), nil
	}
	name, index, err := ParseID(c.cfg.Replay)
	if err != nil {
		return nil, err
	}
	out := make([][]int, len(c.cfg.Scenarios))
	for k, s := range c.cfg.Scenarios {
		if s.Name != name {
			continue
		}
		if index >= s.Trials {
			return nil, fmt.Errorf("replay %s: scenario %s has trials 0-%d", c.cfg.Replay, s.Name, s.Trials-1)
		}
		out[k] = []int{index}
		return out, nil
	}
	return nil, fmt.Errorf("replay %s: no scenario %q among those given", c.cfg.Replay, name)
}

// workFunc runs trials from the queue on worker w of scenario s, whose
// trials have the given seed, until the queue is empty or the deadline
// passed (campaign.worker; tests give fake ones).
type workFunc func(ctx context.Context, s scenario.Scenario, seed int64, w int, queue <-chan int, deadline time.Time) error

type campaign struct {
	cfg   Config
	start time.Time
	mu    sync.Mutex
	res   *Result
	// stopped is set at the first violation when cfg.StopAtViolation.
	stopped atomic.Bool
	// kept counts the failing trials kept per invariant and plan
	// (cfg.KeepFailing), under mu.
	kept map[[2]string]int
	// work runs a worker's trials (c.worker).
	work workFunc
	// readerGaps says why the built reader cannot run as another user or
	// from another PID namespace here (checkReaders).
	readerGaps fault.ReaderGaps
}

func (c *campaign) logf(format string, args ...any) {
	if c.cfg.Log != nil {
		fmt.Fprintf(c.cfg.Log, "pgbb-crash: "+format+"\n", args...)
	}
}

// scenario runs the given trials of one scenario over the workers.
func (c *campaign) scenario(ctx context.Context, s scenario.Scenario, indices []int) error {
	seed := ScenarioSeed(c.cfg.Seed, s)
	workers := min(c.cfg.Parallel, len(indices))
	queue := make(chan int, len(indices))
	for _, i := range indices {
		queue <- i
	}
	close(queue)
	var deadline time.Time
	if s.Budget > 0 {
		deadline = time.Now().Add(s.Budget)
	}
	share := ""
	if !c.cfg.Shard.Whole() {
		share = fmt.Sprintf(" of %d (shard %s)", s.Trials, c.cfg.Shard)
	}
	c.logf("scenario %s: %d trials%s, %d workers, plans %s", s.Name, len(indices), share, workers, strings.Join(s.Faults, ","))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			if err := c.work(ctx, s, seed, w, queue, deadline); err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
				cancel()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if !errors.Is(err, context.Canceled) || len(all) == 0 {
			all = append(all, err)
		}
	}
	if len(all) > 0 {
		return all[0]
	}
	return ctx.Err()
}

// worker owns one source cluster and runs trials from the queue on it,
// after the clean runs that calibrate their faults.
func (c *campaign) worker(ctx context.Context, s scenario.Scenario, seed int64, w int, queue <-chan int, deadline time.Time) error {
	dir := filepath.Join(c.cfg.Scratch, s.Name, fmt.Sprintf("w%d", w))
	src, err := c.startSource(ctx, s, seed, w, dir)
	if err != nil {
		return err
	}
	defer src.stop(ctx, c.cfg.Keep)
	spec := func(id string, index int, f fault.Fault) trial.Spec {
		return trial.Spec{
			ID: id, Index: index, Scenario: s, Fault: f, Seed: TrialSeed(seed, s.Name, index),
			BinDir: c.cfg.BinDir, Acct: c.cfg.Acct, Variant: c.cfg.Variant, StatusFile: c.cfg.StatusFile, Wrapper: c.cfg.WrapperBin, ReaderBin: c.cfg.ReaderBin, OtherUser: c.cfg.OtherUser,
			ReaderGaps: c.readerGaps, Dir: filepath.Join(dir, fmt.Sprintf("t%d", index)), Cluster: src.cl, Workload: src.wl,
		}
	}
	cal, err := c.calibrate(ctx, s, w, dir, src, spec)
	if err != nil {
		return err
	}
	for index := range queue {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.stopped.Load() {
			return nil
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			c.mu.Lock()
			c.res.Skipped[s.Name]++
			c.mu.Unlock()
			continue
		}
		f, err := fault.ByName(TrialPlan(s, index))
		if err != nil {
			return err
		}
		ts := spec(TrialID(s, index), index, f)
		ts.Calibration = cal
		rec, err := trial.Run(ctx, ts)
		if err != nil {
			if !c.cfg.Keep {
				os.RemoveAll(ts.Dir)
			}
			return err
		}
		c.finish(rec)
		if !src.cl.Running() {
			return fmt.Errorf("source server of %s is down after trial %s", s.Name, rec.ID)
		}
	}
	return nil
}

// source is a worker's source cluster and the workload writing to it.
type source struct {
	dir string
	cl  *cluster.Cluster
	wl  *workload.Workload
}

// startSource makes, starts and loads the worker's source cluster in dir
// and starts its workload.
func (c *campaign) startSource(ctx context.Context, s scenario.Scenario, seed int64, w int, dir string) (*source, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := mkdirReachable(c.cfg.Acct, dir); err != nil {
		return nil, err
	}
	src := &source{dir: dir}
	src.cl = cluster.New(c.cfg.BinDir, c.cfg.Acct, filepath.Join(dir, "cluster"), "", cluster.WithTCP(true),
		cluster.WithGroupAccess(c.cfg.OtherUser != nil))
	err := src.cl.Init(ctx)
	if err == nil {
		err = src.cl.Start(ctx, 60*time.Second)
	}
	if err == nil {
		err = src.cl.LoadDataset(ctx, filepath.Join(dir, "cluster"), s.Scale, s.Tablespaces)
	}
	if err == nil && s.ReadOnlyFile {
		err = plantReadOnly(c.cfg.Acct, src.cl.DataDir)
	}
	if err == nil {
		src.wl, err = workload.Start(ctx, src.cl.ConnString(cluster.Database), s.Scale, s.Clients, TrialSeed(seed, s.Name, controlIndex-w))
	}
	if err != nil {
		src.stop(ctx, c.cfg.Keep)
		return nil, err
	}
	// Let the workload get going before the control run.
	time.Sleep(300 * time.Millisecond)
	return src, nil
}

// stop stops the workload and the cluster, and removes the cluster unless
// the campaign was cancelled with keep set.
func (src *source) stop(ctx context.Context, keep bool) {
	if src.wl != nil {
		src.wl.Stop()
	}
	src.cl.Cleanup()
	if ctx.Err() == nil || !keep {
		os.RemoveAll(filepath.Join(src.dir, "cluster"))
	}
}

// Clean runs of a worker, besides the trials: each has its own index
// below every trial's, for its seed, and its own directory. The control
// run is -1-w; a calibration run (fault.Calibrator) its label's base
// minus w.
const controlIndex = -1

// calibratorIndex is the base index of each calibration run's label.
var calibratorIndex = map[string]int{
	"count":      -100, // the traced clean run (kill-syscall)
	"disk-count": -200, // the clean run on the power-loss layer
}

// CleanRuns is how many clean runs each worker of scenario s makes before
// its trials (calibrate): a record each.
func CleanRuns(s scenario.Scenario) int {
	return 1 + len(fault.Calibrators(s.Faults))
}

// calibrate runs the worker's clean runs: the control, which must pass
// like any trial (the oracle always checks it) and whose timeline
// calibrates every fault, then the calibration runs the scenario's plans
// need (fault.Calibrators: a traced run, a run on the power-loss layer).
func (c *campaign) calibrate(ctx context.Context, s scenario.Scenario, w int, dir string, src *source,
	spec func(string, int, fault.Fault) trial.Spec) (fault.Calibration, error) {
	var cal fault.Calibration
	none, _ := fault.ByName(scenario.PlanNone)
	cs := spec(c.runID(s, "control", w), controlIndex-w, none)
	cs.Dir = filepath.Join(dir, "control")
	cs.ForceOracle = true
	crec, err := trial.Run(ctx, cs)
	if err != nil {
		if !c.cfg.Keep {
			os.RemoveAll(cs.Dir)
		}
		return cal, fmt.Errorf("control run: %w", err)
	}
	if !crec.Exited0() || crec.Oracle == nil || !crec.Oracle.Complete {
		why := "pg_basebackup exited " + strconv.Itoa(crec.Exit.Code)
		if crec.Oracle != nil && crec.Oracle.Reason != "" {
			why = crec.Oracle.Reason
		}
		crec.Violations = append(crec.Violations, trial.Violation{Invariant: "control-passes", Message: "the clean run failed: " + why})
	}
	cal.Timeline = crec.Timeline
	if s.StaleStatus {
		if err := plantStatus(c.cfg.Acct, crec.StatusPath, src.cl.DataDir); err != nil {
			return cal, err
		}
	}
	c.finish(crec)
	for _, cr := range fault.Calibrators(s.Faults) {
		ts := spec(c.runID(s, cr.Label(), w), calibratorIndex[cr.Label()]-w, cr)
		ts.Calibration = cal
		ts.Dir = filepath.Join(dir, cr.Label())
		if _, err := c.cleanRun(ctx, ts, "the "+cr.Label()+" calibration run"); err != nil {
			return cal, err
		}
		cr.Calibrate(&cal)
	}
	return cal, nil
}

// runID names a worker's clean run (control, count, disk-count): in a
// shard, with the shard's index, so that the shards' ids differ.
func (c *campaign) runID(s scenario.Scenario, what string, w int) string {
	if c.cfg.Shard.Whole() {
		return fmt.Sprintf("%s/%s-w%d", s.Name, what, w)
	}
	return fmt.Sprintf("%s/%s-s%dw%d", s.Name, what, c.cfg.Shard.Index, w)
}

// cleanRun runs a clean calibration run (what names it in messages),
// which must exit 0 like the control, and saves its record.
func (c *campaign) cleanRun(ctx context.Context, ts trial.Spec, what string) (*trial.Record, error) {
	rec, err := trial.Run(ctx, ts)
	if err != nil {
		if !c.cfg.Keep {
			os.RemoveAll(ts.Dir)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !rec.Exited0() {
		rec.Violations = append(rec.Violations, trial.Violation{Invariant: "control-passes", Message: fmt.Sprintf("%s exited %d", what, rec.Exit.Code)})
	}
	c.finish(rec)
	return rec, nil
}

// finish saves a record, keeps or removes its directory, and reports it.
func (c *campaign) finish(rec *trial.Record) {
	if len(rec.Violations) > 0 && c.cfg.ReplayCommand != nil {
		rec.Replay = c.cfg.ReplayCommand(rec.ID)
	}
	c.mu.Lock()
	keep := c.cfg.Keep || c.keepFailing(rec)
	c.mu.Unlock()
	if !keep {
		os.RemoveAll(rec.Dir)
		rec.Dir = ""
	}
	if c.cfg.RunDir != "" {
		if err := SaveRecord(c.cfg.RunDir, rec); err != nil {
			c.logf("%v", err)
		}
	}
	c.mu.Lock()
	c.res.Records = append(c.res.Records, rec)
	if len(rec.Violations) > 0 && c.res.FirstViolation == nil {
		c.res.FirstViolation = rec
		c.res.ToFirstViolation = time.Since(c.start)
		c.res.RecordsToFirstViolation = len(c.res.Records)
		if c.cfg.StopAtViolation {
			c.stopped.Store(true)
			c.logf("stopping at the first violation: %s (%s), after %d records and %s",
				rec.ID, rec.Violations[0].Invariant, len(c.res.Records), c.res.ToFirstViolation.Round(time.Second))
		}
	}
	c.mu.Unlock()
	if c.cfg.OnRecord != nil {
		c.cfg.OnRecord(rec)
	}
}

// keepFailing says whether a record's directory is kept as the evidence
// of a failing trial: it broke an invariant, and one of its invariants has
// had fewer than cfg.KeepFailing failing trials kept with its plan. A
// failing trial not kept is counted in Result.Dropped. c.mu must be held.
func (c *campaign) keepFailing(rec *trial.Record) bool {
	if len(rec.Violations) == 0 {
		return false
	}
	if c.cfg.KeepFailing <= 0 {
		return true
	}
	if c.kept == nil {
		c.kept = map[[2]string]int{}
	}
	keep := false
	for _, v := range rec.Violations {
		keep = keep || c.kept[[2]string{v.Invariant, rec.Plan}] < c.cfg.KeepFailing
	}
	if !keep {
		c.res.Dropped++
		return false
	}
	for _, v := range rec.Violations {
		c.kept[[2]string{v.Invariant, rec.Plan}]++
	}
	return true
}

// plantStatus copies a backup's status file (from, empty for a build that
// writes none) into the source data directory as backup_status, where a
// source restored from a backup that kept its status file there has one
// (scenario stale_status). Without one (a stock build) a completed status
// file of the format is written instead.
func plantStatus(a osuser.Account, from, dataDir string) error {
	data, err := os.ReadFile(from)
	if from == "" || err != nil {
		if from != "" && !os.IsNotExist(err) {
			return fmt.Errorf("stale status: %w", err)
		}
		sum := crc32.Checksum([]byte(staleStatus), crc32.MakeTable(crc32.Castagnoli))
		data = fmt.Appendf([]byte(staleStatus), "CHECKSUM: %08X\n", sum)
	}
	if err := a.WriteFile(filepath.Join(dataDir, "backup_status"), data, 0o600); err != nil {
		return fmt.Errorf("stale status: %w", err)
	}
	return nil
}

// ReadOnlyFileName is the file of mode 0400 planted in the source data
// directory (scenario readonly_file): no file the server knows, so it
// ignores it, and every base backup copies it.
const ReadOnlyFileName = "pgbb_readonly"

// plantReadOnly writes ReadOnlyFileName into the source data directory,
// owned by the server's account, with mode 0400: pg_basebackup, run as
// that account, can read it but not open it for writing.
func plantReadOnly(a osuser.Account, dataDir string) error {
	p := filepath.Join(dataDir, ReadOnlyFileName)
	if err := a.WriteFile(p, []byte("a file of the source that nobody may write\n"), 0o400); err != nil {
		return fmt.Errorf("readonly file: %w", err)
	}
	return nil
}

// staleStatus is a completed status file of format 1 without its
// checksum line.
const staleStatus = "BACKUP STATUS FORMAT: 1\nSTATUS: completed\nSTART TIME: 2026-11-25 09:18:00 UTC\nPID: 1\nHOST: stale\n" +
	"LABEL: stale\nPROGRAM VERSION: pg_basebackup (PostgreSQL) 18.6\nFORMAT: plain\nWAL METHOD: stream\nSYNC: on\n" +
	"START WAL LOCATION: 0/2000028\nSTART TIMELINE: 1\nSYSTEM IDENTIFIER: 7441234567890123456\nEND WAL LOCATION: 0/2000100\n" +
	"END TIME: 2026-11-25 09:20:00 UTC\nDURABLE: yes\n"

// SaveRecord writes rec as <runDir>/trials/<scenario>-<index>.json.
func SaveRecord(runDir string, rec *trial.Record) error {
	if err := os.MkdirAll(filepath.Join(runDir, "trials"), 0o755); err != nil {
		return fmt.Errorf("save record %s: %w", rec.ID, err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("save record %s: %w", rec.ID, err)
	}
	name := strings.ReplaceAll(rec.ID, "/", "-") + ".json"
	if err := os.WriteFile(filepath.Join(runDir, "trials", name), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save record %s: %w", rec.ID, err)
	}
	return nil
}

// mkdirReachable creates dir, owned by the account, and checks the
// account can reach it.
func mkdirReachable(a osuser.Account, dir string) error {
	if err := a.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return a.CheckReachable(dir)
}

// checkSpace fails early, with a clear message, when the scratch file
// system cannot hold the clusters and backups of the campaign: per worker
// a cluster, a backup, and the oracle's copy of it, about 3 x 40 MB per
// unit of pgbench scale plus 100 MB.
func checkSpace(dir string, scs []scenario.Scenario, parallel int) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("scratch directory %s: %w", dir, err)
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	if need := spaceNeeded(scs, parallel); free < need {
		return fmt.Errorf("scratch directory %s has %d MB free, the campaign needs about %d MB: free space or set -scratch", dir, free>>20, need>>20)
	}
	return nil
}

// spaceNeeded is the scratch space in bytes a campaign needs (see
// checkSpace).
func spaceNeeded(scs []scenario.Scenario, parallel int) uint64 {
	var need uint64
	for _, s := range scs {
		n := uint64(parallel) * (uint64(s.Scale)*(1+uint64(s.Tablespaces))*3*40 + 100) << 20
		need = max(need, n)
	}
	return need
}
