package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/status"
)

// machine is host db1 on which pid 1234 is pg_basebackup (stopped or not)
// or gone; nobody uses any directory.
type machine struct {
	gone, stopped bool
}

func (machine) Hostname() (string, error) { return "db1", nil }
func (m machine) Process(pid int) (status.ProcessInfo, error) {
	if pid != 1234 || m.gone {
		return status.ProcessInfo{}, nil
	}
	return status.ProcessInfo{Exists: true, Name: status.WriterName, Stopped: m.stopped,
		StartTime: time.Date(2026, 11, 25, 9, 18, 0, 0, time.UTC)}, nil
}
func (machine) DirUsers([]string, map[status.FileID]bool, int) ([]status.DirUser, error) {
	return nil, nil
}

// progressing is an "in progress" file with progress lines recording dir.
func progressing(dir string) *status.Status {
	s := statusOf(status.StateInProgress, true)
	s.Progress, s.UpdateInterval = true, 5
	s.Directories = []status.Directory{{Path: dir, Created: true}}
	s.Phase, s.UpdateTime = status.PhaseReceiving, s.StartTime.Add(100*time.Second)
	s.BytesReceived, s.BytesTotal = 1000_000, 4000_000
	return s
}

func runWith(t *testing.T, opts []status.Option, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb, opts...)
	return code, out.String(), errb.String()
}

func clock(t time.Time) status.Option { return status.WithClock(func() time.Time { return t }) }

