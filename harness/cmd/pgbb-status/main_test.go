package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/status"
)

// alive is a machine "db1" on which pid 1234 is pg_basebackup, started at
// the start time of inProgress.
type alive struct{}

func (alive) Hostname() (string, error) { return "db1", nil }
func (alive) Process(pid int) (status.ProcessInfo, error) {
	if pid != 1234 {
		return status.ProcessInfo{}, nil
	}
	return status.ProcessInfo{Exists: true, Name: status.WriterName, StartTime: time.Date(2026, 11, 25, 9, 18, 0, 0, time.UTC)}, nil
}

func statusOf(state status.State, sync bool) *status.Status {
	s := &status.Status{
		Version: 1, State: state, StartTime: time.Date(2026, 11, 25, 9, 18, 0, 0, time.UTC),
		PID: 1234, Host: "db1", Label: "nightly", ProgramVersion: "pg_basebackup (PostgreSQL) 18.6",
		Format: "plain", WALMethod: "stream", Sync: sync,
		Started: true, StartLSN: 0x2000028, Timeline: 1, SystemID: 7441234567890123456,
	}
	switch state {
	case status.StateCompleted:
		s.EndLSN, s.EndTime, s.Durable = 0x2000100, s.StartTime.Add(time.Minute), sync
	case status.StateFailed:
		s.EndTime, s.Reason = s.StartTime.Add(time.Minute), "error while syncing the backup to disk"
	}
	return s
}

// statusFile returns the path of a status file holding data, in a
// directory of its own, as --status-file puts it outside the backup; with
// nil data the file does not exist.
func statusFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b1.status")
	if data != nil {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb, status.WithProcesses(alive{}))
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		code int
		want string
	}{
		{"completed", statusOf(status.StateCompleted, true).Encode(), 0, "completed and durable"},
		{"not durable", statusOf(status.StateCompleted, false).Encode(), 4, "not durable"},
		{"failed", statusOf(status.StateFailed, true).Encode(), 2, "failed: error while syncing the backup to disk"},
		{"running", statusOf(status.StateInProgress, true).Encode(), 3, "still running"},
		{"torn", statusOf(status.StateCompleted, true).Encode()[:200], 1, "cannot be used"},
		{"no status file", nil, 1, "no status file: the run has not written it yet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := statusFile(t, tc.data)
			code, out, _ := runCmd(t, path)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d; output:\n%s\nwant it to contain %q", code, tc.code, out, tc.want)
			}
			code, out, _ = runCmd(t, "--json", path)
			var r map[string]any
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("--json: %v\n%s", err, out)
			}
			if code != tc.code || r["exit_code"] != float64(tc.code) {
				t.Errorf("--json: exit %d, exit_code %v, want %d", code, r["exit_code"], tc.code)
			}
		})
	}
}

