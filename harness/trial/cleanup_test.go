package trial

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSnapshotDiff: the clean-up check sees a file removed, changed or
// added outside the recorded directories, and nothing inside them.
func TestSnapshotDiff(t *testing.T) {
	root := t.TempDir()
	mk := func(p, data string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("target/base/1", "x")
	mk("ts1/PG_18_1/5/1", "y")
	mk("pg_basebackup.log", "log")
	mk("keep/a", "a")
	mk("keep/b", "b")
	recorded := []string{filepath.Join(root, "target"), filepath.Join(root, "ts1")}
	skip := func(p string) bool {
		return slices.ContainsFunc(recorded, func(d string) bool { return p == d || strings.HasPrefix(p, d+"/") })
	}
	before, err := snapshot(root, skip)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "target")); err != nil {
		t.Fatal(err)
	}
	mk("ts1/other", "inside a recorded directory: not looked at")
	after, _ := snapshot(root, skip)
	if d := diffSnapshots(before, after); len(d) != 0 {
		t.Fatalf("only recorded directories changed, got %v", d)
	}
	os.Remove(filepath.Join(root, "keep", "a"))
	mk("keep/b", "bigger")
	mk(".target.pgbb-removing-1/x", "a tombstone left")
	after, _ = snapshot(root, skip)
	want := []string{
		"appeared " + filepath.Join(root, ".target.pgbb-removing-1"),
		"appeared " + filepath.Join(root, ".target.pgbb-removing-1", "x"),
		"changed " + filepath.Join(root, "keep", "b"),
		"removed " + filepath.Join(root, "keep", "a"),
	}
	if d := diffSnapshots(before, after); !slices.Equal(d, want) {
		t.Fatalf("diff %v, want %v", d, want)
	}
}