func TestProgressAndStalled(t *testing.T) {
	dir := t.TempDir()
	s := progressing(dir)
	path := statusFile(t, s.Encode())
	fresh := clock(s.UpdateTime.Add(2 * time.Second))
	code, out, _ := runWith(t, []status.Option{status.WithProcesses(machine{}), fresh}, path)
	for _, want := range []string{
		"still running",
		"receiving data, updated 2026-11-25 09:19:40 UTC, 2s ago (every 5s)",
		"1000000 of 4000000 bytes (25.0%",
		"10000 bytes/s since START TIME; about 4m58s left",
		"stalled if no update for 15s",
		"exit 3 (running)",
	} {
		if code != 3 || !strings.Contains(out, want) {
			t.Errorf("exit %d, want %q in:\n%s", code, want, out)
		}
	}

	for name, opts := range map[string][]status.Option{
		"old file":        {status.WithProcesses(machine{}), clock(s.UpdateTime.Add(time.Minute))},
		"stopped process": {status.WithProcesses(machine{stopped: true}), fresh},
	} {
		code, out, _ := runWith(t, opts, path)
		if code != 5 || !strings.Contains(out, "alive but stalled") || !strings.Contains(out, "exit 5 (stalled)") {
			t.Errorf("%s: exit %d:\n%s", name, code, out)
		}
		code, out, _ = runWith(t, opts, "--json", path)
		var r struct {
			Verdict  string
			Progress struct{ Stalled bool }
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != 5 || r.Verdict != "stalled" || !r.Progress.Stalled {
			t.Errorf("%s --json: exit %d %+v %v\n%s", name, code, r, err, out)
		}
	}
}

func TestRemoveIfDead(t *testing.T) {
	root := t.TempDir()
	dir, file := filepath.Join(root, "b1"), filepath.Join(root, "b1.status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, progressing(dir).Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The temporary file the dead run (pid 1234) left, and another run's.
	tmp, other := status.TempPath(file, 1234), status.TempPath(file, 4321)
	for _, p := range []string{tmp, other} {
		if err := os.WriteFile(p, []byte("BACKUP STATUS FORMAT: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gone := []status.Option{status.WithProcesses(machine{gone: true})}

	// Alive: refused.
	code, out, _ := runWith(t, []status.Option{status.WithProcesses(machine{})}, "--remove-if-dead", file)
	if code != 1 || !strings.Contains(out, file+": refused, nothing removed: the run is alive") {
		t.Errorf("alive: exit %d:\n%s", code, out)
	}
	// Dry run: the plan, nothing removed.
	code, out, _ = runWith(t, gone, "--dry-run", "--remove-if-dead", file)
	if code != 0 || !strings.Contains(out, "would do:\n  remove "+dir+" (created by the run)\n  remove the temporary file "+tmp+"\n  remove the status file "+file+"\n") ||
		!strings.Contains(out, "dry run: nothing removed") {
		t.Errorf("dry run: exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("dry run removed it: %v", err)
	}
	code, out, _ = runWith(t, gone, "--dry-run", "--json", "--remove-if-dead", file)
	var rm struct {
		StatusFile string `json:"status_file"`
		DryRun     bool   `json:"dry_run"`
		Steps      []status.RemoveStep
	}
	if err := json.Unmarshal([]byte(out), &rm); err != nil || code != 0 || !rm.DryRun || rm.StatusFile != file || len(rm.Steps) != 3 || rm.Steps[0].Done ||
		rm.Steps[1].File != status.StepTempFile || rm.Steps[2].File != status.StepStatusFile {
		t.Errorf("dry run --json: exit %d %+v %v\n%s", code, rm, err, out)
	}
	// For real.
	code, out, _ = runWith(t, gone, "--remove-if-dead", file)
	if code != 0 || !strings.Contains(out, "pid 1234 is gone") || !strings.Contains(out, "removed:\n  remove "+dir) ||
		!strings.Contains(out, "  remove the status file "+file+"\n") || !strings.Contains(out, "exit 0 (removed)") {
		t.Errorf("remove: exit %d:\n%s", code, out)
	}
	for _, p := range []string{dir, tmp, file} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another run's temporary file: %v", err)
	}
	// Nothing there any more: refused.
	code, out, _ = runWith(t, gone, "--remove-if-dead", file)
	if code != 1 || !strings.Contains(out, "refused, nothing removed: no status file "+file) {
		t.Errorf("again: exit %d:\n%s", code, out)
	}
	// Completed: refused, in JSON too.
	done := statusFile(t, statusOf(status.StateCompleted, true).Encode())
	code, out, _ = runWith(t, gone, "--json", "--remove-if-dead", done)
	if code != 1 || !strings.Contains(out, `"refused": "the status file says completed`) {
		t.Errorf("completed: exit %d:\n%s", code, out)
	}
	// A symlink to a status file: refused, naming it.
	link := filepath.Join(root, "link.status")
	if err := os.Symlink(done, link); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runWith(t, gone, "--remove-if-dead", link)
	if code != 1 || !strings.Contains(out, "status file "+link+" is a symlink") {
		t.Errorf("symlink: exit %d:\n%s", code, out)
	}
}

func TestRemoveUsage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b1.status")
	for _, args := range [][]string{
		{"--remove-if-dead", file, file},
		{"--remove-if-dead", ""},
		{"--remove-if-dead"},
		{"--remove-if-dead", file, "--wait"},
		{"--remove-if-dead", file, "--timeout", "1s"},
		{"--remove-if-dead", file, "--lease", "-1s"},
		{"--remove-if-dead", file, "--lease", "soon"},
		{"--remove-if-dead", filepath.Dir(file)},
		{"--lease", "1h", file},
		{"--dry-run", file},
	} {
		code, out, errs := runWith(t, nil, args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, "usage: pgbb-status") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// TestRemoveIfDeadAsRootOverAnotherUsersFile: run as root over the status
// file of an unprivileged backup user that names, on a second DIRECTORY
// line, a directory of root, --remove-if-dead refuses, names the directory
// and its owner, and leaves both directories and the status file as they
// were.
func TestRemoveIfDeadAsRootOverAnotherUsersFile(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("PGBB_INTEGRATION") != "" {
			t.Fatal("must run as root (PGBB_INTEGRATION is set)")
		}
		t.Skip("needs root to make files of another user")
	}
	const backupUser = 4243
	root := t.TempDir()
	if err := os.Chmod(filepath.Dir(root), 0o755); err != nil { // reachable for the backup user
		t.Fatal(err)
	}
	dir, victim := filepath.Join(root, "b1"), filepath.Join(root, "some", "dir")
	file := filepath.Join(root, "status", "b1.status")
	table := filepath.Join(victim, "PG_18_202506291", "5", "16385")
	if err := os.MkdirAll(filepath.Dir(table), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(table, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(victim), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(file)} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := progressing(dir)
	s.Directories = append(s.Directories, status.Directory{Path: victim})
	if err := os.WriteFile(file, s.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, dir, filepath.Dir(file), file} {
		if err := os.Lchown(p, backupUser, backupUser); err != nil {
			t.Fatal(err)
		}
	}
	gone := []status.Option{status.WithProcesses(machine{gone: true})}
	for _, args := range [][]string{{"--dry-run", "--remove-if-dead", file}, {"--remove-if-dead", file}} {
		code, out, _ := runWith(t, gone, args...)
		if code != status.ExitRefused || !strings.Contains(out, victim+" is owned by uid 0") || !strings.Contains(out, "nothing removed") {
			t.Fatalf("%v: exit %d:\n%s", args, code, out)
		}
	}
	if data, err := os.ReadFile(table); err != nil || string(data) != "root's" {
		t.Fatalf("%s: %q %v", table, data, err)
	}
	for _, p := range []string{dir, file} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
}
