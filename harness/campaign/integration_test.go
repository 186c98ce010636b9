package campaign

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/build/buildtest"
	"github.com/pgbb/pgbb/harness/report"
	"github.com/pgbb/pgbb/harness/scenario"
)

// TestIntegrationCrash runs a handful of real trials natively against the
// patched 18 build (built or reused): the control and process kills must
// give records with no invariant violation, and every completed status must
// have been verified by the oracle. Opt in with PGBB_INTEGRATION=1 (make
// test sets it); with it set, missing prerequisites fail the test.
func TestIntegrationCrash(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") != "1" {
		t.Skip("set PGBB_INTEGRATION=1 to run real crash trials")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	var log strings.Builder
	b, err := build.New(ctx, append(build.FromEnv(), build.WithBackend(build.BackendNative), build.WithLog(&log))...)
	if err != nil {
		t.Fatalf("builder: %v", err)
	}
	tgt, err := Prepare(ctx, b, build.Spec{Major: 18, Variant: build.Patched}, &log)
	if err != nil {
		t.Fatalf("prepare patched 18: %v\n%s", err, log.String())
	}
	if !tgt.StatusFile {
		t.Fatal("the patched pg_basebackup does not know --status-file")
	}
	sc, err := scenario.Parse("integration.json", []byte(`{
		"name": "integration",
		"format": "plain",
		"wal_method": "stream",
		"no_clean": true,
		"faults": ["kill", "term", "kill-wal-child", "terminate-walsender", "server-stop", "kill-syscall", "stop"],
		"trials": 7
	}`))
	if err != nil {
		t.Fatal(err)
	}
	scratch, where, err := MakeScratch("pgbb-crash-it-", []scenario.Scenario{sc}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scratch %s (%s)", scratch, where)
	defer os.RemoveAll(scratch)
	runDir := t.TempDir()
	reader, err := BuildTool(ctx, "../..", t.TempDir(), "pgbb-status")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Config{
		Scenarios: []scenario.Scenario{sc}, BinDir: tgt.Build.BinDir, Acct: tgt.Acct, Variant: "patched",
		StatusFile: true, Parallel: 2, Seed: 42, Scratch: scratch, RunDir: runDir, ReaderBin: reader,
		ReplayCommand: func(id string) string { return "replay " + id },
	})
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	trials := 0
	for _, r := range res.Records {
		if r.Index >= 0 {
			trials++
		}
	}
	// Per worker a control and a traced count run (kill-syscall).
	if trials != 7 || len(res.Records) != 7+2+2 {
		t.Fatalf("%d records, %d trials: want 7 trials, 2 controls and 2 count runs", len(res.Records), trials)
	}
	// The stop plan ran the reader in a PID namespace of its own.
	for _, r := range res.Records {
		if o := r.Fault.Stop; o != nil && r.Fault.Fired && o.OtherNamespace == nil {
			t.Errorf("%s: the stop plan did not run the reader in another PID namespace", r.ID)
		}
	}
	sum := report.Summarize(res.Records)
	var tb strings.Builder
	report.WriteTable(&tb, sum)
	t.Logf("\n%s", tb.String())
	if len(sum.Violations) > 0 {
		t.Fatalf("invariant violations:\n%s", strings.Join(sum.Violations, "\n"))
	}
	for _, r := range res.Records {
		if r.StatusCompleted() && (r.Oracle == nil || !r.Oracle.Complete) {
			t.Errorf("%s: completed without a complete oracle verdict", r.ID)
		}
	}
	files, _ := filepath.Glob(filepath.Join(runDir, "trials", "*.json"))
	if len(files) != len(res.Records) {
		t.Errorf("%d record files for %d records", len(files), len(res.Records))
	}
}

// TestIntegrationCrashContainer runs a few trials with the container
// backend: pgbb-agent inside a container of the patched 18 image. It runs
// when a Docker engine answers (BACKEND=auto) or is required
// (BACKEND=container, when a missing engine fails the test); BACKEND=native
// leaves it out.
func TestIntegrationCrashContainer(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") != "1" {
		t.Skip("set PGBB_INTEGRATION=1 to run real crash trials")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var log strings.Builder
	b := buildtest.Container(ctx, t, build.WithLog(&log))
	res, err := b.Build(ctx, build.Spec{Major: 18, Variant: build.Patched})
	if err != nil {
		t.Fatalf("container build of patched 18: %v\n%s", err, log.String())
	}
	root, err := build.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := BuildAgent(ctx, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenario.Parse("integration-container.json", []byte(`{
		"name": "integration-container", "format": "tar", "wal_method": "stream",
		"faults": ["kill", "kill-wal-child", "kill-syscall"], "trials": 3
	}`))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	result, err := RunContainer(ctx, res.Image, agent, "", Job{Scenarios: []scenario.Scenario{sc}, Seed: 42, Parallel: 1,
		Variant: "patched", Prefix: res.Prefix, BuildTree: res.BuildTree}, nil, &out)
	if err != nil {
		t.Fatalf("container campaign: %v\n%s", err, out.String())
	}
	// 3 trials, the control and the traced count run.
	if got := len(result.Records); got != 5 {
		t.Fatalf("%d records, want 5\n%s", got, out.String())
	}
	sum := report.Summarize(result.Records)
	var tb strings.Builder
	report.WriteTable(&tb, sum)
	t.Logf("\n%s", tb.String())
	if len(sum.Violations) > 0 {
		t.Fatalf("invariant violations:\n%s", strings.Join(sum.Violations, "\n"))
	}

	// The power-loss layer in the container: the agent mounts it with the
	// host's /dev/fuse, a kept failing trial would stay in the host's
	// bind-mounted scratch.
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Logf("no /dev/fuse on this host: the container's power-loss plans are not tried")
		return
	}
	power, err := scenario.Parse("it-power.json", []byte(`{
		"name": "it-power", "format": "plain", "wal_method": "stream",
		"faults": ["powerloss"], "trials": 2
	}`))
	if err != nil {
		t.Fatal(err)
	}
	// Short: the servers' Unix sockets live under it (107 bytes at most).
	scratch, err := os.MkdirTemp(MemoryDir, "pgbb-it-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	if err := os.Chmod(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	result, err = RunContainer(ctx, res.Image, agent, "", Job{Scenarios: []scenario.Scenario{power}, Seed: 42, Parallel: 1,
		Variant: "patched", Prefix: res.Prefix, BuildTree: res.BuildTree, Scratch: scratch}, nil, &out)
	if err != nil {
		t.Fatalf("container power-loss campaign: %v\n%s", err, out.String())
	}
	fired := 0
	for _, r := range result.Records {
		if r.Plan == scenario.PlanPowerLoss && r.Fault.Fired {
			fired++
		}
	}
	sum = report.Summarize(result.Records)
	if len(sum.Violations) > 0 || fired == 0 {
		t.Fatalf("container power loss: %d of %d records fired, %d violations:\n%q", fired, len(result.Records), len(sum.Violations), sum.Violations)
	}
	t.Logf("container power loss: %d records, %d power losses", len(result.Records), fired)
}
