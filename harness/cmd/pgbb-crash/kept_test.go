package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/trial"
)

// TestKeepOnDisk: the trials a campaign kept in its own scratch in memory
// leave RAM for the run directory, symlinks and all; an empty scratch
// reports nothing; a scratch the user gave stays where it is.
func TestKeepOnDisk(t *testing.T) {
	if fi, err := os.Stat(campaign.MemoryDir); err != nil || !fi.IsDir() {
		t.Fatalf("%s: %v (the campaign keeps its scratch there on Linux)", campaign.MemoryDir, err)
	}
	scratch, err := os.MkdirTemp(campaign.MemoryDir, "pgbb-crash-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	trialDir := filepath.Join(scratch, "plain", "w0", "t5")
	if err := os.MkdirAll(filepath.Join(trialDir, "target"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(trialDir, "target", "PG_VERSION"), []byte("18\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../wal", filepath.Join(trialDir, "target", "pg_wal")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(scratch, "plain", "w1", "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "kept")
	k, err := keepOnDisk(scratch, true, dest)
	if err != nil {
		t.Fatal(err)
	}
	if k == nil || k.Dir != dest || k.From != scratch || k.Count != 1 || k.Bytes != 3 {
		t.Fatalf("keepOnDisk = %+v, want 1 entry of 3 bytes moved from %s to %s", k, scratch, dest)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("the scratch in memory still holds %v", left)
	}
	if l, err := os.Readlink(filepath.Join(dest, "plain", "w0", "t5", "target", "pg_wal")); err != nil || l != "../wal" {
		t.Errorf("the symlink on disk: %q, %v", l, err)
	}
	var out bytes.Buffer
	k.write(&out)
	if !strings.Contains(out.String(), "moved out of memory, from "+scratch) {
		t.Errorf("summary line %q", out.String())
	}
	// The records of kept trials then name where they are now; the others
	// are left alone.
	keptRec := &trial.Record{Dir: trialDir}
	goneRec := &trial.Record{Dir: filepath.Join(scratch, "plain", "w1", "t6")}
	if moved := k.relocate([]*trial.Record{keptRec, goneRec, {}}); len(moved) != 1 || moved[0] != keptRec ||
		keptRec.Dir != filepath.Join(dest, "plain", "w0", "t5") || goneRec.Dir != filepath.Join(scratch, "plain", "w1", "t6") {
		t.Errorf("relocate: moved %v; kept %q, gone %q", moved, keptRec.Dir, goneRec.Dir)
	}
	if k, err := keepOnDisk(scratch, true, dest); err != nil || k != nil {
		t.Errorf("empty scratch: %+v, %v; want nothing", k, err)
	}

	given := t.TempDir()
	if err := os.WriteFile(filepath.Join(given, "x"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := keepOnDisk(given, false, filepath.Join(t.TempDir(), "kept")); err != nil || k == nil || k.Dir != given || k.From != "" {
		t.Errorf("a scratch the user gave: %+v, %v; want it left in place", k, err)
	}
}
