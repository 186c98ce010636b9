package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultBuildUser is the unprivileged user that builds, runs servers and
// TAP tests when the harness runs as root (PostgreSQL refuses root).
const DefaultBuildUser = "pgbb"

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

// Account is the user that owns a native build and runs its programs.
type Account struct {
	// Name is the login name.
	Name string
	// UID and GID are the numeric ids.
	UID, GID uint32
	// Home is the home directory.
	Home string
	// Switch says whether processes must switch to this user (the harness
	// runs as root); when false they run as the harness's own user.
	Switch bool
}

// DefaultReaderUser is the OS user that judges status files: not the one
// that runs pg_basebackup, but in its group, as an orchestrator's account
// often is (the source is initialised with group access, so pg_basebackup
// makes its files group-readable).
const DefaultReaderUser = "pgbbreader"

// EnsureReader returns the account named name, created with useradd in
// owner's primary group when it does not exist. Unless the harness runs as
// root, it can switch to no one: the reader is then the owner itself,
// which the result's Name says.
func EnsureReader(ctx context.Context, owner Account, name string) (Account, error) {
	if os.Geteuid() != 0 || !owner.Switch {
		return owner, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		group := strconv.FormatUint(uint64(owner.GID), 10)
		out, err := exec.CommandContext(ctx, "useradd", "--no-create-home", "--gid", group,
			"--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err != nil {
			return Account{}, fmt.Errorf("create reader user %s: useradd: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup(name); err != nil {
			return Account{}, fmt.Errorf("create reader user %s: %w", name, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("reader user %s: uid %q: %w", name, u.Uid, err)
	}
	if uint32(uid) == owner.UID || uid == 0 {
		return Account{}, fmt.Errorf("reader user %s has uid %d: want another user than %s, and not root", name, uid, owner.Name)
	}
	// The owner's group, whatever the user's own: that is what lets it
	// read the status file.
	return Account{Name: u.Username, UID: uint32(uid), GID: owner.GID, Home: "/", Switch: true}, nil
}

// Credential returns the credential to start a process as the account, or
// nil when no switch is needed.
func (a Account) Credential() *syscall.Credential {
	if !a.Switch {
		return nil
	}
	return &syscall.Credential{Uid: a.UID, Gid: a.GID, Groups: []uint32{}}
}

// EnsureAccount returns the account to build and run PostgreSQL as. When
// running as root that is the unprivileged user name, created with useradd
// when it does not exist; otherwise it is the current user.
func EnsureAccount(ctx context.Context, name string, log io.Writer) (Account, error) {
	l := &logger{log}
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return Account{}, fmt.Errorf("current user: %w", err)
		}
		return accountOf(u, false)
	}
	if name == "" {
		name = DefaultBuildUser
	}
	u, err := user.Lookup(name)
	if err != nil {
		l.logf("running as root: creating unprivileged user %s for builds, servers and TAP tests", name)
		out, cerr := exec.CommandContext(ctx, "useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name).CombinedOutput()
		if cerr != nil {
			return Account{}, fmt.Errorf("create user %s: useradd: %w: %s", name, cerr, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup(name); err != nil {
			return Account{}, fmt.Errorf("create user %s: %w", name, err)
		}
	}
	a, err := accountOf(u, true)
	if err != nil {
		return Account{}, err
	}
	if a.UID == 0 {
		return Account{}, fmt.Errorf("build user %s is root; PostgreSQL needs an unprivileged user", name)
	}
	return a, nil
}

func accountOf(u *user.User, sw bool) (Account, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	return Account{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir, Switch: sw}, nil
}

// CheckReachable fails when the account cannot reach dir: every ancestor
// must be searchable by it (others' x bit, or its own or its group's).
func (a Account) CheckReachable(dir string) error {
	if !a.Switch {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check %s: %w", p, err)
		}
		sys, _ := st.Sys().(*syscall.Stat_t)
		m := st.Mode().Perm()
		ok := m&0o001 != 0 ||
			(sys != nil && sys.Uid == a.UID && m&0o100 != 0) ||
			(sys != nil && sys.Gid == a.GID && m&0o010 != 0)
		if !ok {
			return fmt.Errorf("build user %s cannot reach %s: %s is mode %v; set PGBB_CACHE to a directory it can reach (for example /var/tmp/pgbb)", a.Name, dir, p, m)
		}
		if p == "/" {
			return nil
		}
	}
}

// MkdirAll creates dir and its missing parents with perm (as os.MkdirAll)
// and gives dir itself to the account (no chown without a switch).
func (a Account) MkdirAll(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	if a.Switch {
		return os.Chown(dir, int(a.UID), int(a.GID))
	}
	return nil
}

// chownTree gives a directory tree to the account (no-op without a switch).
func (a Account) chownTree(dir string) error {
	if !a.Switch {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(a.UID), int(a.GID))
	})
}

// Env returns a minimal environment for processes run as the account.
func (a Account) Env(extra ...string) []string {
	home := a.Home
	if st, err := os.Stat(home); err != nil || !st.IsDir() {
		home = os.TempDir()
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"USER=" + a.Name,
		"LOGNAME=" + a.Name,
		"LANG=C.UTF-8",
		"TMPDIR=" + os.TempDir(),
	}
	return append(env, extra...)
}

// runAs runs a command as the account in dir, its output going to out.
// Cancelling ctx kills the whole process group (make and its children).
func runAs(ctx context.Context, a Account, dir string, out io.Writer, env []string, args ...string) error {
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
