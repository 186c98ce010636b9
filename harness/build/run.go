package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/osuser"
)

// logger prefixes the harness's own lines.
type logger struct{ w io.Writer }

func (l *logger) logf(format string, args ...any) {
	if l != nil && l.w != nil {
		fmt.Fprintf(l.w, "pgbb: "+format+"\n", args...)
	}
}

func (l *logger) writer() io.Writer {
	if l == nil || l.w == nil {
		return io.Discard
	}
	return l.w
}

// runAs runs a command as the account in dir, its output going to out.
// Cancelling ctx kills the whole process group (make and its children).
func runAs(ctx context.Context, a osuser.Account, dir string, out io.Writer, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: a.Credential()}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", strings.Join(args, " "), ctx.Err())
		}
		return fmt.Errorf("%s (in %s, as %s): %w", strings.Join(args, " "), dir, a.Name, err)
	}
	return nil
}

// progressInterval is how often a long build step says it is still going.
var progressInterval = 30 * time.Second

// stepProgress counts the lines a build step writes and, every
// progressInterval, logs the step's elapsed time and line count, so that
// minutes of compiling are not minutes of silence.
type stepProgress struct {
	w     io.Writer
	lines atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

// progress starts reporting on the step named name, whose output goes to
// out; call done when the step ends.
func (l *logger) progress(name string, out io.Writer) *stepProgress {
	p := &stepProgress{stop: make(chan struct{})}
	p.w = lineCounter{out, &p.lines}
	start := time.Now()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				l.logf("  ... %s: %s so far, %d lines of output", name, time.Since(start).Round(time.Second), p.lines.Load())
			}
		}
	}()
	return p
}

// done stops the reports.
func (p *stepProgress) done() {
	close(p.stop)
	p.wg.Wait()
}

// lineCounter passes writes to w and counts their newlines.
type lineCounter struct {
	w io.Writer
	n *atomic.Int64
}

func (c lineCounter) Write(b []byte) (int, error) {
	c.n.Add(int64(bytes.Count(b, []byte{'\n'})))
	return c.w.Write(b)
}
