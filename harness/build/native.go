package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// nativeBackend builds into <cache>/pg/<name>/ on the host: src/ is the
// configured build tree, install/ the installation. A stamp file written
// last marks a complete build.
type nativeBackend struct {
	b *Builder
}

func newNativeBackend(b *Builder) *nativeBackend { return &nativeBackend{b: b} }

func (n *nativeBackend) name() string { return BackendNative }

const nativeStamp = "BUILD-OK"

func (n *nativeBackend) dir(j job) string {
	return filepath.Join(n.b.cfg.cacheDir, "pg", j.name)
}

func (n *nativeBackend) result(j job, version string, cached bool, acct Account) Result {
	dir := n.dir(j)
	prefix := filepath.Join(dir, "install")
	return Result{
		Spec: j.spec, Backend: BackendNative, Version: version, Source: j.src.Origin,
		Key: j.key, Cached: cached, Prefix: prefix, BinDir: filepath.Join(prefix, "bin"),
		BuildTree: filepath.Join(dir, "src"), User: acct.Name,
	}
}

func (n *nativeBackend) build(ctx context.Context, j job) (Result, error) {
	l := n.b.log
	acct, err := EnsureAccount(ctx, n.b.cfg.buildUser, n.b.cfg.log)
	if err != nil {
		return Result{}, err
	}
	dir := n.dir(j)
	if v, err := os.ReadFile(filepath.Join(dir, nativeStamp)); err == nil {
		l.logf("reusing native build %s", dir)
		return n.result(j, strings.TrimSpace(string(v)), true, acct), nil
	}
	unlock, err := n.b.lockBuild(ctx, "native-"+j.name)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if v, err := os.ReadFile(filepath.Join(dir, nativeStamp)); err == nil {
		l.logf("reusing native build %s (made meanwhile by another process)", dir)
		return n.result(j, strings.TrimSpace(string(v)), true, acct), nil
	}
	if err := ensureDebs(ctx, l, "build dependencies of the native build", BuildDeps()); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Result{}, err
	}
	if err := acct.CheckReachable(dir); err != nil {
		return Result{}, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return Result{}, fmt.Errorf("remove incomplete build %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	tree := filepath.Join(dir, "src")
	version, err := n.b.src.Prepare(ctx, j.src, j.patches, tree)
	if err != nil {
		return Result{}, err
	}
	prefix := filepath.Join(dir, "install")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return Result{}, err
	}
	if err := acct.chownTree(dir); err != nil {
		return Result{}, fmt.Errorf("chown %s to %s: %w", dir, acct.Name, err)
	}
	logPath := filepath.Join(dir, "build.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return Result{}, err
	}
	defer lf.Close()
	var out io.Writer = lf
	if n.b.cfg.verbose {
		out = io.MultiWriter(lf, l.writer())
	}
	env := acct.Env()
	steps := [][]string{
		append([]string{"./configure", "--prefix=" + prefix}, ConfigureFlags()...),
		{"make", "-j" + strconv.Itoa(n.b.cfg.jobs)},
		{"make", "install"},
	}
	l.logf("building %s %s natively as %s in %s (log: %s)", j.spec, version, acct.Name, tree, logPath)
	for _, step := range steps {
		l.logf("  %s", strings.Join(step, " "))
		fmt.Fprintf(lf, "+ %s\n", strings.Join(step, " "))
		if err := runAs(ctx, acct, tree, out, env, step...); err != nil {
			lf.Sync()
			tailText := ""
			if data, rerr := os.ReadFile(logPath); rerr == nil {
				tailText = "\n" + tail(string(data), 40)
			}
			return Result{}, fmt.Errorf("%w (log: %s)%s", err, logPath, tailText)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, nativeStamp), []byte(version+"\n"), 0o644); err != nil {
		return Result{}, err
	}
	return n.result(j, version, false, acct), nil
}

func (n *nativeBackend) runTAP(ctx context.Context, r Result, suites []string, out io.Writer) error {
	acct, err := EnsureAccount(ctx, n.b.cfg.buildUser, n.b.cfg.log)
	if err != nil {
		return err
	}
	if acct.Name != r.User {
		return fmt.Errorf("build tree %s belongs to %s, TAP would run as %s", r.BuildTree, r.User, acct.Name)
	}
	env := acct.Env()
	for i, s := range suites {
		args := tapMakeArgs(i, s)
		fmt.Fprintf(out, "+ %s\n", strings.Join(args, " "))
		if err := runAs(ctx, acct, r.BuildTree, out, env, args...); err != nil {
			return err
		}
	}
	return nil
}

func (n *nativeBackend) exec(ctx context.Context, r Result, args []string, out io.Writer) error {
	acct, err := EnsureAccount(ctx, n.b.cfg.buildUser, n.b.cfg.log)
	if err != nil {
		return err
	}
	return runAs(ctx, acct, r.BuildTree, out, acct.Env(), args...)
}
