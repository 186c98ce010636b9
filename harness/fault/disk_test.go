package fault

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// diskTarget mounts a Disk and starts a stand-in for pg_basebackup (a
// sleeping process group) to be killed.
func diskTarget(t *testing.T) (*Disk, *Target, *exec.Cmd) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Fatalf("the power-loss plans need root and /dev/fuse (euid %d): %v", os.Geteuid(), err)
	}
	acct := osuser.Account{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	d, err := MountDisk(context.Background(), t.TempDir(), acct, 1, "backup_status")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill() })
	tgt := &Target{PID: cmd.Process.Pid, Phases: NewTracker(time.Now()), Done: done,
		Rand: rand.New(rand.NewPCG(1, 2)), Disk: d}
	return d, tgt, cmd
}

func TestDiskPlansAreKnown(t *testing.T) {
	for _, name := range scenario.DiskPlans() {
		f, err := ByName(name)
		if err != nil {
			t.Fatalf("ByName(%s): %v", name, err)
		}
		if !runsOnDisk(f) || f.Name() != name {
			t.Fatalf("%s: runs on the layer %t, name %s", name, runsOnDisk(f), f.Name())
		}
	}
	if f, _ := ByName(scenario.PlanKill); runsOnDisk(f) {
		t.Fatal("the kill plan does not need a disk")
	}
}

func TestPowerLossAtNthFsyncKillsAndKeepsDurableState(t *testing.T) {
	d, tgt, _ := diskTarget(t)
	f, _ := ByName(scenario.PlanPowerLossFsync)
	res := make(chan Injection, 1)
	go func() {
		inj, err := f.Inject(context.Background(), tgt)
		if err != nil {
			t.Errorf("inject: %v", err)
		}
		res <- inj
	}()
	// Data files, then the finishing part: a sync walk.
	var files []string
	for i := 0; i < 20; i++ {
		p := filepath.Join(d.Target, "f"+string(rune('a'+i)))
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	tgt.Phases.Observe(PhaseEndOfData)
	time.Sleep(50 * time.Millisecond) // let the plan set its crash point
	// The plan samples among about files+8 fsyncs: sync in passes until
	// the power goes.
	synced := 0
	for pass := 0; pass < 3; pass++ {
		for _, p := range files {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				break
			}
			err = f.Sync()
			f.Close()
			if err != nil {
				break
			}
			synced++
		}
	}
	var inj Injection
	select {
	case inj = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("the plan did not fire within the sync walk")
	}
	if !inj.Fired || !strings.Contains(inj.Detail, "fsync") {
		t.Fatalf("injection %+v", inj)
	}
	select {
	case <-tgt.Done:
	case <-time.After(5 * time.Second):
		t.Fatal("the process group was not killed")
	}
	rep, err := d.PowerOff()
	if err != nil {
		t.Fatal(err)
	}
	if rep.CrashOp == nil || rep.CrashOp.Kind != powerfs.OpFsync {
		t.Fatalf("report %+v", rep)
	}
	// The files' names were never made durable (no directory fsync).
	ents, err := os.ReadDir(d.Target)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("durable target holds %d entries, want none (its directory was never fsynced)", len(ents))
	}
	if synced >= 3*len(files) {
		t.Fatalf("all %d fsyncs succeeded; the crash point (%s) never cut the power", synced, inj.Detail)
	}
}

