// Command pgbb-agent runs a crash campaign where it is started, for the
// container backend of pgbb-crash: it reads a campaign.Job (JSON), runs the
// campaign with the installation in the image, and writes one line per
// trial record and a last result line on stdout (see campaign.ReadAgent).
// It is built statically (CGO_ENABLED=0) and copied into the container.
//
//	pgbb-agent -job job.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/trial"
)

func main() {
	jobPath := flag.String("job", "", "campaign job (JSON)")
	flag.Parse()
	err := run(*jobPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgbb-agent: %v\n", err)
		campaign.WriteDone(os.Stdout, campaign.AgentDone{Error: err.Error()})
		os.Exit(2)
	}
}

func run(jobPath string) error {
	data, err := os.ReadFile(jobPath)
	if err != nil {
		return fmt.Errorf("job: %w", err)
	}
	var job campaign.Job
	if err := json.Unmarshal(data, &job); err != nil {
		return fmt.Errorf("job %s: %w", jobPath, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Running as root, PostgreSQL runs as the image's user, who owns the
	// installation and the build tree.
	res := build.Result{Backend: build.BackendNative, Prefix: job.Prefix, BinDir: filepath.Join(job.Prefix, "bin"),
		BuildTree: job.BuildTree, User: build.ImageUser}
	if !hasAmcheck(job.Prefix) && job.BuildTree != "" {
		fmt.Fprintln(os.Stderr, "pgbb-agent: installing contrib/amcheck (the oracle runs pg_amcheck)")
		cmd := exec.CommandContext(ctx, "make", "-s", "-C", filepath.Join(job.BuildTree, "contrib", "amcheck"), "install")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("install amcheck: %w\n%s", err, out)
		}
	}
	tgt, err := campaign.Installed(ctx, res, os.Stderr)
	if err != nil {
		return err
	}
	scratch, why, err := agentScratch(job)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pgbb-agent: scratch %s (%s)\n", scratch, why)
	runDir, err := os.MkdirTemp("", "pgbb-run-")
	if err != nil {
		return err
	}
	other, err := otherUser(ctx, job, tgt.Acct)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	result, err := campaign.Run(ctx, campaign.Config{
		Scenarios: job.Scenarios, BinDir: tgt.Build.BinDir, Acct: tgt.Acct, Variant: job.Variant, StatusFile: tgt.StatusFile,
		Parallel: job.Parallel, Seed: job.Seed, Scratch: scratch, RunDir: runDir, Keep: job.Keep, Replay: job.Replay,
		KeepFailing: job.KeepFailing, Shard: job.Shard, Log: os.Stderr,
		ReaderBin: job.ReaderBin, OtherUser: other,
		OnRecord: func(r *trial.Record) {
			mu.Lock()
			defer mu.Unlock()
			campaign.WriteRecord(os.Stdout, r)
		},
	})
	d := campaign.AgentDone{Skipped: result.Skipped, Dropped: result.Dropped, Elapsed: int64(result.Elapsed)}
	if err != nil {
		d.Error = err.Error()
	}
	return campaign.WriteDone(os.Stdout, d)
}

// otherUser returns, when the job has a reader, the other OS user in
// owner's group that the stop plan runs it as (osuser.EnsureReader makes
// it in the container), as the native backend does; nil otherwise.
func otherUser(ctx context.Context, job campaign.Job, owner osuser.Account) (*osuser.Account, error) {
	if job.ReaderBin == "" || os.Geteuid() != 0 || !owner.Switch {
		return nil, nil
	}
	u, err := osuser.EnsureReader(ctx, owner, osuser.DefaultReaderUser)
	if err != nil {
		return nil, fmt.Errorf("the reader's other user: %w", err)
	}
	return &u, nil
}

func hasAmcheck(prefix string) bool {
	for _, d := range []string{"share/postgresql/extension", "share/extension"} {
		if _, err := os.Stat(filepath.Join(prefix, d, "amcheck.control")); err == nil {
			return true
		}
	}
	return false
}

// agentScratch returns the campaign's scratch directory: the host's
// directory bind-mounted at job.Scratch (new and empty: the driver made
// it), where kept trials outlive the container, or else a new one where
// MakeScratch chooses. The path is kept short: the servers' Unix sockets
// live under it, and their paths may not exceed 107 bytes.
func agentScratch(job campaign.Job) (dir, why string, err error) {
	if job.Scratch == "" {
		return campaign.MakeScratch("pgbb-crash-", job.Scenarios, job.Parallel)
	}
	return job.Scratch, "the host's, bind-mounted: kept trials stay there", nil
}
