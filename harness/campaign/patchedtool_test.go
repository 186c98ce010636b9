package campaign

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/build"
)

func TestPatchFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"0002-b.patch", "0001-a.patch", "README.md"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := PatchFiles(dir)
	want := []string{filepath.Join(dir, "0001-a.patch"), filepath.Join(dir, "0002-b.patch")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("PatchFiles = %q, %v; want %q", got, err, want)
	}
	if _, err := PatchFiles(t.TempDir()); err == nil {
		t.Error("a directory without patches: no error")
	}
}

// TestBuildPatchedToolMisfit: a patch whose context is not in the tree
// fails the build, and the tree is left as it was.
func TestBuildPatchedToolMisfit(t *testing.T) {
	root, err := build.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	const file = "harness/cmd/pgbb-run/main.go"
	before, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	patch := filepath.Join(t.TempDir(), "0001-misfit.patch")
	diff := "--- a/" + file + "\n+++ b/" + file + "\n@@ -1,3 +1,3 @@\n no such line\n-in this file\n+at all\n and none here\n"
	if err := os.WriteFile(patch, []byte(diff), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = BuildPatchedTool(t.Context(), root, t.TempDir(), "pgbb-run", []string{patch})
	if err == nil || !strings.Contains(err.Error(), "does not apply") {
		t.Errorf("BuildPatchedTool with a misfit patch: %v, want it not to apply", err)
	}
	if after, err := os.ReadFile(filepath.Join(root, file)); err != nil || string(after) != string(before) {
		t.Errorf("the tree's %s changed (%v)", file, err)
	}
}
