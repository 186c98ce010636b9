package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/pgsrc"
)

// Backend names.
const (
	// BackendAuto picks the container backend when a Docker engine answers,
	// otherwise the native one.
	BackendAuto = "auto"
	// BackendContainer builds Dockerfile.pgbuild into an image.
	BackendContainer = "container"
	// BackendNative builds into the cache directory on the host.
	BackendNative = "native"
)

// Result says where a build is, so that servers, pg_basebackup and TAP
// suites can be run from it.
type Result struct {
	// Spec is what was built.
	Spec Spec
	// Backend is BackendContainer or BackendNative.
	Backend string
	// Version is the PostgreSQL version built ("18.6").
	Version string
	// Source says where the source came from.
	Source string
	// Key is the hash that names the build (see Builder.Key).
	Key string
	// Cached is true when an existing build was reused.
	Cached bool
	// Image is the image tag (container backend only).
	Image string
	// Prefix is the installation prefix: a path in Image for the container
	// backend, a host path for the native one.
	Prefix string
	// BinDir is Prefix/bin.
	BinDir string
	// BuildTree is the configured and built source tree, where the TAP
	// suites run (`make -C src/bin/pg_basebackup check`).
	BuildTree string
	// User owns BuildTree and runs PostgreSQL programs.
	User string
	// Elapsed is how long Build took.
	Elapsed time.Duration
}

// Config holds the Builder's settings; see the With* options.
type Config struct {
	repoRoot  string
	cacheDir  string
	backend   string
	pgsrc     string
	log       io.Writer
	buildUser string
	jobs      int
	baseImage string
	verbose   bool
	// engineErr, when set, stands for an engine that does not answer
	// (tests).
	engineErr error
}

// Option configures a Builder.
type Option func(*Config)

// WithRepoRoot sets the repository root (Dockerfile.pgbuild, patches/).
func WithRepoRoot(dir string) Option { return func(c *Config) { c.repoRoot = dir } }

// WithCacheDir sets the cache directory (default: <repo>/.cache).
func WithCacheDir(dir string) Option { return func(c *Config) { c.cacheDir = dir } }

// WithBackend sets the backend: auto, container or native.
func WithBackend(name string) Option { return func(c *Config) { c.backend = name } }

// WithPGSRC builds from a user's source tree or tarball instead of the
// pinned Debian source.
func WithPGSRC(path string) Option { return func(c *Config) { c.pgsrc = path } }

// WithLog sends progress lines to w.
func WithLog(w io.Writer) Option { return func(c *Config) { c.log = w } }

// WithBuildUser names the unprivileged user of native builds run as root.
func WithBuildUser(name string) Option { return func(c *Config) { c.buildUser = name } }

// WithJobs sets make's -j (default: the number of CPUs).
func WithJobs(n int) Option { return func(c *Config) { c.jobs = n } }

// WithBaseImage sets the container base image (BASE_IMAGE); when empty the
// harness uses debian:bookworm if present or pullable, else makes its own.
func WithBaseImage(ref string) Option { return func(c *Config) { c.baseImage = ref } }

// WithVerbose streams full build output to the log, not only the steps.
func WithVerbose(v bool) Option { return func(c *Config) { c.verbose = v } }

// FromEnv returns the options the environment sets: BACKEND, PGSRC,
// PGBB_CACHE, BASE_IMAGE, PGBB_BUILD_USER, PGBB_VERBOSE.
func FromEnv() []Option {
	var opts []Option
	if v := os.Getenv("BACKEND"); v != "" {
		opts = append(opts, WithBackend(v))
	}
	if v := os.Getenv("PGSRC"); v != "" {
		opts = append(opts, WithPGSRC(v))
	}
	if v := os.Getenv("PGBB_CACHE"); v != "" {
		opts = append(opts, WithCacheDir(v))
	}
	if v := os.Getenv("BASE_IMAGE"); v != "" {
		opts = append(opts, WithBaseImage(v))
	}
	if v := os.Getenv("PGBB_BUILD_USER"); v != "" {
		opts = append(opts, WithBuildUser(v))
	}
	if v := os.Getenv("PGBB_VERBOSE"); v != "" && v != "0" {
		opts = append(opts, WithVerbose(true))
	}
	return opts
}

