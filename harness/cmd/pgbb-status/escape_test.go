package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgbb/pgbb/harness/status"
)

// evilName holds what a hostile user may put into a name: terminal
// escapes, C1 controls, a bidirectional override and a newline followed
// by a line of the command's own.
const evilName = "x\x1b[2J\u009b1m\u0085\u202enoitcurtsed\nexit 0 (removed)"

// checkEscaped fails unless out holds none of evilName's controls raw
// and its only line starting "exit " is the last.
func checkEscaped(t *testing.T, what, out string) {
	t.Helper()
	for _, raw := range []string{"\x1b", "\u009b", "\u0085", "\u202e"} {
		if strings.Contains(out, raw) {
			t.Errorf("%s: the output holds %q raw:\n%q", what, raw, out)
		}
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines[:len(lines)-1] {
		if strings.HasPrefix(l, "exit ") {
			t.Errorf("%s: a line of the input reads as the command's own: %q in\n%s", what, l, out)
		}
	}
}

// TestTextEscapedPaths: a status file path with escapes, in a report
// and in its error.
func TestTextEscapedPaths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), evilName)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "b1.status")
	if err := os.WriteFile(file, statusOf(status.StateCompleted, true).Encode()[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, file)
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	checkEscaped(t, "torn file", out)
	if !strings.Contains(out, `x\x1b[2J\u009b1m\u0085\u202enoitcurtsed\nexit 0 (removed)`) {
		t.Errorf("the path is not shown escaped:\n%s", out)
	}
	os.Remove(file)
	code, out, _ = runCmd(t, "--wait", "--timeout", "10ms", "--interval", "5ms", file)
	if code != 1 {
		t.Errorf("missing: exit %d", code)
	}
	checkEscaped(t, "missing file", out)
}

// usedBy is db1 without pid 1234, where a process with a hostile name
// has its working directory in the backup.
type usedBy struct{ machine }

func (usedBy) DirUsers(dirs []string, _ map[status.FileID]bool, _ int) ([]status.DirUser, error) {
	return []status.DirUser{{PID: 77, Name: "pg" + evilName, Why: "working directory " + filepath.Join(dirs[0], evilName)}}, nil
}

// TestTextEscapedRemoval: names of entries in a recorded directory and
// what /proc says of processes, in the refusals of --remove-if-dead.
func TestTextEscapedRemoval(t *testing.T) {
	root := t.TempDir()
	dir, file := filepath.Join(root, "b1"), filepath.Join(root, "b1.status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, progressing(dir).Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runWith(t, []status.Option{status.WithProcesses(usedBy{machine{gone: true}})}, "--remove-if-dead", file)
	if code != status.ExitRefused || !strings.Contains(out, "may still write") {
		t.Errorf("a process in the directory: exit %d:\n%s", code, out)
	}
	checkEscaped(t, "process in the directory", out)

	if err := syscall.Mkfifo(filepath.Join(dir, evilName), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	code, out, _ = runWith(t, []status.Option{status.WithProcesses(machine{gone: true})}, "--dry-run", "--remove-if-dead", file)
	if code != status.ExitRefused || !strings.Contains(out, "named pipe") {
		t.Errorf("a FIFO: exit %d:\n%s", code, out)
	}
	checkEscaped(t, "FIFO", out)
}
