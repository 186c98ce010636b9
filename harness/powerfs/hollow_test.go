package powerfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSnapshotReadDirAndHollow: ReadDir lists the durable names of a
// directory only; MaterialiseHollow writes every durable path, the files
// it is not told to keep empty.
func TestSnapshotReadDirAndHollow(t *testing.T) {
	m := newModel(t)
	m.mkdir("d")
	m.write("d/keep", []byte("kept bytes"), true)
	m.write("d/data", []byte("dropped bytes"), true)
	m.write("d/unsynced", []byte("x"), false)
	m.must("fsync d", m.fsync("d"))
	m.must("fsync the root", m.fs.Fsync(m.c, RootIno))
	m.write("d/late", []byte("y"), true) // its name never synced
	s := m.fs.Durable()
	names, err := s.ReadDir("d")
	if err != nil || !slices.Equal(names, []string{"data", "keep", "unsynced"}) {
		t.Fatalf("ReadDir(d) = %v, %v", names, err)
	}
	if _, err := s.ReadDir("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadDir(nope): %v", err)
	}
	if _, err := s.ReadDir("d/keep"); err == nil {
		t.Fatal("ReadDir of a file succeeded")
	}
	out := filepath.Join(t.TempDir(), "hollow")
	if err := s.MaterialiseHollow(out, func(rel string) bool { return rel == "d/keep" }); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"d/keep": "kept bytes", "d/data": "", "d/unsynced": ""} {
		if b, err := os.ReadFile(filepath.Join(out, rel)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", rel, b, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "d", "late")); !os.IsNotExist(err) {
		t.Errorf("d/late materialised: %v", err)
	}
}
