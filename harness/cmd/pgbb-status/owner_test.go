package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/status"
)

// completedWith is a completed status file recording dirs.
func completedWith(dirs ...string) *status.Status {
	s := statusOf(status.StateCompleted, true)
	s.Progress, s.UpdateInterval = true, 5
	for i, d := range dirs {
		s.Directories = append(s.Directories, status.Directory{Path: d, Created: i == 0})
	}
	return s
}

// TestReportNamesOwner: the report names the owner of the status file,
// in text and in JSON.
func TestReportNamesOwner(t *testing.T) {
	path := statusFile(t, statusOf(status.StateCompleted, true).Encode())
	uid := os.Geteuid()
	code, out, _ := runCmd(t, path)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("\n  owner        uid %d", uid)) {
		t.Errorf("exit %d, want the owner uid %d named:\n%s", code, uid, out)
	}
	code, out, _ = runCmd(t, "--json", path)
	var r struct {
		Owner *struct {
			UID  *int   `json:"uid"`
			Name string `json:"name"`
		} `json:"owner"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || r.Owner == nil || r.Owner.UID == nil || *r.Owner.UID != uid {
		t.Errorf("--json: exit %d %v, want owner uid %d:\n%s", code, err, uid, out)
	}
	// A file that does not parse has an owner too.
	torn := statusFile(t, statusOf(status.StateCompleted, true).Encode()[:90])
	if code, out, _ := runCmd(t, torn); code != 1 || !strings.Contains(out, fmt.Sprintf("owner        uid %d", uid)) {
		t.Errorf("torn: exit %d:\n%s", code, out)
	}
}

// TestCompletedUnconfirmed: a completed file whose recorded directory is
// missing or not a directory is not "completed" (exit 6), in text and
// JSON; with its directories there it is.
func TestCompletedUnconfirmed(t *testing.T) {
	root := t.TempDir()
	target, wal := filepath.Join(root, "b1"), filepath.Join(root, "b1_wal")
	for _, d := range []string{target, wal} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	notDir := filepath.Join(root, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := statusFile(t, completedWith(target, wal).Encode())
	if code, out, _ := runCmd(t, path); code != 0 || !strings.Contains(out, "completed and durable") {
		t.Errorf("directories there: exit %d:\n%s", code, out)
	}
	for name, dirs := range map[string][]string{
		"target missing":  {filepath.Join(root, "gone"), wal},
		"waldir missing":  {target, filepath.Join(root, "gone")},
		"not a directory": {notDir},
	} {
		path := statusFile(t, completedWith(dirs...).Encode())
		code, out, _ := runCmd(t, path)
		if code != 6 || !strings.Contains(out, "says completed, but DIRECTORY ") || !strings.Contains(out, "exit 6 (completed-unconfirmed)") {
			t.Errorf("%s: exit %d:\n%s", name, code, out)
		}
		code, out, _ = runCmd(t, "--json", path)
		if code != 6 || !strings.Contains(out, `"verdict": "completed-unconfirmed"`) || !strings.Contains(out, `"final": true`) {
			t.Errorf("%s --json: exit %d:\n%s", name, code, out)
		}
	}
	// Not durable and missing: unconfirmed too.
	s := completedWith(filepath.Join(root, "gone"))
	s.Sync, s.Durable = false, false
	if code, out, _ := runCmd(t, statusFile(t, s.Encode())); code != 6 {
		t.Errorf("not durable, missing: exit %d:\n%s", code, out)
	}
}

// TestRemovalNamesOwner: a refusal of --remove-if-dead names the owner of
// the status file too.
func TestRemovalNamesOwner(t *testing.T) {
	path := statusFile(t, statusOf(status.StateCompleted, true).Encode())
	code, out, _ := runWith(t, []status.Option{status.WithProcesses(machine{gone: true})}, "--remove-if-dead", path)
	if code != status.ExitRefused || !strings.Contains(out, fmt.Sprintf("  (the status file is owned by uid %d", os.Geteuid())) {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
