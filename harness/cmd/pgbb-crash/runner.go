package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

// A runner runs a campaign's trials on one backend, natively or in a
// container, and hands each record to finish as it completes.
type runner interface {
	// version is the PostgreSQL version under test; label names the build
	// in the reports.
	version() string
	label() string
	// describe says, for the log, what runs where.
	describe() string
	run(ctx context.Context, finish func(*trial.Record)) (*campaign.Result, error)
	// keptIn is the scratch directory the kept trials are in, and whether
	// it is the runner's own (not one the user gave).
	keptIn() (dir string, own bool)
	// close removes what the runner made (temporary programs, an empty
	// scratch).
	close()
}

// job is what every runner needs besides its build.
type job struct {
	o      options
	scs    []scenario.Scenario
	spec   build.Spec
	label  string
	stderr io.Writer
}

// newRunner builds (or finds) PostgreSQL with b and returns the runner of
// b's backend.
func newRunner(ctx context.Context, b *build.Builder, j job) (runner, error) {
	if b.Backend() == build.BackendContainer {
		return newContainerRunner(ctx, b, j)
	}
	return newNativeRunner(ctx, b, j)
}

// nativeRunner runs the trials in this process (campaign.Run).
type nativeRunner struct {
	j          job
	tgt        campaign.Target
	lbl        string
	scratch    string
	scratchWhy string
	ownScratch bool
	reader     string
	otherUser  *osuser.Account
	// wrapper is the pgbb-run binary of the wrapper variant, "" otherwise.
	wrapper string
}

func newNativeRunner(ctx context.Context, b *build.Builder, j job) (*nativeRunner, error) {
	r := &nativeRunner{j: j, lbl: j.label, scratch: j.o.scratch, scratchWhy: "given"}
	var err error
	if j.o.install != "" {
		prefix, err := filepath.Abs(j.o.install)
		if err != nil {
			return nil, err
		}
		r.tgt, err = campaign.Installed(ctx, build.Result{Spec: j.spec, Backend: build.BackendNative, Version: j.o.pg + " (installed)",
			Prefix: prefix, BinDir: filepath.Join(prefix, "bin"), User: os.Getenv("PGBB_BUILD_USER")}, j.stderr)
		if err != nil {
			return nil, err
		}
		r.lbl = "installed-" + j.label
	} else if r.tgt, err = campaign.Prepare(ctx, b, j.spec, j.stderr); err != nil {
		return nil, err
	}
	if r.scratch == "" {
		if r.scratch, r.scratchWhy, err = campaign.MakeScratch("pgbb-crash-", j.scs, j.o.parallel); err != nil {
			return nil, err
		}
		r.ownScratch = true
	}
	if j.o.variant == variantWrapper {
		if r.wrapper, err = buildWrapper(ctx, j.o.wrapperPatches); err != nil {
			r.close()
			return nil, err
		}
	}
	if r.reader, err = readerForPlans(ctx, j.scs); err != nil {
		r.close()
		return nil, err
	}
	if r.reader != "" {
		if r.otherUser, err = readerUser(ctx, r.tgt.Acct, r.reader); err != nil {
			r.close()
			return nil, err
		}
	}
	return r, nil
}

func (r *nativeRunner) keptIn() (string, bool) { return r.scratch, r.ownScratch }

func (r *nativeRunner) version() string { return r.tgt.Build.Version }
func (r *nativeRunner) label() string   { return r.lbl }

func (r *nativeRunner) describe() string {
	wrapped := ""
	if r.wrapper != "" {
		wrapped = ", under " + r.wrapper
	}
	return fmt.Sprintf("PostgreSQL %s %s (native%s), status file %t, scratch %s (%s)",
		r.version(), r.lbl, wrapped, r.statusFile(), r.scratch, r.scratchWhy)
}

// statusFile says whether the runs write a status file: the build's
// pg_basebackup, or the wrapper.
func (r *nativeRunner) statusFile() bool { return r.tgt.StatusFile || r.wrapper != "" }

func (r *nativeRunner) run(ctx context.Context, finish func(*trial.Record)) (*campaign.Result, error) {
	o := r.j.o
	return campaign.Run(ctx, campaign.Config{
		Scenarios: r.j.scs, BinDir: r.tgt.Build.BinDir, Acct: r.tgt.Acct, Variant: r.lbl, StatusFile: r.statusFile(), WrapperBin: r.wrapper,
		Parallel: o.parallel, Seed: o.seed, Scratch: r.scratch, Keep: o.keep || o.replay != "",
		KeepFailing: o.keepFailing, Shard: o.shard, Replay: o.replay, Log: r.j.stderr, OnRecord: finish,
		ReaderBin: r.reader, OtherUser: r.otherUser,
	})
}

func (r *nativeRunner) close() {
	if r.wrapper != "" {
		os.RemoveAll(filepath.Dir(r.wrapper))
	}
	if r.reader != "" {
		os.RemoveAll(filepath.Dir(r.reader))
	}
	if r.scratch != "" {
		removeEmpty(r.scratch, r.ownScratch)
	}
}