// Builder builds PostgreSQL with one backend.
type Builder struct {
	cfg     Config
	log     *logger
	backend backend
	src     *pgsrc.Resolver
}

// backend is one way of building.
type backend interface {
	name() string
	// build makes (or finds) the build of j.
	build(ctx context.Context, j job) (Result, error)
	// runTAP runs `make -C <suite> check` for each suite in the build tree.
	runTAP(ctx context.Context, r Result, suites []string, out io.Writer) error
	// exec runs args in the build tree as the build's user.
	exec(ctx context.Context, r Result, args []string, out io.Writer) error
}

// job is one build to make.
type job struct {
	spec    Spec
	src     pgsrc.Source
	patches []string
	key     string
	name    string // <major>-<label>-<key prefix>
	// base, when set, is the build of all but the last directory of a
	// stacked series (spec.PatchDir "dir1:dir2"), or the stock build for
	// a single series, and extra the patches of the last one: the native
	// backend derives j from base (see derive); the container backend
	// builds every patch from scratch.
	base  *Spec
	extra []string
}

// New returns a Builder. The backend is chosen here: with "auto" the
// container backend when a Docker engine answers, otherwise native; the
// choice is logged. A forced backend that cannot work is an error.
func New(ctx context.Context, opts ...Option) (*Builder, error) {
	cfg := Config{backend: BackendAuto, jobs: runtime.NumCPU()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.repoRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if cfg.repoRoot, err = FindRepoRoot(wd); err != nil {
			return nil, err
		}
	}
	var err error
	if cfg.cacheDir, err = cacheDir(cfg.repoRoot, cfg.cacheDir); err != nil {
		return nil, err
	}
	if cfg.jobs < 1 {
		cfg.jobs = 1
	}
	b := &Builder{cfg: cfg, log: &logger{cfg.log}}
	b.src = &pgsrc.Resolver{CacheDir: cfg.cacheDir, Log: cfg.log}
	switch cfg.backend {
	case BackendContainer:
		cb, err := newContainerBackend(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("backend container (forced): %w", err)
		}
		b.backend = cb
		b.log.logf("backend: container (forced; Docker engine %s)", cb.engine)
	case BackendNative:
		b.backend = newNativeBackend(b)
		b.log.logf("backend: native (forced)")
	case BackendAuto, "":
		cb, err := newContainerBackend(ctx, b)
		if err == nil {
			b.backend = cb
			b.log.logf("backend: container (auto: Docker engine %s answered)", cb.engine)
		} else {
			b.backend = newNativeBackend(b)
			b.log.logf("backend: native (auto: no Docker engine: %v)", err)
		}
	default:
		return nil, fmt.Errorf("unknown backend %q: supported backends are %s, %s, %s", cfg.backend, BackendAuto, BackendContainer, BackendNative)
	}
	return b, nil
}

// Backend returns the name of the chosen backend.
func (b *Builder) Backend() string { return b.backend.name() }

// CacheDir returns the cache directory.
func (b *Builder) CacheDir() string { return b.cfg.cacheDir }

// CacheDirFromEnv returns the cache directory a Builder made with FromEnv
// in the working directory uses: PGBB_CACHE, or .cache at the root of the
// repository.
func CacheDirFromEnv() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := FindRepoRoot(wd)
	if err != nil {
		return "", err
	}
	return cacheDir(root, os.Getenv("PGBB_CACHE"))
}

// cacheDir is dir made absolute, or .cache in the repository at root.
func cacheDir(root, dir string) (string, error) {
	if dir == "" {
		dir = filepath.Join(root, ".cache")
	}
	return filepath.Abs(dir)
}

