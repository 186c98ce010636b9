// Command pgbb-taskflow runs the task-flow campaigns of scenarios/taskflow:
// a scheduler's attempts with a deadline shorter than the backup, against
// a live server under load, with a stock PostgreSQL 18.6, the same under
// pgbb-run (built from this tree), and a patched 18.6 side by side (see
// package taskflow). It prints the table, writes it with report.json into
// the run directory, and exits 1 when a flow with a status file (patched
// or wrapper) broke a promise, 2 when the campaign could not run.
//
//	pgbb-taskflow [-scenarios scenarios/taskflow/seed.json] [-out DIR]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/cmd/internal/cli"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/taskflow"
	"github.com/pgbb/pgbb/harness/workload"
)

func main() { cli.Main(run) }

// run is the command: exit 0 all promises kept, 1 a violation, 2 it could
// not run, 64 a bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgbb-taskflow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenarios := fs.String("scenarios", "scenarios/taskflow/seed.json", "task-flow scenario files or directories, comma-separated")
	out := fs.String("out", "", "run directory (default: the cache's taskflow/<time>)")
	if err := fs.Parse(args); err != nil {
		return 64
	}
	scs, err := taskflow.Load(strings.Split(*scenarios, ",")...)
	if err != nil {
		fmt.Fprintf(stderr, "pgbb-taskflow: %v\n", err)
		return 64
	}
	results, err := campaignRun(ctx, scs, *out, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pgbb-taskflow: %v\n", err)
		return 2
	}
	code := 0
	for _, res := range results {
		if len(res.Errors) > 0 {
			return 2
		}
		if len(res.Violations) > 0 {
			code = 1
		}
	}
	return code
}

// phase logs the start of a long step, a line every 30 s while it runs,
// and its end with the time it took.
func phase(log io.Writer, name string, fn func() error) error {
	start := time.Now()
	fmt.Fprintf(log, "pgbb-taskflow: %s ...\n", name)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(log, "pgbb-taskflow: %s: %s so far\n", name, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := fn()
	close(done)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(log, "pgbb-taskflow: %s: done in %s\n", name, time.Since(start).Round(time.Second))
	return nil
}

// campaignRun builds stock and patched 18, makes the accounts, builds the
// reader and the wrapper, starts a server per scenario, and runs the
// scenarios' flows.
func campaignRun(ctx context.Context, scs []taskflow.Scenario, out string, stdout, log io.Writer) ([]*taskflow.Result, error) {
	b, err := build.New(ctx, append(build.FromEnv(), build.WithBackend(build.BackendNative), build.WithLog(log))...)
	if err != nil {
		return nil, err
	}
	targets := map[taskflow.Variant]campaign.Target{}
	for _, v := range []taskflow.Variant{taskflow.Stock, taskflow.Patched} {
		spec := build.Spec{Major: 18, Variant: build.Variant(v)}
		err := phase(log, fmt.Sprintf("build PostgreSQL 18 %s", v), func() (err error) {
			targets[v], err = campaign.Prepare(ctx, b, spec, log)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if !targets[taskflow.Patched].StatusFile || targets[taskflow.Stock].StatusFile {
		return nil, errors.New("the patched build must have --status-file and the stock one must not")
	}
	if out == "" {
		out = filepath.Join(b.CacheDir(), "taskflow", time.Now().UTC().Format("20060102-150405"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	owner := targets[taskflow.Patched].Acct
	reader, err := osuser.EnsureReader(ctx, owner, osuser.DefaultReaderUser)
	if err != nil {
		return nil, err
	}
	root, err := build.FindRepoRoot(".")
	if err != nil {
		return nil, err
	}
	readerBin, err := campaign.BuildTool(ctx, root, out, "pgbb-status")
	if err != nil {
		return nil, err
	}
	wrapperBin, err := campaign.BuildTool(ctx, root, out, "pgbb-run")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "pgbb-taskflow: run directory %s; pg_basebackup runs as %s, pgbb-status judges as %s (uid %d)\n",
		out, owner.Name, reader.Name, reader.UID)
	stock := targets[taskflow.Stock].Build.BinDir
	env := taskflow.Env{
		Owner:      owner,
		Reader:     taskflow.Reader{Bin: readerBin, Judge: reader, Remove: owner},
		BinDirs:    map[taskflow.Variant]string{taskflow.Stock: stock, taskflow.Wrapper: stock, taskflow.Patched: targets[taskflow.Patched].Build.BinDir},
		WrapperBin: wrapperBin,
		Log:        log,
	}
	var results []*taskflow.Result
	for _, sc := range scs {
		res, err := runScenario(ctx, env, sc, filepath.Join(out, sc.Name), log)
		if err != nil {
			return results, fmt.Errorf("%s: %w", sc.File, err)
		}
		results = append(results, res)
		res.WriteTable(stdout)
		if err := writeReport(filepath.Join(out, sc.Name), res); err != nil {
			return results, err
		}
	}
	return results, nil
}

// runScenario starts a server with sc's dataset and workload in dir and
// runs sc's flows against it.
func runScenario(ctx context.Context, env taskflow.Env, sc taskflow.Scenario, dir string, log io.Writer) (*taskflow.Result, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := env.Owner.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	srv := cluster.New(env.BinDirs[taskflow.Patched], env.Owner, filepath.Join(dir, "server"), "",
		cluster.WithTCP(true), cluster.WithGroupAccess(true),
		// Two senders and a temporary slot per run, and runs that a
		// scheduler left behind on top. WAL kept for a while: a run's
		// temporary slot is made only after its backup started, and
		// the other runs' fast checkpoints would otherwise remove the
		// WAL it needs first ("requested WAL segment has already been
		// removed"), which measures the server, not the flows.
		cluster.WithSettings("max_wal_senders=64", "max_replication_slots=64", "wal_keep_size=4GB"))
	defer srv.Cleanup()
	err := phase(log, fmt.Sprintf("%s: source cluster, pgbench scale %d (about %d MB), %d tablespace(s)", sc.Name, sc.Scale, 16*sc.Scale, sc.Tablespaces), func() error {
		if err := srv.Init(ctx); err != nil {
			return err
		}
		if err := srv.Start(ctx, time.Minute); err != nil {
			return err
		}
		return srv.LoadDataset(ctx, dir, sc.Scale, sc.Tablespaces)
	})
	if err != nil {
		return nil, err
	}
	env.Server, env.Dir = srv, filepath.Join(dir, "flows")
	if err := env.Owner.MkdirAll(env.Dir, 0o755); err != nil {
		return nil, err
	}
	if sc.Clients > 0 {
		wl, err := workload.Start(ctx, srv.ConnString(cluster.Database), sc.Scale, sc.Clients, 1)
		if err != nil {
			return nil, err
		}
		defer wl.Stop()
		env.Mark = wl.Mark
	}
	var res *taskflow.Result
	err = phase(log, fmt.Sprintf("%s: %d flows and %d unfaulted runs, started %s apart", sc.Name, len(sc.Flows()), len(taskflow.Variants()), taskflow.StartSpacing), func() error {
		res = env.RunScenario(ctx, sc)
		return ctx.Err()
	})
	return res, err
}

// writeReport writes report.json and table.txt into dir.
func writeReport(dir string, res *taskflow.Result) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), data, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "table.txt"))
	if err != nil {
		return err
	}
	res.WriteTable(f)
	return f.Close()
}
