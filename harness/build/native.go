package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/pgsrc"
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

func (n *nativeBackend) result(j job, version string, cached bool, acct osuser.Account) Result {
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
	acct, err := osuser.Ensure(ctx, n.b.cfg.buildUser, n.b.cfg.log)
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
	if j.base != nil {
		return n.derive(ctx, j, acct)
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
	l.logf("building %s %s natively as %s in %s (log: %s)", j.spec, version, acct.Name, tree, filepath.Join(dir, "build.log"))
	err = n.make(ctx, j, acct, version, [][]string{
		append([]string{"./configure", "--prefix=" + prefix}, ConfigureFlags()...),
		{"make", "-j" + strconv.Itoa(n.b.cfg.jobs)},
		{"make", "install"},
	})
	if err != nil {
		return Result{}, err
	}
	return n.result(j, version, false, acct), nil
}

// derive makes the build of a series from the build of its base (a
// series "dir1:dir2" from "dir1", a single series from the stock build),
// made first or reused: it copies the base's built tree with its
// timestamps, points the copy's configuration at the new directory,
// applies the last directory's patches and lets make rebuild what they
// touched. The known-bad variants (one patch on top of the series,
// touching a few files) and the series over stock are built this way in
// 10 to 30 seconds instead of a full build of 5 to 7 minutes each. The
// result is what a full build of the same series would be; it shares its
// key.
func (n *nativeBackend) derive(ctx context.Context, j job, acct osuser.Account) (Result, error) {
	l := n.b.log
	base, err := n.b.Build(ctx, *j.base)
	if err != nil {
		return Result{}, fmt.Errorf("base of the stacked series: %w", err)
	}
	if base.Backend != BackendNative {
		return Result{}, fmt.Errorf("base of the stacked series is a %s build", base.Backend)
	}
	dir := n.dir(j)
	baseDir := filepath.Dir(base.BuildTree)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	tree := filepath.Join(dir, "src")
	l.logf("deriving %s from %s: copying its build tree", j.spec, baseDir)
	if out, err := exec.CommandContext(ctx, "cp", "-a", base.BuildTree, tree).CombinedOutput(); err != nil {
		return Result{}, fmt.Errorf("copy %s: %w: %s", base.BuildTree, err, out)
	}
	if err := relocateTree(tree, baseDir, dir); err != nil {
		return Result{}, err
	}
	if err := pgsrc.ApplySeries(ctx, tree, j.extra, n.b.cfg.log); err != nil {
		return Result{}, err
	}
	l.logf("building %s %s natively as %s in %s, incrementally (log: %s)", j.spec, base.Version, acct.Name, tree, filepath.Join(dir, "build.log"))
	err = n.make(ctx, j, acct, base.Version, [][]string{
		{"make", "-j" + strconv.Itoa(n.b.cfg.jobs)},
		{"make", "install"},
	})
	if err != nil {
		return Result{}, err
	}
	return n.result(j, base.Version, false, acct), nil
}

// relocateTree points a copied, configured build tree at its new
// directory: the installation prefix and the absolute build paths that
// configure wrote into src/Makefile.global (make then regenerates what
// depends on it, pg_config_paths.h among them) and into config.status (so
// that a regeneration agrees; its time is kept, so that it triggers none).
// It removes every linked program and shared library, since make relinks
// a program only when its own objects change, and each carries the
// installation's library directory (its run path) and the paths of
// pg_config_paths.h. Only pg_config --configure still shows the base's
// prefix: it is compiled from pg_config.h, whose dependents make does not
// track without --enable-depend.
func relocateTree(tree, from, to string) error {
	for _, rel := range []string{"src/Makefile.global", "config.status"} {
		p := filepath.Join(tree, rel)
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("relocate build tree: %w", err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("relocate build tree: %w", err)
		}
		if !bytes.Contains(data, []byte(from)) {
			return fmt.Errorf("relocate build tree: %s does not name %s", p, from)
		}
		data = bytes.ReplaceAll(data, []byte(from+"/"), []byte(to+"/"))
		if err := os.WriteFile(p, data, st.Mode().Perm()); err != nil {
			return fmt.Errorf("relocate build tree: %w", err)
		}
		if rel == "config.status" {
			if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
				return fmt.Errorf("relocate build tree: %w", err)
			}
		}
	}
	return removeLinked(tree)
}

// removeLinked removes the ELF programs and shared libraries under tree,
// keeping objects and static archives.
func removeLinked(tree string) error {
	return filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if ext := filepath.Ext(p); ext == ".o" || ext == ".a" || ext == ".bc" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&0o111 == 0 && !strings.Contains(d.Name(), ".so") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		magic := make([]byte, 4)
		_, rerr := io.ReadFull(f, magic)
		f.Close()
		if rerr != nil || string(magic) != "\x7fELF" {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("relocate build tree: %w", err)
		}
		return nil
	})
}

// make runs the build steps in <dir>/src as the account, logging to
// <dir>/build.log, and writes the stamp that marks a complete build.
func (n *nativeBackend) make(ctx context.Context, j job, acct osuser.Account, version string, steps [][]string) error {
	l := n.b.log
	dir := n.dir(j)
	tree := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(dir, "install"), 0o755); err != nil {
		return err
	}
	if err := acct.ChownTree(dir); err != nil {
		return fmt.Errorf("chown %s to %s: %w", dir, acct.Name, err)
	}
	logPath := filepath.Join(dir, "build.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	var out io.Writer = lf
	if n.b.cfg.verbose {
		out = io.MultiWriter(lf, l.writer())
	}
	env := acct.Env()
	for _, step := range steps {
		l.logf("  %s", strings.Join(step, " "))
		fmt.Fprintf(lf, "+ %s\n", strings.Join(step, " "))
		stop := l.progress(step[0], out)
		err := runAs(ctx, acct, tree, stop.w, env, step...)
		stop.done()
		if err != nil {
			lf.Sync()
			tailText := ""
			if data, rerr := os.ReadFile(logPath); rerr == nil {
				tailText = "\n" + tail(string(data), 40)
			}
			return fmt.Errorf("%w (log: %s)%s", err, logPath, tailText)
		}
	}
	return os.WriteFile(filepath.Join(dir, nativeStamp), []byte(version+"\n"), 0o644)
}

func (n *nativeBackend) runTAP(ctx context.Context, r Result, suites []string, out io.Writer) error {
	acct, err := osuser.Ensure(ctx, n.b.cfg.buildUser, n.b.cfg.log)
	if err != nil {
		return err
	}
	if acct.Name != r.User {
		return fmt.Errorf("build tree %s belongs to %s, TAP would run as %s", r.BuildTree, r.User, acct.Name)
	}
	env := acct.Env()
	for i, s := range suites {
		args := tapMakeArgs(i, s, n.b.tapJobs())
		fmt.Fprintf(out, "+ %s\n", strings.Join(args, " "))
		if err := runAs(ctx, acct, r.BuildTree, out, env, args...); err != nil {
			return err
		}
	}
	return nil
}

func (n *nativeBackend) exec(ctx context.Context, r Result, args []string, out io.Writer) error {
	acct, err := osuser.Ensure(ctx, n.b.cfg.buildUser, n.b.cfg.log)
	if err != nil {
		return err
	}
	return runAs(ctx, acct, r.BuildTree, out, acct.Env(), args...)
}
