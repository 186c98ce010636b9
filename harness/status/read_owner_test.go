//go:build linux

package status

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secret is what a victim's file holds: a line that is no status file.
const secret = "PGPASSWORD=hunter2-secret"

// leaks fails t if a report or error shows any of the secret.
func leaks(t *testing.T, what string, r *Report) {
	t.Helper()
	for _, s := range []string{r.Summary, r.Error, Escape(r.Error)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "PGPASSWORD") {
			t.Errorf("%s: the report shows the victim's file: %q", what, s)
		}
	}
	if r.Verdict != NotComplete || r.Status != nil {
		t.Errorf("%s: verdict %v, status %v", what, r.Verdict, r.Status)
	}
}

// sharedDir makes a directory of mode 1777, as /tmp, with B's 0600 file
// bvic.env in it, and returns both.
func sharedDir(t *testing.T) (string, string) {
	t.Helper()
	needRoot(t)
	shared := filepath.Join(t.TempDir(), "shared")
	reachable(t, shared)
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	victim := writeFile(t, shared, "bvic.env", []byte(secret+"\n"))
	if err := os.Chmod(victim, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(victim, backupUID, backupUID); err != nil {
		t.Fatal(err)
	}
	return shared, victim
}

// TestReadAsRootSymlinkToVictim: in a shared sticky directory, A's
// symlink a.status to B's 0600 file: root's read refuses the link and
// shows nothing of the file (the reader used to follow a link that stays
// in its directory, and its parse error quoted line 1).
func TestReadAsRootSymlinkToVictim(t *testing.T) {
	shared, _ := sharedDir(t)
	link := filepath.Join(shared, "a.status")
	if err := os.Symlink("bvic.env", link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	r := Check(link)
	leaks(t, "symlink", r)
	if !strings.Contains(r.Error, "symlink") {
		t.Errorf("error %q, want it to say the status file is a symlink", r.Error)
	}
}

// TestReadAsRootHardLinkToVictim: a hard link to B's file (which the
// kernel's protected_hardlinks would refuse A, but root may make) is a
// regular file of B: root's parse error says what is wrong and where,
// never what the file holds.
func TestReadAsRootHardLinkToVictim(t *testing.T) {
	shared, victim := sharedDir(t)
	link := filepath.Join(shared, "a.status")
	if err := os.Link(victim, link); err != nil {
		t.Fatal(err)
	}
	r := Check(link)
	leaks(t, "hard link", r)
	if !strings.Contains(r.Error, link+":1:") {
		t.Errorf("error %q, want the file and line", r.Error)
	}
}

// TestReadAsRootThroughSwappedDirectory: the directory of the status file
// is (or is swapped for, in a race) a symlink to a directory of root's
// holding a root file of the status file's name: what root reads there
// is never shown, not even to root.
func TestReadAsRootThroughSwappedDirectory(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	private := filepath.Join(root, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, private, ".pgpass", []byte(secret+"\n"))
	attackers := filepath.Join(root, "a")
	if err := os.Symlink(private, attackers); err != nil {
		t.Fatal(err)
	}
	leaks(t, "directory swapped", Check(filepath.Join(attackers, ".pgpass")))
}
