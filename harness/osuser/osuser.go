// Package osuser is the unprivileged OS account that owns PostgreSQL's
// builds, servers and backups when the harness runs as root (PostgreSQL
// refuses to run as root), and the other account that reads status files
// as an orchestrator would. Without root, both are the current user.
package osuser

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultBuildUser is the unprivileged user that builds, runs servers and
// TAP tests when the harness runs as root.
const DefaultBuildUser = "pgbb"

// DefaultReaderUser is the OS user that judges status files: not the one
// that runs pg_basebackup, but in its group, as an orchestrator's account
// often is (the source is initialised with group access, so pg_basebackup
// makes its files group-readable).
const DefaultReaderUser = "pgbbreader"

// Account is a user that owns files and runs programs.
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

// Ensure returns the account to build and run PostgreSQL as. When running
// as root that is the unprivileged user name (DefaultBuildUser when
// empty), created with useradd when it does not exist, which is said on
// log; otherwise it is the current user.
func Ensure(ctx context.Context, name string, log io.Writer) (Account, error) {
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
		if log != nil {
			fmt.Fprintf(log, "pgbb: running as root: creating unprivileged user %s for builds, servers and TAP tests\n", name)
		}
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

// Credential returns the credential to start a process as the account, or
// nil when no switch is needed.
func (a Account) Credential() *syscall.Credential {
	if !a.Switch {
		return nil
	}
	return &syscall.Credential{Uid: a.UID, Gid: a.GID, Groups: []uint32{}}
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

// Chown gives path (not what a symbolic link points to) to the account;
// nothing without a switch.
func (a Account) Chown(path string) error {
	if !a.Switch {
		return nil
	}
	return os.Lchown(path, int(a.UID), int(a.GID))
}

// MkdirAll creates dir and its missing parents with perm (as os.MkdirAll)
// and gives dir itself to the account.
func (a Account) MkdirAll(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	return a.Chown(dir)
}

// WriteFile writes data to a new or truncated file at path with perm (as
// os.WriteFile, then chmod, so that the umask does not narrow it) and gives
// it to the account.
func (a Account) WriteFile(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(path, perm); err != nil {
		return err
	}
	return a.Chown(path)
}

// ChownTree gives a directory tree to the account.
func (a Account) ChownTree(dir string) error {
	if !a.Switch {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return a.Chown(p)
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
