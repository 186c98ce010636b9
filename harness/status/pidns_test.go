package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/proc/proctest"
)

// needPIDNamespaces skips the test unless it runs as root on Linux in the
// host's PID namespace with a working unshare; with PGBB_INTEGRATION set,
// it fails instead.
func needPIDNamespaces(t *testing.T) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("PGBB_INTEGRATION") != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if runtime.GOOS != "linux" {
		missing("PID namespaces need Linux")
	}
	if os.Geteuid() != 0 {
		missing("unshare --pid needs root (euid %d)", os.Geteuid())
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err != nil || ns != hostNS {
		missing("the test must run in the host's PID namespace %s: %q %v", hostNS, ns, err)
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		missing("unshare --pid --fork --mount-proc: %v: %s", err, out)
	}
}

// buildStatusCommand builds pgbb-status into a temporary directory.
func buildStatusCommand(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "pgbb-status")
	cmd := exec.Command(goCmd, "build", "-o", bin, "github.com/pgbb/pgbb/harness/cmd/pgbb-status")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build pgbb-status: %v: %s", err, out)
	}
	return bin
}

// jsonReport is what the tests read of pgbb-status --json.
type jsonReport struct {
	Verdict  string `json:"verdict"`
	Final    bool   `json:"final"`
	Summary  string `json:"summary"`
	Liveness struct {
		Certain bool   `json:"certain"`
		Reason  string `json:"reason"`
	} `json:"liveness"`
}

// readInNamespace runs pgbb-status --json file in a new PID namespace with
// its own /proc, and returns its exit code and report.
func readInNamespace(t *testing.T, bin, file string) (int, jsonReport) {
	t.Helper()
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", bin, "--json", file)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("unshare pgbb-status: %v: %s", err, errb.String())
	}
	var r jsonReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("pgbb-status --json in a PID namespace: %v: %s%s", err, out.String(), errb.String())
	}
	return code, r
}

// TestPIDNamespaceReader: a reader in another PID namespace than the
// writer's, on the same host, sees no process with the recorded pid; it
// must say "cannot tell" (exit 1, not final), never "dead", while the writer
// runs and after it was killed, and refuse to remove the directory. The
// reader outside says running, then dead. So for a file that records the
// writer's boot and PID namespace, as the series does on Linux, and for
// one that does not.
func TestPIDNamespaceReader(t *testing.T) {
	needPIDNamespaces(t)
	bin := buildStatusCommand(t)
	for _, tc := range []struct {
		name     string
		identity bool
		reason   string
	}{{"no identity recorded", false, "PID namespace other than the host's"}, {"identity recorded", true, "which is not the host's"}} {
		t.Run(tc.name, func(t *testing.T) {
			writer := fakeWriter(t, "", "60")
			dir := filepath.Join(t.TempDir(), "b1")
			s := liveStatus(t, writer.Process.Pid, dir)
			if tc.identity {
				recordIdentity(t, s, writer.Process.Pid)
			}
			file := statusBeside(t, dir, s)
			if r := Check(file); r.Verdict != Running || !r.Liveness.Certain {
				t.Fatalf("the host's reader: %v (%s)", r.Verdict, r.Summary)
			}
			code, r := readInNamespace(t, bin, file)
			if code != 1 || r.Final || r.Liveness.Certain || !strings.Contains(r.Liveness.Reason, tc.reason) {
				t.Fatalf("live writer, reader in a PID namespace: exit %d final %v: %s", code, r.Final, r.Summary)
			}
			out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", bin, "--remove-if-dead", file).CombinedOutput()
			if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != ExitRefused {
				t.Fatalf("--remove-if-dead in a PID namespace: %v: %s", err, out)
			}
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("a live run's directory was touched: %v", err)
			}

			writer.Process.Kill()
			writer.Wait()
			code, r = readInNamespace(t, bin, file)
			if code != 1 || r.Final || r.Liveness.Certain {
				t.Fatalf("killed writer, reader in a PID namespace: exit %d final %v: %s", code, r.Final, r.Summary)
			}
			if r := Check(file); r.Verdict != NotComplete || !r.Final || !r.Liveness.Certain {
				t.Fatalf("killed writer, the host's reader: %v final %v (%s)", r.Verdict, r.Final, r.Summary)
			}
		})
	}
}

