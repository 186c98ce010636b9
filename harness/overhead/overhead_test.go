package overhead

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
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

// BenchmarkStatusFileOverhead backs up a ~300 MB cluster (pgbench scale
// PGBB_OVERHEAD_SCALE, default 20) with stock and patched pg_basebackup
// 18.6, PGBB_OVERHEAD_RUNS times each (default 15), interleaved, syncing
// on, and reports the medians and their ratio, of wall time and of CPU
// time. Both are native builds
// (cached under .cache); run it with `make bench-overhead`.
func BenchmarkStatusFileOverhead(b *testing.B) {
	ctx := context.Background()
	scale := envInt(b, "PGBB_OVERHEAD_SCALE", 20)
	runs := envInt(b, "PGBB_OVERHEAD_RUNS", 15)

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

	b.ResetTimer()
	var res Result
	for i := 0; i < b.N; i++ {
		res, err = Measure(ctx, Config{
			Stock:      Client{Name: "stock", BinDir: stock.BinDir},
			Patched:    Client{Name: "patched", BinDir: patched.BinDir, StatusFile: true},
			Server:     server,
			Acct:       acct,
			ScratchDir: scratch,
			Runs:       runs,
			Log:        os.Stderr,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.Logf("pgbench scale %d, %d interleaved runs each: median stock %v, median patched %v, ratio patched/stock %.4f",
		scale, runs, Median(res.Stock).Round(time.Millisecond), Median(res.Patched).Round(time.Millisecond), res.Ratio())
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