// containerRunner runs the trials in a container of the build's image,
// through the agent (campaign.RunContainer). Its scratch is a directory of
// the host, bind-mounted, so that the failing trials it keeps outlive the
// container. The reader the stop plan runs goes into the container with
// the agent, which runs it as the native runner does.
type containerRunner struct {
	j       job
	res     build.Result
	tmp     string
	agent   string
	reader  string
	scratch string
}

func newContainerRunner(ctx context.Context, b *build.Builder, j job) (*containerRunner, error) {
	r := &containerRunner{j: j}
	var err error
	if j.o.image != "" {
		r.res = build.Result{Image: j.o.image, Version: j.o.pg + " (image)", Prefix: "/usr/local/pgsql", BuildTree: "/home/pgbuild/src"}
	} else if r.res, err = b.Build(ctx, j.spec); err != nil {
		return nil, err
	}
	root, err := build.FindRepoRoot(".")
	if err != nil {
		return nil, err
	}
	if r.tmp, err = os.MkdirTemp("", "pgbb-agent-"); err != nil {
		return nil, err
	}
	if r.agent, err = campaign.BuildAgent(ctx, root, r.tmp); err != nil {
		r.close()
		return nil, err
	}
	if r.reader, err = readerForPlans(ctx, j.scs); err != nil {
		r.close()
		return nil, err
	}
	if r.scratch, err = os.MkdirTemp(scratchRoot(j.o.scratch), "pgbb-crash-c"); err != nil {
		r.close()
		return nil, err
	}
	if err := os.Chmod(r.scratch, 0o755); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *containerRunner) keptIn() (string, bool) { return r.scratch, r.j.o.scratch == "" }

func (r *containerRunner) version() string { return r.res.Version }
func (r *containerRunner) label() string   { return r.j.label }

func (r *containerRunner) describe() string {
	return fmt.Sprintf("PostgreSQL %s %s in a container from %s, scratch %s (bind-mounted into the container)",
		r.res.Version, r.j.label, r.res.Image, r.scratch)
}

func (r *containerRunner) run(ctx context.Context, finish func(*trial.Record)) (*campaign.Result, error) {
	o := r.j.o
	job := campaign.Job{Scenarios: r.j.scs, Seed: o.seed, Parallel: o.parallel, Replay: o.replay, Keep: o.keep, Variant: r.j.label,
		Prefix: r.res.Prefix, BuildTree: r.res.BuildTree, KeepFailing: o.keepFailing, Shard: o.shard, Scratch: r.scratch}
	return campaign.RunContainer(ctx, r.res.Image, r.agent, r.reader, job, finish, r.j.stderr)
}

func (r *containerRunner) close() {
	if r.tmp != "" {
		os.RemoveAll(r.tmp)
	}
	if r.reader != "" {
		os.RemoveAll(filepath.Dir(r.reader))
	}
	if r.scratch != "" {
		removeEmpty(r.scratch, true)
	}
}

// readerUser returns, when the campaign runs as root with a build account
// to switch to, another user in that account's group (made if needed) for
// the stop plan to run the reader bin as, and lets it run bin; nil
// otherwise.
func readerUser(ctx context.Context, owner osuser.Account, bin string) (*osuser.Account, error) {
	if os.Geteuid() != 0 || !owner.Switch {
		return nil, nil
	}
	u, err := osuser.EnsureReader(ctx, owner, osuser.DefaultReaderUser)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		return nil, err
	}
	return &u, nil
}

// readerForPlans builds pgbb-status statically into a temporary
// directory when a scenario has a plan that runs it (fault.ReaderUser: the
// stop plan runs it in a PID namespace of its own); it returns ""
// otherwise. The container runner copies it into the container.
func readerForPlans(ctx context.Context, scs []scenario.Scenario) (string, error) {
	if !slices.ContainsFunc(scs, func(s scenario.Scenario) bool { return fault.RunsReader(s.Faults) }) {
		return "", nil
	}
	return campaign.BuildToolDir(ctx, "pgbb-status", 0o700)
}

// buildWrapper builds pgbb-run into a temporary directory that the
// build's account may enter (it runs the wrapper) and returns its path;
// with patches (-wrapper-patches), from a copy of the tree with that
// directory's patches applied.
func buildWrapper(ctx context.Context, patches string) (string, error) {
	if patches == "" {
		return campaign.BuildToolDir(ctx, "pgbb-run", 0o755)
	}
	files, err := campaign.PatchFiles(patches)
	if err != nil {
		return "", fmt.Errorf("-wrapper-patches: %w", err)
	}
	return campaign.BuildToolDir(ctx, "pgbb-run", 0o755, files...)
}

// scratchRoot is where the container backend's scratch goes: -scratch if
// given, else memory (campaign.MemoryDir) where there is one, else the
// temporary directory.
func scratchRoot(flag string) string {
	if flag != "" {
		return flag
	}
	if fi, err := os.Stat(campaign.MemoryDir); err == nil && fi.IsDir() {
		return campaign.MemoryDir
	}
	return os.TempDir()
}

// removeEmpty removes empty directories under root, bottom up, and root
// itself when it ends up empty and self is set.
func removeEmpty(root string, self bool) {
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if dirs[i] != root || self {
			os.Remove(dirs[i])
		}
	}
}
