package overhead

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/osuser"
)

func TestMedianAndRatio(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	if got := Median(ms(5, 1, 3)); got != 3*time.Millisecond {
		t.Errorf("Median(5,1,3) = %v, want 3ms", got)
	}
	if got := Median(ms(4, 1, 3, 2)); got != 2500*time.Microsecond {
		t.Errorf("Median(4,1,3,2) = %v, want 2.5ms", got)
	}
	r := Result{Stock: ms(100, 100, 100, 100, 100), Patched: ms(101, 99, 102, 101, 180)}
	if got := r.Ratio(); got != 1.01 {
		t.Errorf("Ratio = %v, want 1.01", got)
	}
	m, lo, hi := Result{Stock: ms(100, 100, 100, 100, 100, 100, 100), Patched: ms(90, 100, 101, 102, 103, 104, 200)}.PairedRatio()
	if m != 1.02 || lo != 0.9 || hi != 2 {
		t.Errorf("PairedRatio = %v [%v, %v], want 1.02 [0.9, 2]", m, lo, hi)
	}
	if _, err := Measure(context.Background(), Config{Runs: 4}); err == nil {
		t.Error("Measure with 4 runs: no error, want one")
	}
}

func TestCountStatusFsyncs(t *testing.T) {
	trace := strings.Join([]string{
		`4242  fsync(5</b/patched-traced.status.4242.tmp>) = 0`,
		`4242  fsync(6</b>) = 0`,
		`4242  fsync(7</b/patched-traced/base/1/1259>) = 0`,
		`4242  fsync(8</b/patched-traced>) = 0`,
		`4243  fdatasync(9</b/patched-traced/pg_wal/000000010000000000000002>) = 0`,
		`4242  fsync(5</b/patched-traced.status>) = 0`,
		`4242  fsync(5</b/patched-traced.statusx>) = 0`,
		`4242  +++ exited with 0 +++`,
	}, "\n")
	if got := countStatusFsyncs(trace, "/b/patched-traced.status"); got != 3 {
		t.Errorf("countStatusFsyncs = %d, want 3 (the temporary file, the directory, the file)", got)
	}
}