func TestEIOOnOpenDuringSync(t *testing.T) {
	d, tgt, cmd := diskTarget(t)
	f, _ := ByName(scenario.PlanEIOOpenSync)
	res := make(chan Injection, 1)
	go func() {
		inj, _ := f.Inject(context.Background(), tgt)
		res <- inj
	}()
	var files []string
	for i := 0; i < 5; i++ {
		p := filepath.Join(d.Target, "f"+string(rune('a'+i)))
		os.WriteFile(p, []byte("x"), 0o600)
		files = append(files, p)
	}
	tgt.Phases.Observe(PhaseEndOfData)
	time.Sleep(50 * time.Millisecond)
	failed := 0
	for _, p := range files {
		if f, err := os.Open(p); err == nil { // the pre-sync pass: read-only
			f.Close()
		} else {
			t.Fatalf("read-only open failed: %v", err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, syscall.EIO) {
			failed++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if failed != 1 {
		t.Fatalf("%d opens for writing failed, want 1", failed)
	}
	cmd.Process.Kill()
	inj := <-res
	if !inj.Fired || !strings.Contains(inj.Detail, "EIO on open") {
		t.Fatalf("injection %+v", inj)
	}
}

func TestStatusViews(t *testing.T) {
	d, _, _ := diskTarget(t)
	st := d.StatusFile
	if filepath.Dir(st) == d.Target || filepath.Base(st) != "backup_status" {
		t.Fatalf("status file %s: want backup_status outside the target %s", st, d.Target)
	}
	sync := func(p string) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	put := func(p, content string) {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		sync(p)
	}
	// The right way: temporary file (named after the writer's pid, or
	// the legacy name), fsync, rename, directory fsync.
	tmp, legacy := status.TempPath(st, 4321), status.LegacyTempPath(st)
	put(tmp, "in progress")
	os.Rename(tmp, st)
	sync(filepath.Dir(st))
	put(legacy, "completed")
	os.Rename(legacy, st)
	sync(filepath.Dir(st))
	var got []string
	for _, v := range d.StatusViews("status/backup_status") {
		got = append(got, string(v.Content))
	}
	// A reader of the status file only ever sees the whole old status.
	if strings.Join(got, "|") != "in progress" {
		t.Fatalf("status views %q, want only the whole first status", got)
	}
	// The writes of both temporary files are torn states (not only
	// their renames onto the status file).
	tornOf := map[string]bool{}
	for _, ts := range d.FS.TornStates() {
		if ts.Kind == "prefix" {
			tornOf[ts.Path] = true
		}
	}
	for _, p := range []string{"status/backup_status.4321.tmp", "status/backup_status.tmp"} {
		if !tornOf[p] {
			t.Errorf("no torn write of %s (torn writes of %v)", p, tornOf)
		}
	}
	// In place: every prefix of the rewrite is a state a reader may find.
	f, err := os.OpenFile(st, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("failed"))
	f.Close()
	got = nil
	for _, v := range d.StatusViews("status/backup_status") {
		got = append(got, string(v.Content))
	}
	for _, want := range []string{"f", "fa", "failed"} {
		if !slices.Contains(got, want) {
			t.Fatalf("status views %q lack the torn %q", got, want)
		}
	}
}

// TestIsStatusFile: the power-loss layer tracks the status file and its
// temporary files, whatever the writer's pid, and nothing else.
func TestIsStatusFile(t *testing.T) {
	for name, want := range map[string]bool{
		"backup_status":              true,
		"backup_status.4321.tmp":     true,
		"backup_status.tmp":          true,
		"backup_status.x.tmp":        false,
		"backup_status.4321":         false,
		"backup_manifest.tmp":        false,
		"other_status.4321.tmp":      false,
		"backup_status.4321.tmp.tmp": false,
	} {
		if got := isStatusFile("backup_status", name); got != want {
			t.Errorf("isStatusFile(%q) = %t, want %t", name, got, want)
		}
	}
}

// TestFinishingOpsCalibration: the plans striking at the Nth operation of
// the finishing part sample among the operations a calibration run
// counted, and fall back to the static estimate without one.
func TestFinishingOpsCalibration(t *testing.T) {
	cal := &Target{Calibration: Calibration{DiskOps: map[string]int64{"rename": 7, "fsync": 0}}}
	if got := finishingOps(cal, powerfs.OpRename, 100, 10); got != 7 {
		t.Errorf("calibrated renames: %d, want 7", got)
	}
	if got := finishingOps(cal, powerfs.OpFsync, 100, 10); got != estimate(powerfs.OpFsync, 100, 10) {
		t.Errorf("a kind counted 0 times: %d, want the estimate %d", got, estimate(powerfs.OpFsync, 100, 10))
	}
	if got := finishingOps(&Target{}, powerfs.OpFsyncDir, 100, 10); got != estimate(powerfs.OpFsyncDir, 100, 10) {
		t.Errorf("no calibration: %d, want the estimate", got)
	}
	if !runsOnDisk(NewDiskCount()) {
		t.Error("DiskCount must run on the power-loss layer")
	}
}

// runsOnDisk says whether a plan runs on the power-loss layer.
func runsOnDisk(f Fault) bool {
	_, ok := f.(diskPlan)
	return ok
}

// TestStatusFileRule: every rule the status-file-io-error plan samples
// strikes the status file, its temporary files or its directory, and
// never a file or directory of the backup.
func TestStatusFileRule(t *testing.T) {
	hits := []string{"backup_status", "backup_status.4321.tmp", "backup_status.tmp", StatusDirName}
	misses := []string{"backup_manifest", "backup_manifest.tmp", "base", "target", "pg_wal", "000000010000000000000002", "PG_VERSION"}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 200 {
		rule := statusFileRule(r, "backup_status")
		seen[rule.Op.String()+"/"+rule.Errno.Error()] = true
		if rule.Nth < 1 || rule.Nth > 4 || rule.Times > 1 {
			t.Fatalf("rule %s: Nth %d, Times %d", rule, rule.Nth, rule.Times)
		}
		matched := false
		for _, name := range hits {
			if ok, _ := filepath.Match(rule.Path, name); ok {
				matched = true
			}
		}
		if !matched {
			t.Errorf("rule %s strikes none of the status file's names", rule)
		}
		for _, name := range misses {
			if ok, _ := filepath.Match(rule.Path, name); ok {
				t.Errorf("rule %s strikes %s, a name of the backup", rule, name)
			}
		}
	}
	if len(seen) != 5 {
		t.Errorf("sampled %d kinds of rule, want 5: %v", len(seen), seen)
	}
}