// nestedWriter starts a process named pg_basebackup as pid 1 of a new PID
// namespace and returns its pid on the host, its pid in the namespace, and
// the unshare command that waits for it.
func nestedWriter(t *testing.T) (hostPID, innerPID int, cmd *exec.Cmd) {
	t.Helper()
	bin := proctest.Sleeper(t, WriterName)
	cmd = exec.Command("unshare", "--pid", "--fork", "--mount-proc", bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if hostPID > 0 {
			syscall.Kill(hostPID, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if hostPID, innerPID = childInNamespace(cmd.Process.Pid); innerPID > 0 {
			return hostPID, innerPID, cmd
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s child of unshare (pid %d) with an NSpid of two levels", WriterName, cmd.Process.Pid)
	return 0, 0, nil
}

// childInNamespace finds the pg_basebackup child of parent and its pid in
// the innermost namespace, from /proc/PID/status (Name, PPid, NSpid).
func childInNamespace(parent int) (hostPID, innerPID int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		fields := map[string][]string{}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.Fields(v)
			}
		}
		if len(fields["Name"]) != 1 || fields["Name"][0] != WriterName || len(fields["PPid"]) != 1 ||
			fields["PPid"][0] != strconv.Itoa(parent) || len(fields["NSpid"]) != 2 {
			continue
		}
		inner, err := strconv.Atoi(fields["NSpid"][1])
		if err == nil {
			return pid, inner
		}
	}
	return 0, 0
}

// TestPIDNamespaceWriter: pg_basebackup runs in a PID namespace and records
// its pid there (1); the host's reader finds another process with that pid,
// or none. While the writer runs it must not say dead (it cannot tell which
// is the writer) nor remove the directory; after the writer was killed, it
// says dead.
func TestPIDNamespaceWriter(t *testing.T) {
	needPIDNamespaces(t)
	hostPID, innerPID, cmd := nestedWriter(t)
	dir := filepath.Join(t.TempDir(), "b1")
	s := liveStatus(t, innerPID, dir)
	file := statusBeside(t, dir, s)

	nested, err := Procfs{}.NestedWriters(innerPID)
	if err != nil || len(nested) != 1 || nested[0].PID != hostPID {
		t.Errorf("NestedWriters(%d): %+v %v, want pid %d", innerPID, nested, err, hostPID)
	}
	r := Check(file)
	if r.Verdict != NotComplete || r.Final || r.Liveness.Certain || !strings.Contains(r.Liveness.Reason, "another PID namespace") {
		t.Fatalf("live writer (pid %d here, %d in its namespace): %v final %v (%s)", hostPID, innerPID, r.Verdict, r.Final, r.Summary)
	}
	removeRefusedThenDead(t, file, dir, hostPID, cmd)
}

// recordIdentity records in s what pg_basebackup records on Linux: this
// machine's boot ID and the PID namespace of process pid.
func recordIdentity(t *testing.T, s *Status, pid int) {
	t.Helper()
	boot, err := Procfs{}.BootID()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	s.BootID, s.PIDNamespace = boot, ns
}

// TestPIDNamespaceWriterRecorded: pg_basebackup runs in a PID namespace
// and records its pid there together with that namespace, as the series
// does on Linux. The host's reader finds the writer by namespace and
// namespace-local pid: running while it runs (the directory kept), dead
// once it was killed.
func TestPIDNamespaceWriterRecorded(t *testing.T) {
	needPIDNamespaces(t)
	hostPID, innerPID, cmd := nestedWriter(t)
	dir := filepath.Join(t.TempDir(), "b1")
	s := liveStatus(t, innerPID, dir)
	recordIdentity(t, s, hostPID)
	file := statusBeside(t, dir, s)

	r := Check(file)
	if r.Verdict != Running || !r.Liveness.Certain || !strings.Contains(r.Liveness.Reason, fmt.Sprintf("(pid %d here)", hostPID)) {
		t.Fatalf("live writer (pid %d here, %d in %s): %v final %v (%s)", hostPID, innerPID, s.PIDNamespace, r.Verdict, r.Final, r.Summary)
	}
	removeRefusedThenDead(t, file, dir, hostPID, cmd)
}

// removeRefusedThenDead checks that RemoveIfDead refuses the live run of
// file and keeps its directory dir, then kills the writer (hostPID, waited
// for by cmd) and checks that the run is then certainly dead.
func removeRefusedThenDead(t *testing.T, file, dir string, hostPID int, cmd *exec.Cmd) {
	t.Helper()
	if rm := RemoveIfDead(t.Context(), file, false); rm.ExitCode != ExitRefused {
		t.Fatalf("--remove-if-dead of a live run: exit %d over %q", rm.ExitCode, rm.Over)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a live run's directory was touched: %v", err)
	}
	if err := syscall.Kill(hostPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if r := Check(file); r.Verdict != NotComplete || !r.Final || !r.Liveness.Certain {
		t.Fatalf("killed writer: %v final %v (%s)", r.Verdict, r.Final, r.Summary)
	}
}

// TestPIDNamespaceSameContainer: writer and reader in one PID namespace
// other than the host's, as pg_basebackup and pgbb-status in one
// container: the reader judges the recorded pid there and says running.
func TestPIDNamespaceSameContainer(t *testing.T) {
	needPIDNamespaces(t)
	bin := buildStatusCommand(t)
	hostPID, innerPID, _ := nestedWriter(t)
	dir := filepath.Join(t.TempDir(), "b1")
	s := liveStatus(t, innerPID, dir)
	recordIdentity(t, s, hostPID)
	file := statusBeside(t, dir, s)
	out, err := exec.Command("nsenter", "--target", strconv.Itoa(hostPID), "--pid", "--mount", bin, "--json", file).Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("nsenter pgbb-status: %v", err)
	}
	var r jsonReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("pgbb-status --json in the writer's namespace: %v: %s", err, out)
	}
	if r.Verdict != "running" || !r.Liveness.Certain {
		t.Fatalf("reader in the writer's namespace: %s (%s)", r.Verdict, r.Summary)
	}
}