// PatchDir returns the patch series of spec: its override or
// <repo>/patches/pg<major>.
func (b *Builder) PatchDir(spec Spec) string {
	if spec.PatchDir != "" {
		return spec.PatchDir
	}
	return filepath.Join(b.cfg.repoRoot, "patches", fmt.Sprintf("pg%d", spec.Major))
}

// Build builds spec, or reuses an existing build with the same key.
func (b *Builder) Build(ctx context.Context, spec Spec) (Result, error) {
	start := time.Now()
	j, err := b.plan(ctx, spec)
	if err != nil {
		return Result{}, err
	}
	b.log.logf("%s: key %s, source %s", spec, j.key[:16], j.src.Origin)
	r, err := b.backend.build(ctx, j)
	if err != nil {
		return Result{}, fmt.Errorf("build %s (%s backend): %w", spec, b.backend.name(), err)
	}
	r.Elapsed = time.Since(start)
	how := "built"
	if r.Cached {
		how = "reused"
	}
	b.log.logf("%s: %s in %s (%s backend)", spec, how, r.Elapsed.Round(100*time.Millisecond), r.Backend)
	return r, nil
}

// plan validates spec and computes its key.
func (b *Builder) plan(ctx context.Context, spec Spec) (job, error) {
	if err := spec.Validate(); err != nil {
		return job{}, err
	}
	src, err := b.src.Identify(ctx, spec.Major, b.cfg.pgsrc)
	if err != nil {
		return job{}, err
	}
	var patches []string
	if spec.Variant == Patched {
		if patches, err = pgsrc.PatchSeries(b.PatchDir(spec)); err != nil {
			return job{}, err
		}
	}
	j := job{spec: spec, src: src, patches: patches}
	switch dirs := filepath.SplitList(spec.PatchDir); {
	case spec.Variant == Patched && len(dirs) > 1:
		last, err := pgsrc.PatchSeries(dirs[len(dirs)-1])
		if err != nil {
			return job{}, err
		}
		base := spec
		base.PatchDir = strings.Join(dirs[:len(dirs)-1], string(filepath.ListSeparator))
		base.Name = ""
		j.base, j.extra = &base, last
	case spec.Variant == Patched:
		// A series is derived from the stock build of its release, so
		// that the stock and patched builds that a comparison needs
		// cost one full build, not two.
		j.base, j.extra = &Spec{Major: spec.Major, Variant: Stock}, patches
	}
	extra, err := b.backendKeyParts()
	if err != nil {
		return job{}, err
	}
	if j.key, err = Key(spec, src.SHA256, patches, extra...); err != nil {
		return job{}, err
	}
	j.name = fmt.Sprintf("%d-%s-%s", spec.Major, spec.Variant, j.key[:16])
	return j, nil
}

// backendKeyParts returns what besides source and patches determines a
// build of this backend.
func (b *Builder) backendKeyParts() ([]string, error) {
	parts := []string{"configure=" + strings.Join(ConfigureFlags(), " ")}
	if b.backend.name() == BackendContainer {
		df, err := os.ReadFile(filepath.Join(b.cfg.repoRoot, "Dockerfile.pgbuild"))
		if err != nil {
			return nil, fmt.Errorf("container build: %w", err)
		}
		sum := sha256.Sum256(df)
		parts = append(parts, "dockerfile="+hex.EncodeToString(sum[:]), "deps="+strings.Join(BuildDeps(), " "))
	}
	return parts, nil
}