// BenchmarkStatusFileOverhead backs up a ~300 MB cluster (pgbench scale
// PGBB_OVERHEAD_SCALE, default 20) with stock and patched pg_basebackup
// 18.6, PGBB_OVERHEAD_RUNS times each (default 15), interleaved, syncing
// on, and reports the medians and their ratio, of wall time and of CPU
// time. Both are native builds
// (cached under .cache); run it with `make bench-overhead`.
//
// PGBB_OVERHEAD_MODE=long (`make bench-overhead-long`) measures runs long
// enough for the periodic rewrites to matter: pgbench scale 100 (~1.5 GB)
// throttled with --max-rate=PGBB_OVERHEAD_RATE (default 24M, as a
// production host throttles its backups; 0 for none), so that a run lasts
// about a minute (at least 12 intervals), 5 runs each by default; the
// status file sits next to the target, on the same file system. It then
// takes one more patched backup under strace and reports the fsyncs the
// status file added per minute.
func BenchmarkStatusFileOverhead(b *testing.B) {
	ctx := context.Background()
	long := os.Getenv("PGBB_OVERHEAD_MODE") == "long"
	scale, runs, rate := envInt(b, "PGBB_OVERHEAD_SCALE", 20), envInt(b, "PGBB_OVERHEAD_RUNS", 15), ""
	if long {
		scale, runs, rate = envInt(b, "PGBB_OVERHEAD_SCALE", 100), envInt(b, "PGBB_OVERHEAD_RUNS", 5), "24M"
		if v, ok := os.LookupEnv("PGBB_OVERHEAD_RATE"); ok {
			rate = v
		}
	}
	var args []string
	if rate != "" && rate != "0" {
		args = append(args, "--max-rate="+rate)
	}

	builder, err := build.New(ctx, append(build.FromEnv(), build.WithBackend(build.BackendNative), build.WithLog(os.Stderr))...)
	if err != nil {
		b.Fatal(err)
	}
	stock, err := builder.Build(ctx, build.Spec{Major: 18, Variant: build.Stock})
	if err != nil {
		b.Fatal(err)
	}
	patched, err := builder.Build(ctx, build.Spec{Major: 18, Variant: build.Patched})
	if err != nil {
		b.Fatal(err)
	}
	acct, err := osuser.Ensure(ctx, patched.User, os.Stderr)
	if err != nil {
		b.Fatal(err)
	}

	work, err := os.MkdirTemp(builder.CacheDir(), "overhead-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		b.Fatal(err)
	}
	scratch := filepath.Join(work, "backups")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		b.Fatal(err)
	}
	if acct.Switch {
		if err := os.Chown(scratch, int(acct.UID), int(acct.GID)); err != nil {
			b.Fatal(err)
		}
	}

	server := cluster.New(patched.BinDir, acct, filepath.Join(work, "server"), "", cluster.WithTCP(true))
	defer server.Cleanup()
	if err := server.Init(ctx); err != nil {
		b.Fatal(err)
	}
	if err := server.Start(ctx, time.Minute); err != nil {
		b.Fatal(err)
	}
	if err := server.LoadDataset(ctx, work, scale, 0); err != nil {
		b.Fatal(err)
	}

	cfg := Config{
		Stock:      Client{Name: "stock", BinDir: stock.BinDir},
		Patched:    Client{Name: "patched", BinDir: patched.BinDir, StatusFile: true},
		Server:     server,
		Acct:       acct,
		ScratchDir: scratch,
		Runs:       runs,
		Args:       args,
		Log:        os.Stderr,
	}
	b.ResetTimer()
	var res Result
	for i := 0; i < b.N; i++ {
		res, err = Measure(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.Logf("pgbench scale %d, pg_basebackup %v, %d interleaved runs each: median stock %v, median patched %v, ratio patched/stock %.4f",
		scale, args, runs, Median(res.Stock).Round(time.Millisecond), Median(res.Patched).Round(time.Millisecond), res.Ratio())
	if long {
		if m := Median(res.Stock); m < time.Minute {
			b.Logf("WARNING: the median stock run took %v, under the minute this mode is for: raise PGBB_OVERHEAD_SCALE or lower PGBB_OVERHEAD_RATE", m.Round(time.Second))
		}
		strace, err := exec.LookPath("strace")
		if err != nil {
			b.Fatalf("the long mode counts the status file's fsyncs with strace: %v", err)
		}
		n, d, err := StatusFsyncs(ctx, cfg, cfg.Patched, strace)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("status file fsyncs (file, temporary files, their directory) in one traced patched run of %v: %d, %.1f per minute",
			d.Round(time.Second), n, float64(n)/d.Minutes())
		b.ReportMetric(float64(n)/d.Minutes(), "status-fsyncs/min")
	}
	pm, plo, phi := res.PairedRatio()
	b.Logf("per round, patched/stock: median %.4f, 95%% confidence interval of the median [%.4f, %.4f]", pm, plo, phi)
	b.Logf("CPU time of pg_basebackup and its WAL child: median stock %v, median patched %v, ratio patched/stock %.4f",
		Median(res.StockCPU).Round(time.Millisecond), Median(res.PatchedCPU).Round(time.Millisecond), res.CPURatio())
	b.ReportMetric(Median(res.Stock).Seconds(), "stock-s")
	b.ReportMetric(Median(res.Patched).Seconds(), "patched-s")
	b.ReportMetric(res.Ratio(), "patched/stock")
	b.ReportMetric(res.CPURatio(), "cpu-patched/stock")
	b.ReportMetric(pm, "paired-patched/stock")
}

// envInt reads a positive integer from the environment, or returns def.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
