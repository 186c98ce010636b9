package build

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/pgbb/pgbb/harness/pgsrc"
)

// Paths inside the images Dockerfile.pgbuild makes.
const (
	// ImagePrefix is the installation prefix in the image.
	ImagePrefix = "/usr/local/pgsql"
	// ImageBuildTree is the configured build tree in the image.
	ImageBuildTree = "/home/pgbuild/src"
	// ImageUser owns ImageBuildTree and runs PostgreSQL in the image.
	ImageUser = "pgbuild"
	// ImageRepo is the repository of the build images.
	ImageRepo = "pgbb-pg"
	// BaseImageRepo is the repository of base images the harness makes.
	BaseImageRepo = "pgbb-base"
	// DefaultBaseImage is the base image used when present or pullable.
	DefaultBaseImage = "debian:bookworm"
	// baseSuite is the Debian suite of the base image the harness makes.
	baseSuite = "bookworm"
)

// containerBackend builds Dockerfile.pgbuild through testcontainers-go.
type containerBackend struct {
	b      *Builder
	cli    *testcontainers.DockerClient
	engine string
}

// DisableRyuk turns testcontainers' reaper off: it is an image that cannot
// be pulled without a registry. The harness removes its own containers.
// It must run before the first testcontainers call.
func DisableRyuk() {
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
}