func TestDead(t *testing.T) {
	s := statusOf(status.StateInProgress, true)
	s.PID = 999
	code, out, _ := runCmd(t, statusFile(t, s.Encode()))
	if code != 1 || !strings.Contains(out, "pid 999 is gone") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestDirectory: a directory where the status file is wanted is a usage
// error (64), with --wait and --remove-if-dead too, even if it holds a
// file named as the status file once was in a backup directory.
func TestDirectory(t *testing.T) {
	path := statusFile(t, statusOf(status.StateCompleted, true).Encode())
	dir := filepath.Dir(path)
	if err := os.WriteFile(filepath.Join(dir, status.FileName), statusOf(status.StateCompleted, true).Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{dir}, {"--json", dir}, {"--wait", "--timeout", "1h", dir}, {"--remove-if-dead", dir}, {"--dry-run", "--json", "--remove-if-dead", dir}} {
		code, out, errs := runCmd(t, args...)
		want := "pgbb-status: " + dir + " is a directory: give the status file that pg_basebackup wrote with --status-file\n"
		if code != exitUsage || out != "" || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "usage: pgbb-status") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, path, "--json")
	if code != 0 || !strings.Contains(out, `"verdict": "completed"`) || !strings.Contains(out, `"status_file": "`+path+`"`) {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestUsage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b1.status")
	for _, args := range [][]string{
		nil,
		{file, file},
		{"--bogus", file},
		{"--timeout", "1s", file},
		{"--interval", "1s", file},
		{"--wait", "--interval", "0s", file},
		{"--wait", "--timeout", "-1s", file},
		{"--wait", "--timeout", "soon", file},
		{""},
		{"-h"},
		{"--help"},
	} {
		code, out, errs := runCmd(t, args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, "usage: pgbb-status") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	// An option after --remove-if-dead is taken for its FILE: say so,
	// rather than that FILE is one path too many.
	code, _, errs := runCmd(t, "--remove-if-dead", "--dry-run", file)
	if code != exitUsage || !strings.Contains(errs, "put the other options first (--dry-run --remove-if-dead FILE)") {
		t.Errorf("--remove-if-dead --dry-run FILE: exit %d, stderr %q", code, errs)
	}
}

func TestWaitTimeout(t *testing.T) {
	path := statusFile(t, statusOf(status.StateInProgress, true).Encode())
	start := time.Now()
	code, out, _ := runCmd(t, path, "--wait", "--timeout", "100ms", "--interval", "10ms")
	if code != 3 || !strings.Contains(out, "gave up waiting") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	code, out, _ = runCmd(t, "--json", "--wait", "--timeout=50ms", "--interval=10ms", statusFile(t, nil))
	if code != 1 || !strings.Contains(out, `"timed_out": true`) {
		t.Errorf("no status file: exit %d:\n%s", code, out)
	}
}

func TestWaitUntilFinal(t *testing.T) {
	path := statusFile(t, statusOf(status.StateInProgress, true).Encode())
	go func() {
		time.Sleep(50 * time.Millisecond)
		tmp := status.TempPath(path, 1234)
		if err := os.WriteFile(tmp, statusOf(status.StateFailed, true).Encode(), 0o644); err != nil {
			t.Error(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Error(err)
		}
	}()
	code, out, _ := runCmd(t, "--wait", "--timeout", "20s", "--interval", "10ms", path)
	if code != 2 || strings.Contains(out, "gave up") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestUnknownKeys: a file with lines of keys this reader does not know is
// judged by the others; the report notes the keys, in JSON too.
func TestUnknownKeys(t *testing.T) {
	data := statusOf(status.StateCompleted, true).Encode()
	body := strings.Replace(string(data[:len(data)-len("CHECKSUM: 12345678\n")]), "SYNC: on\n", "SYNC: on\nCOMPRESSION: gzip\n", 1)
	data = fmt.Appendf([]byte(body), "CHECKSUM: %08X\n", crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)))
	path := statusFile(t, data)
	code, out, _ := runCmd(t, path)
	if code != 0 || !strings.Contains(out, "note         ignored the lines of keys this reader does not know (a later pg_basebackup added them): COMPRESSION\n") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	code, out, _ = runCmd(t, "--json", path)
	if code != 0 || !strings.Contains(out, `"unknown_keys": [`) {
		t.Errorf("--json: exit %d:\n%s", code, out)
	}
}

// TestRunPID: a scheduler's run killed before its first write leaves the
// earlier run's "completed" in place; judged with --pid (the run the
// scheduler started), that file is not complete.
func TestRunPID(t *testing.T) {
	s := statusOf(status.StateCompleted, true)
	path := statusFile(t, s.Encode())
	code, out, _ := runCmd(t, "--pid", strconv.Itoa(s.PID+1), path)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("another run's (PID %d, STATUS completed)", s.PID)) {
		t.Errorf("--pid of another run: exit %d, want 1:\n%s", code, out)
	}
	code, out, _ = runCmd(t, "--json", "--pid", strconv.Itoa(s.PID+1), path)
	if code != 1 || !strings.Contains(out, fmt.Sprintf(`"other_run": %d`, s.PID)) {
		t.Errorf("--json --pid of another run: exit %d, want 1 and other_run:\n%s", code, out)
	}
	if code, out, _ := runCmd(t, "--pid", strconv.Itoa(s.PID), path); code != 0 {
		t.Errorf("--pid of the run that wrote it: exit %d, want 0:\n%s", code, out)
	}
	for _, bad := range [][]string{{"--pid", "0", path}, {"--pid", "-3", path}, {"--pid", "7", "--remove-if-dead", path}} {
		if code, _, _ := runCmd(t, bad...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", bad, code, exitUsage)
		}
	}
}

// TestHelpLayout: -h lays its flags out as the flag package does, with
// real tabs; the escaping of what it prints (the arguments given) keeps
// them.
func TestHelpLayout(t *testing.T) {
	_, _, errs := runCmd(t, "-h")
	if strings.Contains(errs, `\t`) || !strings.Contains(errs, "\n    \tprint the report as JSON") {
		t.Errorf("-h output:\n%s", errs)
	}
}
