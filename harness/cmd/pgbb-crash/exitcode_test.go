package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/build"
)

// fakeGo stands in for the go command in the Makefile's recipes: "go build
// -o OUT PKG" writes, as OUT, a pgbb-crash that exits $FAKE_CRASH_EXIT, or
// fails like a compile error when $FAKE_BUILD_FAILS is set.
const fakeGo = `#!/bin/sh
[ "$1" = build ] && [ "$2" = -o ] || { echo "fake go: unexpected $*" >&2; exit 3; }
if [ -n "$FAKE_BUILD_FAILS" ]; then echo "fake go: compile error" >&2; exit 1; fi
mkdir -p "$(dirname "$3")"
printf '#!/bin/sh\nexit %s\n' "$FAKE_CRASH_EXIT" >"$3"
chmod +x "$3"
`

// TestCIExitCodes runs the real Makefile recipes of crash and crash-merge
// with a fake pgbb-crash: make exits 2 whatever failed, .ci/crash exits
// pgbb-crash's own code, and 2 when pgbb-crash never ran.
func TestCIExitCodes(t *testing.T) {
	root, err := build.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"make", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	tmp := t.TempDir()
	goPath := filepath.Join(tmp, "go")
	if err := os.WriteFile(goPath, []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	vars := []string{"GO=" + goPath, "PGBB_CACHE=" + filepath.Join(tmp, "cache"), "MERGE=a,b"}
	run := func(env []string, name string, args ...string) int {
		t.Helper()
		cmd := exec.Command(name, append(args, vars...)...)
		cmd.Dir = root
		// Not the variables of a make that runs this test (make test).
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "MAKE") && !strings.HasPrefix(kv, "MFLAGS=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		t.Logf("%s %s: exit %d\n%s", name, strings.Join(args, " "), cmd.ProcessState.ExitCode(), out)
		return cmd.ProcessState.ExitCode()
	}
	for _, target := range []string{"crash", "crash-merge"} {
		for _, code := range []string{"0", "1", "2"} {
			env := []string{"FAKE_CRASH_EXIT=" + code}
			if got := run(env, "./.ci/crash", target); got != int(code[0]-'0') {
				t.Errorf(".ci/crash %s, pgbb-crash exiting %s: exit %d", target, code, got)
			}
			want := 0
			if code != "0" {
				want = 2
			}
			if got := run(env, "make", "-s", target); got != want {
				t.Errorf("make %s, pgbb-crash exiting %s: exit %d, want %d", target, code, got, want)
			}
		}
		if got := run([]string{"FAKE_CRASH_EXIT=0", "FAKE_BUILD_FAILS=1"}, "./.ci/crash", target); got != 2 {
			t.Errorf(".ci/crash %s, pgbb-crash not built: exit %d, want 2", target, got)
		}
	}
	// With no target named, .ci/crash runs crash.
	if got := run([]string{"FAKE_CRASH_EXIT=1"}, "./.ci/crash"); got != 1 {
		t.Errorf(".ci/crash, pgbb-crash exiting 1: exit %d", got)
	}
}