func newContainerBackend(ctx context.Context, b *Builder) (*containerBackend, error) {
	DisableRyuk()
	if b.cfg.engineErr != nil {
		return nil, fmt.Errorf("docker engine does not answer: %w", b.cfg.engineErr)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cli, err := dockerClient(pctx)
	if err != nil {
		return nil, err
	}
	ping, err := cli.Ping(pctx, client.PingOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker engine does not answer: %w", err)
	}
	return &containerBackend{b: b, cli: cli, engine: "API " + ping.APIVersion}, nil
}

// dockerClient connects to the engine without testcontainers' banner.
func dockerClient(ctx context.Context) (cli *testcontainers.DockerClient, err error) {
	defer func() {
		// testcontainers panics when no engine can be found at all.
		if r := recover(); r != nil {
			err = fmt.Errorf("docker engine: %v", r)
		}
	}()
	cli, err = testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	return cli, nil
}

func (c *containerBackend) name() string { return BackendContainer }

func (c *containerBackend) tag(j job) string { return ImageRepo + ":" + j.name }

func (c *containerBackend) result(j job, version string, cached bool) Result {
	return Result{
		Spec: j.spec, Backend: BackendContainer, Version: version, Source: j.src.Origin,
		Key: j.key, Cached: cached, Image: c.tag(j), Prefix: ImagePrefix,
		BinDir: ImagePrefix + "/bin", BuildTree: ImageBuildTree, User: ImageUser,
	}
}

// imageExists says whether ref is in the engine's image store, and returns
// its labels.
func (c *containerBackend) imageExists(ctx context.Context, ref string) (bool, map[string]string, error) {
	res, err := c.cli.ImageInspect(ctx, ref)
	if err != nil {
		if isNotFound(err) {
			return false, nil, nil
		}
		return false, nil, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	var labels map[string]string
	if res.Config != nil {
		labels = res.Config.Labels
	}
	return true, labels, nil
}

func isNotFound(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no such image") || strings.Contains(s, "not found")
}

func (c *containerBackend) build(ctx context.Context, j job) (Result, error) {
	l := c.b.log
	tag := c.tag(j)
	ok, labels, err := c.imageExists(ctx, tag)
	if err != nil {
		return Result{}, err
	}
	if ok {
		l.logf("reusing image %s", tag)
		return c.result(j, labels["org.pgbb.version"], true), nil
	}
	unlock, err := c.b.lockBuild(ctx, "image-"+j.name)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if ok, labels, err := c.imageExists(ctx, tag); err != nil || ok {
		if ok {
			l.logf("reusing image %s (made meanwhile by another process)", tag)
		}
		return c.result(j, labels["org.pgbb.version"], ok), err
	}
	// The build context: the Dockerfile, the release's tree and the
	// overlay of what the patches change (see Dockerfile.pgbuild). It is
	// made first, so that a patch that does not apply fails before
	// anything else.
	ctxDir := filepath.Join(c.b.cfg.cacheDir, "ctx", j.name)
	version, err := c.makeContext(ctx, j, ctxDir)
	defer os.RemoveAll(ctxDir)
	if err != nil {
		return Result{}, err
	}
	base, err := c.baseImage(ctx)
	if err != nil {
		return Result{}, err
	}

	logPath := filepath.Join(c.b.cfg.cacheDir, "logs", j.name+".build.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return Result{}, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return Result{}, err
	}
	defer lf.Close()
	var out io.Writer = lf
	steps := &stepFilter{w: l.writer(), prefix: "pgbb:   "}
	if c.b.cfg.verbose {
		out = io.MultiWriter(lf, l.writer())
	} else {
		out = io.MultiWriter(lf, steps)
	}

	req := c.buildRequest(j, tag, ctxDir, base, version, out)
	prov, err := testcontainers.NewDockerProvider()
	if err != nil {
		return Result{}, fmt.Errorf("docker provider: %w", err)
	}
	defer prov.Close()
	l.logf("building image %s from %s on %s (log: %s)", tag, version, base, logPath)
	if _, err := prov.BuildImage(ctx, &req); err != nil {
		lf.Sync()
		tailText := ""
		if data, rerr := os.ReadFile(logPath); rerr == nil {
			tailText = "\n" + tail(string(data), 40)
		}
		return Result{}, fmt.Errorf("docker build %s: %w (log: %s)%s", tag, err, logPath, tailText)
	}
	return c.result(j, version, false), nil
}

// buildRequest is the image build of j: the build context in ctxDir on
// the base image, the build's output going to out.
func (c *containerBackend) buildRequest(j job, tag, ctxDir, base, version string, out io.Writer) testcontainers.ContainerRequest {
	args := map[string]*string{
		"BASE_IMAGE":      strPtr(base),
		"BUILD_DEPS":      strPtr(strings.Join(BuildDeps(), " ")),
		"CONFIGURE_FLAGS": strPtr(strings.Join(ConfigureFlags(), " ")),
		"JOBS":            strPtr(strconv.Itoa(c.b.cfg.jobs)),
	}
	repo, tagPart, _ := strings.Cut(tag, ":")
	return testcontainers.ContainerRequest{
		FromDockerfile: testcontainers.FromDockerfile{
			Context:        ctxDir,
			Dockerfile:     "Dockerfile.pgbuild",
			Repo:           repo,
			Tag:            tagPart,
			BuildArgs:      args,
			BuildLogWriter: out,
			KeepImage:      true,
			BuildOptionsModifier: func(o *client.ImageBuildOptions) {
				o.NetworkMode = "host"
				o.PullParent = false
				o.Labels = map[string]string{
					"org.pgbb.project": "pgbb",
					"org.pgbb.version": version,
					"org.pgbb.variant": j.spec.label(),
					"org.pgbb.key":     j.key,
				}
			},
		},
	}
}

// makeContext writes the build context of j into ctxDir: postgresql/, the
// release's tree as released, and overlay/, what j's patches change in it
// (pgsrc.MakeOverlay). It returns the tree's version.
func (c *containerBackend) makeContext(ctx context.Context, j job, ctxDir string) (string, error) {
	l := c.b.log
	patched := ctxDir + ".patched"
	for _, d := range []string{ctxDir, patched} {
		if err := os.RemoveAll(d); err != nil {
			return "", err
		}
	}
	defer os.RemoveAll(patched)
	if len(j.patches) > 0 {
		if _, err := c.b.src.Prepare(ctx, j.src, j.patches, patched); err != nil {
			return "", err
		}
	}
	pristine := filepath.Join(ctxDir, "postgresql")
	version, err := c.b.src.Prepare(ctx, j.src, nil, pristine)
	if err != nil {
		return "", err
	}
	overlay := filepath.Join(ctxDir, "overlay")
	if len(j.patches) == 0 {
		patched = pristine
	}
	changed, deleted, err := pgsrc.MakeOverlay(ctx, pristine, patched, overlay)
	if err != nil {
		return "", err
	}
	l.logf("overlay: the patches change %d file(s) and delete %d; the image builds the release first, then those", len(changed), len(deleted))
	df, err := os.ReadFile(filepath.Join(c.b.cfg.repoRoot, "Dockerfile.pgbuild"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile.pgbuild"), df, 0o644); err != nil {
		return "", err
	}
	return version, nil
}

func strPtr(s string) *string { return &s }

// stepFilter passes on only the build's "Step n/m" lines.
type stepFilter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (s *stepFilter) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := strings.IndexByte(string(s.buf), '\n')
		if i < 0 {
			break
		}
		line := string(s.buf[:i])
		s.buf = s.buf[i+1:]
		if strings.HasPrefix(line, "Step ") {
			if len(line) > 150 {
				line = line[:150] + "..."
			}
			fmt.Fprintf(s.w, "%s%s\n", s.prefix, line)
		}
	}
	return len(p), nil
}

// BaseImageTag is the tag of the base image the harness makes: a hash of
// the suite, the debootstrap variant and the packages.
func BaseImageTag() string {
	sum := sha256.Sum256([]byte("suite=" + baseSuite + "\nvariant=minbase\ndeps=" + strings.Join(BuildDeps(), ",") + "\n"))
	return BaseImageRepo + ":" + baseSuite + "-" + hex.EncodeToString(sum[:])[:12]
}

// baseImage returns the image to build FROM. An explicit BASE_IMAGE must be
// present or pullable. Otherwise: the harness's own base image when made
// before, debian:bookworm when present or pullable, and failing that a
// base image made here with debootstrap.
func (c *containerBackend) baseImage(ctx context.Context) (string, error) {
	l := c.b.log
	if ref := c.b.cfg.baseImage; ref != "" {
		if ok, _, err := c.imageExists(ctx, ref); err != nil || ok {
			return ref, err
		}
		if err := c.pull(ctx, ref); err != nil {
			return "", fmt.Errorf("BASE_IMAGE %s is not present and cannot be pulled: %w", ref, err)
		}
		return ref, nil
	}
	own := BaseImageTag()
	if ok, _, err := c.imageExists(ctx, own); err != nil || ok {
		if ok {
			l.logf("base image: %s (made earlier by the harness)", own)
		}
		return own, err
	}
	if ok, _, err := c.imageExists(ctx, DefaultBaseImage); err != nil || ok {
		if ok {
			l.logf("base image: %s", DefaultBaseImage)
		}
		return DefaultBaseImage, err
	}
	perr := c.pull(ctx, DefaultBaseImage)
	if perr == nil {
		l.logf("base image: %s (pulled)", DefaultBaseImage)
		return DefaultBaseImage, nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	unlock, err := c.b.lockBuild(ctx, "base-"+strings.ReplaceAll(own, ":", "-"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if ok, _, err := c.imageExists(ctx, own); err != nil || ok {
		if ok {
			l.logf("base image: %s (made meanwhile by another process)", own)
		}
		return own, err
	}
	l.logf("base image %s is not present and cannot be pulled (%v)", DefaultBaseImage, oneLine(perr))
	l.logf("MAKING BASE IMAGE %s: debootstrap %s with the build dependencies, then docker import", own, baseSuite)
	if err := c.makeBaseImage(ctx, own); err != nil {
		return "", fmt.Errorf("make base image %s: %w", own, err)
	}
	return own, nil
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// pull pulls ref, giving up after a minute.
func (c *containerBackend) pull(ctx context.Context, ref string) error {
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := c.cli.ImagePull(pctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(pctx)
}

// makeBaseImage debootstraps a minimal rootfs with the build dependencies
// from the Debian archive the host's apt sources name, and imports it.
func (c *containerBackend) makeBaseImage(ctx context.Context, ref string) error {
	l := c.b.log
	if os.Geteuid() != 0 {
		return fmt.Errorf("debootstrap needs root; run as root, or set BASE_IMAGE to a Debian bookworm image the engine has")
	}
	if err := ensureDebs(ctx, l, "debootstrap for the base image", []string{"debootstrap"}); err != nil {
		return err
	}
	archive, err := pgsrc.HostArchive(nil)
	if err != nil {
		return err
	}
	_, tagPart, _ := strings.Cut(ref, ":")
	root := filepath.Join(c.b.cfg.cacheDir, "base", tagPart)
	if err := removeRootfs(root); err != nil {
		return err
	}
	defer removeRootfs(root)
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(c.b.cfg.cacheDir, "logs", "base-"+tagPart+".debootstrap.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	args := []string{"debootstrap", "--variant=minbase", "--include=" + strings.Join(BuildDeps(), ","), baseSuite, root, archive}
	l.logf("  %s (log: %s)", strings.Join(args, " "), logPath)
	start := time.Now()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Run(); err != nil {
		data, _ := os.ReadFile(logPath)
		return fmt.Errorf("debootstrap: %w (log: %s)\n%s", err, logPath, tail(string(data), 30))
	}
	l.logf("  debootstrap done in %s; importing as %s", time.Since(start).Round(time.Second), ref)
	if err := c.importRootfs(ctx, root, ref); err != nil {
		return err
	}
	l.logf("  base image %s made in %s", ref, time.Since(start).Round(time.Second))
	return nil
}

// importRootfs is `tar -C root -c . | docker import --change ... - ref`.
func (c *containerBackend) importRootfs(ctx context.Context, root, ref string) error {
	tarCmd := exec.CommandContext(ctx, "tar", "-C", root, "--numeric-owner", "-c", ".")
	var tarErr strings.Builder
	tarCmd.Stderr = &tarErr
	stdout, err := tarCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := tarCmd.Start(); err != nil {
		return fmt.Errorf("tar %s: %w", root, err)
	}
	res, err := c.cli.ImageImport(ctx, client.ImageImportSource{Source: stdout, SourceName: "-"}, ref, client.ImageImportOptions{
		Changes: []string{
			"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			`CMD ["bash"]`,
			"LABEL org.pgbb.project=pgbb",
		},
	})
	if err == nil {
		_, err = io.Copy(io.Discard, res)
		res.Close()
	}
	werr := tarCmd.Wait()
	if err != nil {
		return fmt.Errorf("docker import %s: %w", ref, err)
	}
	if werr != nil {
		return fmt.Errorf("tar %s: %w: %s", root, werr, tarErr.String())
	}
	ok, _, err := c.imageExists(ctx, ref)
	if err == nil && !ok {
		err = errors.New("image missing after import")
	}
	return err
}

// removeRootfs unmounts anything a killed debootstrap left mounted under
// root (proc, sys), then removes it.
func removeRootfs(root string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if data, err := os.ReadFile("/proc/self/mounts"); err == nil {
		var mounts []string
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 1 && (f[1] == abs || strings.HasPrefix(f[1], abs+"/")) {
				mounts = append(mounts, f[1])
			}
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			if out, err := exec.Command("umount", "-l", mounts[i]).CombinedOutput(); err != nil {
				return fmt.Errorf("umount %s: %w: %s", mounts[i], err, out)
			}
		}
	}
	return os.RemoveAll(abs)
}

func (c *containerBackend) runTAP(ctx context.Context, r Result, suites []string, out io.Writer) error {
	var script strings.Builder
	script.WriteString("set -e\n")
	for i, s := range suites {
		args := tapMakeArgs(i, s, c.b.tapJobs())
		fmt.Fprintf(&script, "echo '+ %s'\n%s\n", strings.Join(args, " "), strings.Join(args, " "))
	}
	code, err := RunInImage(ctx, r.Image, ImageUser, ImageBuildTree, []string{"bash", "-c", script.String()}, out)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("TAP run in %s exited with %d", r.Image, code)
	}
	return nil
}

func (c *containerBackend) exec(ctx context.Context, r Result, args []string, out io.Writer) error {
	code, err := RunInImage(ctx, r.Image, ImageUser, ImageBuildTree, args, out)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("exit status %d", code)
	}
	return nil
}

// RunInImage runs cmd in a new container from image as user in dir,
// streaming its output to out, waits for it to exit and returns the exit
// code. The container is removed in every case, also when ctx is cancelled
// (removal then runs with a fresh context).
func RunInImage(ctx context.Context, image, user, dir string, cmd []string, out io.Writer) (code int, err error) {
	DisableRyuk()
	if out == nil {
		out = io.Discard
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return -1, err
	}
	defer cli.Close()
	req := testcontainers.ContainerRequest{
		Image:      image,
		Cmd:        cmd,
		User:       user,
		WorkingDir: dir,
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	defer func() {
		if c == nil {
			return
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if terr := testcontainers.TerminateContainer(c, testcontainers.StopContext(tctx), testcontainers.StopTimeout(2*time.Second)); terr != nil && err == nil {
			err = fmt.Errorf("remove container of %s: %w", image, terr)
		}
	}()
	if err != nil {
		return -1, fmt.Errorf("run %s: %w", image, err)
	}
	logs, err := cli.ContainerLogs(ctx, c.GetContainerID(), client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return -1, fmt.Errorf("logs of container from %s: %w", image, err)
	}
	defer logs.Close()
	copied := make(chan error, 1)
	go func() { copied <- demux(out, logs) }()
	for {
		st, serr := c.State(ctx)
		if serr != nil {
			return -1, fmt.Errorf("state of container from %s: %w", image, serr)
		}
		if !st.Running {
			code = st.ExitCode
			break
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// The log stream ends when the container has stopped.
	select {
	case <-copied:
	case <-time.After(30 * time.Second):
	}
	return code, nil
}

// demux copies Docker's multiplexed stdout/stderr log stream (8-byte frame
// headers, as sent for containers without a TTY) to w.
func demux(w io.Writer, r io.Reader) error {
	br := bufio.NewReader(r)
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		n := int64(hdr[4])<<24 | int64(hdr[5])<<16 | int64(hdr[6])<<8 | int64(hdr[7])
		if _, err := io.CopyN(w, br, n); err != nil {
			return err
		}
	}
}