// Key hashes what determines a build: the version, the variant, the source
// checksum, each patch's name and content in order, and extra parts (the
// configure flags; for images also the Dockerfile and its packages).
func Key(spec Spec, sourceSHA256 string, patches []string, extra ...string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "pgbb build key v1\nmajor=%d\nvariant=%s\nsource=%s\n", spec.Major, spec.Variant, sourceSHA256)
	for _, p := range patches {
		data, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("build key: %w", err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(h, "patch %s %s\n", filepath.Base(p), hex.EncodeToString(sum[:]))
	}
	for _, e := range extra {
		fmt.Fprintf(h, "%s\n", e)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DefaultTAPSuites are the upstream TAP suites the project's patch touches.
func DefaultTAPSuites() []string {
	return []string{"src/bin/pg_basebackup", "src/bin/pg_verifybackup"}
}

// RunTAP runs `make -C <suite> check` for each suite (DefaultTAPSuites when
// none are given) in the build tree of r, as the unprivileged user; in a
// container from r.Image for the container backend. Output is streamed to
// out and returned. It fails when a suite fails, or when the output says
// the TAP tests are not enabled.
func (b *Builder) RunTAP(ctx context.Context, r Result, out io.Writer, suites ...string) (string, error) {
	if len(suites) == 0 {
		suites = DefaultTAPSuites()
	}
	if r.Backend != b.backend.name() {
		return "", fmt.Errorf("run TAP: build is from the %s backend, this builder uses %s", r.Backend, b.backend.name())
	}
	var buf strings.Builder
	w := io.Writer(&buf)
	if out != nil {
		w = io.MultiWriter(&buf, out)
	}
	b.log.logf("%s: running TAP suites %s (%s backend)", r.Spec, strings.Join(suites, ", "), r.Backend)
	start := time.Now()
	err := b.backend.runTAP(ctx, r, suites, w)
	log := buf.String()
	if err == nil {
		err = checkTAPLog(log, suites)
	}
	if err != nil {
		return log, fmt.Errorf("TAP suites of %s (%s backend): %w", r.Spec, r.Backend, err)
	}
	b.log.logf("%s: TAP suites passed in %s", r.Spec, time.Since(start).Round(time.Second))
	return log, nil
}

// Exec runs a command in r's build tree as r's user (for the container
// backend in a new container from r.Image, removed afterwards) and returns
// its output; a non-zero exit is an error that includes the output.
func (b *Builder) Exec(ctx context.Context, r Result, args ...string) (string, error) {
	if r.Backend != b.backend.name() {
		return "", fmt.Errorf("exec: build is from the %s backend, this builder uses %s", r.Backend, b.backend.name())
	}
	var out strings.Builder
	if err := b.backend.exec(ctx, r, args, &out); err != nil {
		return out.String(), fmt.Errorf("exec %s in %s: %w\n%s", strings.Join(args, " "), r.Spec, err, tail(out.String(), 20))
	}
	return out.String(), nil
}

// tapMakeArgs is the command of the i-th suite: the first one makes the
// temporary installation `make check` uses, later ones reuse it. The
// suite's test files run tapJobs at a time (prove -j): each has its own
// data directories and locks its ports, and they spend most of their time
// waiting on servers (the suites used a quarter of two cores run one file
// at a time), so running them side by side cuts a suite's time to about
// its longest file's.
func tapMakeArgs(i int, suite string, tapJobs int) []string {
	args := []string{"make", "-C", suite, "check", "PROVE_FLAGS=-j" + strconv.Itoa(max(1, tapJobs))}
	if i > 0 {
		args = append(args, "NO_TEMP_INSTALL=1")
	}
	return args
}

// tapJobs is how many TAP test files of a suite run at once: twice the
// build's jobs, since they mostly wait.
func (b *Builder) tapJobs() int { return 2 * b.cfg.jobs }

// checkTAPLog rejects logs where TAP tests did not really run.
func checkTAPLog(log string, suites []string) error {
	if strings.Contains(log, "TAP tests not enabled") {
		return errors.New(`"TAP tests not enabled": the build was configured without --enable-tap-tests`)
	}
	if n := strings.Count(log, "All tests successful."); n < len(suites) {
		return fmt.Errorf("%d of %d suites reported \"All tests successful.\"", n, len(suites))
	}
	return nil
}

// FindRepoRoot walks up from dir to the directory holding the project's
// go.mod.
func FindRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(data), "module github.com/pgbb/pgbb") {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no pgbb repository (go.mod of github.com/pgbb/pgbb) at or above %s", dir)
		}
	}
}
