// Package proc starts and inspects the processes of the crash harness:
// commands run as the unprivileged PostgreSQL account in their own process
// group, and the process-tree queries that fault injection and clean-up
// need (children of a process, members of a process group).
package proc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/osuser"
)

// Command returns a command that runs args as acct in its own process
// group; cancelling ctx kills the whole group.
func Command(ctx context.Context, acct osuser.Account, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = acct.Env(env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: acct.Credential()}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs args as acct and returns the combined output; a failure is an
// error that carries the command and the output's tail.
func Run(ctx context.Context, acct osuser.Account, env []string, args ...string) (string, error) {
	cmd := Command(ctx, acct, env, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			return out.String(), fmt.Errorf("%s: %w", filepath.Base(args[0]), ctx.Err())
		}
		return out.String(), fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, Tail(out.String(), 15))
	}
	return out.String(), nil
}

// RunJSON runs args as acct with env, decodes its standard output as JSON
// into v and returns its exit code: a non-zero exit is no error (programs
// such as pgbb-status report through their exit code and their JSON), a
// command that could not run, or whose output is not JSON, is.
func RunJSON(ctx context.Context, acct osuser.Account, env []string, v any, args ...string) (int, error) {
	code, err := OutputJSON(Command(ctx, acct, env, args...), v)
	if err != nil {
		return code, fmt.Errorf("as %s: %w", acct.Name, err)
	}
	return code, nil
}

// OutputJSON runs cmd, decodes its standard output as JSON into v and
// returns its exit code: a non-zero exit is no error, a command that could
// not run, or whose output is not JSON, is (with its output and standard
// error).
func OutputJSON(cmd *exec.Cmd, v any) (int, error) {
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		return 0, fmt.Errorf("%s: %w", filepath.Base(cmd.Args[0]), err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		stderr := ""
		if exit != nil {
			stderr = strings.TrimSpace(string(exit.Stderr))
		}
		return code, fmt.Errorf("%s: exit %d, output not JSON (%v): %s %s", strings.Join(cmd.Args, " "), code, err, out, stderr)
	}
	return code, nil
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Children returns the pids of pid's child processes.
func Children(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// GroupMembers returns the live processes (zombies excluded) whose process
// group is pgid.
func GroupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// KillGroup sends SIGKILL to process group pgid and waits up to timeout
// for every member to be gone; it returns the members that were alive
// when it was called.
func KillGroup(pgid int, timeout time.Duration) ([]int, error) {
	alive := GroupMembers(pgid)
	if len(alive) == 0 {
		return nil, nil
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return alive, fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	deadline := time.Now().Add(timeout)
	for len(GroupMembers(pgid)) > 0 {
		if time.Now().After(deadline) {
			return alive, fmt.Errorf("process group %d still alive %s after SIGKILL", pgid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return alive, nil
}
