//go:build linux

package status

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletedPlantedInSharedDirectory: in a shared sticky status
// directory, A plants B's status file first, saying completed and durable
// (B's rename then fails): root's check names A as the owner and does
// not call it completed, whether the recorded target is missing or B's.
func TestCompletedPlantedInSharedDirectory(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	reachable(t, root)
	shared := filepath.Join(root, "status")
	if err := os.Mkdir(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	btarget := filepath.Join(root, "b_target")
	for name, dirs := range map[string][]Directory{
		"missing":  {{Path: filepath.Join(root, "never_made"), Created: true}},
		"B's own":  {{Path: btarget, Created: true}},
		"A's, B's": {{Path: filepath.Join(root, "a_target"), Created: true}, {Path: btarget}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, d := range []string{btarget, filepath.Join(root, "a_target")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chown(btarget, backupUID, backupUID); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(filepath.Join(root, "a_target"), otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
			s := withProgress(completedStatus())
			s.Directories = dirs
			file := writeFile(t, shared, "b.status", s.Encode())
			if err := os.Chown(file, otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
			r := Check(file)
			if r.ExitCode != 6 || r.Verdict.String() != "completed-unconfirmed" || !r.Final {
				t.Fatalf("verdict %v exit %d final %v: %s", r.Verdict, r.ExitCode, r.Final, r.Summary)
			}
			if !strings.Contains(r.Summary, "says completed, but DIRECTORY") {
				t.Errorf("summary %q", r.Summary)
			}
			if r.Owner == nil || r.Owner.UID != otherUID {
				t.Errorf("owner %+v, want uid %d", r.Owner, otherUID)
			}
		})
	}
}
