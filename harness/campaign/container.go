package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

// BuildAgent builds pgbb-agent from the repository at root into dir and
// returns its path.
func BuildAgent(ctx context.Context, root, dir string) (string, error) {
	return BuildTool(ctx, root, dir, "pgbb-agent")
}

// BuildTool builds the command harness/cmd/NAME statically (CGO_ENABLED=0)
// from the repository at root into dir and returns its path.
func BuildTool(ctx context.Context, root, dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./harness/cmd/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if data, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", name, err, data)
	}
	return out, nil
}

// agentLogs passes the agent's stdout to ReadAgent and its stderr (the
// campaign's progress) to the log.
type agentLogs struct {
	stdout *io.PipeWriter
	stderr io.Writer
}

func (a agentLogs) Accept(l testcontainers.Log) {
	if l.LogType == testcontainers.StderrLog {
		if a.stderr != nil {
			a.stderr.Write(l.Content)
		}
		return
	}
	a.stdout.Write(l.Content)
}

// containerShmSize is the size of the agent container's /dev/shm.
const containerShmSize = 4 << 30

// Paths of the programs RunContainer copies into the agent's container.
const (
	containerAgent  = "/tmp/pgbb-agent"
	containerJob    = "/tmp/pgbb-job.json"
	containerReader = "/tmp/pgbb-status"
)

// RunContainer runs the campaign of job inside one container from image
// (the container build, which has the installation and its
// build tree), by copying the agent binary in and starting it as the
// image's user. When reader is set (a pgbb-status built by BuildTool), it
// is copied in too and the job's ReaderBin names it there. Records arrive
// as the agent writes them. The container is removed in every case, also
// when ctx is cancelled.
func RunContainer(ctx context.Context, image, agent, reader string, job Job, onRecord func(*trial.Record), log io.Writer) (res *Result, err error) {
	build.DisableRyuk()
	res = &Result{Skipped: map[string]int{}}
	start := time.Now()
	pr, pw := io.Pipe()
	req, err := agentRequest(image, agent, reader, job, agentLogs{pw, log})
	if err != nil {
		return res, err
	}
	type readResult struct {
		done *AgentDone
		err  error
	}
	read := make(chan readResult, 1)
	go func() {
		d, err := ReadAgent(pr, func(r *trial.Record) {
			res.Records = append(res.Records, r)
			if onRecord != nil {
				onRecord(r)
			}
		}, log)
		io.Copy(io.Discard, pr)
		read <- readResult{d, err}
	}()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	defer func() {
		if c != nil {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if terr := testcontainers.TerminateContainer(c, testcontainers.StopContext(tctx), testcontainers.StopTimeout(5*time.Second)); terr != nil && err == nil {
				err = fmt.Errorf("remove agent container: %w", terr)
			}
		}
		pw.Close()
		res.Elapsed = time.Since(start)
	}()
	if err != nil {
		return res, fmt.Errorf("start agent container from %s: %w", image, err)
	}
	for {
		st, serr := c.State(ctx)
		if serr != nil {
			return res, fmt.Errorf("agent container: %w", serr)
		}
		if !st.Running {
			break
		}
		select {
		case <-ctx.Done():
			pw.Close()
			select {
			case <-read:
			case <-time.After(5 * time.Second):
			}
			return res, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Let the log consumer deliver the last lines.
	time.Sleep(time.Second)
	pw.Close()
	var rr readResult
	select {
	case rr = <-read:
	case <-time.After(30 * time.Second):
		return res, fmt.Errorf("agent container: output did not end")
	}
	if rr.err != nil {
		return res, rr.err
	}
	for k, v := range rr.done.Skipped {
		res.Skipped[k] = v
	}
	res.Dropped = rr.done.Dropped
	if rr.done.Error != "" {
		return res, fmt.Errorf("agent: %s", strings.TrimSpace(rr.done.Error))
	}
	return res, nil
}

// agentRequest is the container that runs the agent with job in image,
// with the reader when set (the job then names it), its output going to
// logs.
func agentRequest(image, agent, reader string, job Job, logs testcontainers.LogConsumer) (testcontainers.ContainerRequest, error) {
	if reader != "" {
		job.ReaderBin = containerReader
	}
	jobData, err := json.Marshal(job)
	if err != nil {
		return testcontainers.ContainerRequest{}, fmt.Errorf("agent job: %w", err)
	}
	files := []testcontainers.ContainerFile{
		{HostFilePath: agent, ContainerFilePath: containerAgent, FileMode: 0o755},
		{Reader: bytes.NewReader(jobData), ContainerFilePath: containerJob, FileMode: 0o644},
	}
	if reader != "" {
		// Mode 0755: the agent runs it as another user too.
		files = append(files, testcontainers.ContainerFile{HostFilePath: reader, ContainerFilePath: containerReader, FileMode: 0o755})
	}
	_, err = os.Stat("/dev/fuse")
	priv := containerPrivileges(job.Scenarios, reader != "", err == nil)
	return testcontainers.ContainerRequest{
		Image: image,
		Cmd:   []string{containerAgent, "-job", containerJob},
		Files: files,
		// The agent runs as root, as the native campaign does: it mounts
		// the power-loss layer (FUSE) and runs PostgreSQL as the image's
		// user.
		ConfigModifier: func(c *container.Config) { c.User = "root" },
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.CapAdd = append(hc.CapAdd, priv.caps...)
			hc.SecurityOpt = append(hc.SecurityOpt, priv.securityOpt...)
			if priv.fuse {
				hc.Resources.Devices = append(hc.Resources.Devices, container.DeviceMapping{
					PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"})
			}
			// Room for the scratch directory in /dev/shm (MakeScratch);
			// memory is only taken as it is used.
			hc.ShmSize = containerShmSize
			if job.Scratch != "" {
				hc.Binds = append(hc.Binds, job.Scratch+":"+job.Scratch)
			}
		},
		LogConsumerCfg: &testcontainers.LogConsumerConfig{
			Consumers: []testcontainers.LogConsumer{logs},
		},
	}, nil
}

// privileges is what the agent's container gets beyond Docker's
// defaults.
type privileges struct {
	caps, securityOpt []string
	// fuse: the host's /dev/fuse is passed in.
	fuse bool
}

// containerPrivileges returns what a job needs: ptrace of the agent's own
// children (kill-syscall) always; /dev/fuse for plans on the power-loss
// layer, when the host has it (hostFUSE); and for those, or for the
// stop plan's reader (reader: it runs in a new PID and mount namespace
// with a /proc of its own, unshare --pid --mount-proc), the capability
// to unshare and mount (the default seccomp profile then allows both)
// and no AppArmor profile that forbids mounting. With SYS_ADMIN and no
// AppArmor profile the container is no security boundary: a job that
// needs neither does not get them.
func containerPrivileges(scs []scenario.Scenario, reader, hostFUSE bool) privileges {
	p := privileges{caps: []string{"SYS_PTRACE"}}
	p.fuse = hostFUSE && slices.ContainsFunc(scs, func(s scenario.Scenario) bool {
		return slices.ContainsFunc(s.Faults, scenario.IsDiskPlan)
	})
	if p.fuse || reader {
		p.caps = append(p.caps, "SYS_ADMIN")
		p.securityOpt = []string{"apparmor:unconfined"}
	}
	return p
}
