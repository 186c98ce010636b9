// Package proctest gives tests processes to look at: stand-ins for the
// programs the harness watches (pg_basebackup above all) that only sleep.
package proctest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Sleeper returns a copy of sleep(1) named name in a temporary directory
// of t: started, it is a process of that name (in /proc/PID/comm and
// /proc/PID/exe) that does nothing.
func Sleeper(t testing.TB, name string) string {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep(1), which stands in for %s: %v", name, err)
	}
	bin := filepath.Join(t.TempDir(), name)
	in, err := os.Open(sleep)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// StartSleeper starts Sleeper(t, name) with args in dir (the working
// directory when empty) and kills it when t ends, continuing it first in
// case the test stopped it.
func StartSleeper(t testing.TB, name, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Sleeper(t, name), args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}
