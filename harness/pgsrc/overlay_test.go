package pgsrc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMakeOverlay(t *testing.T) {
	root := t.TempDir()
	base, patched, overlay := filepath.Join(root, "base"), filepath.Join(root, "patched"), filepath.Join(root, "overlay")
	write := func(tree, rel, text string, mode os.FileMode) {
		p := filepath.Join(tree, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, tree := range []string{base, patched} {
		write(tree, "same.c", "same\n", 0o644)
		write(tree, "src/sub/same.h", "same\n", 0o644)
		os.Symlink("same.c", filepath.Join(tree, "link"))
		write(tree, ".git/HEAD", "ref\n", 0o644) // never part of a tree
	}
	write(base, "src/edited.c", "old\n", 0o644)
	write(patched, "src/edited.c", "new\n", 0o644)
	write(base, "script", "#!/bin/sh\n", 0o644)
	write(patched, "script", "#!/bin/sh\n", 0o755) // only the executable bit
	write(patched, "src/t/012_new.pl", "new test\n", 0o644)
	write(base, "gone.c", "removed by a patch\n", 0o644)
	os.Symlink("same.c", filepath.Join(base, "relinked"))
	os.Symlink("src/edited.c", filepath.Join(patched, "relinked"))

	changed, deleted, err := MakeOverlay(context.Background(), base, patched, overlay)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"relinked", "script", "src/edited.c", "src/t/012_new.pl"}, changed); d != "" {
		t.Errorf("changed (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"gone.c"}, deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}
	if got, _ := os.ReadFile(filepath.Join(overlay, "src/edited.c")); string(got) != "new\n" {
		t.Errorf("overlay src/edited.c = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(overlay, "script")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("overlay script not executable: %v", err)
	}
	if l, _ := os.Readlink(filepath.Join(overlay, "relinked")); l != "src/edited.c" {
		t.Errorf("overlay relinked -> %q", l)
	}
	for _, absent := range []string{"same.c", "src/sub/same.h", "link", ".git"} {
		if _, err := os.Lstat(filepath.Join(overlay, absent)); err == nil {
			t.Errorf("overlay holds unchanged %s", absent)
		}
	}
	lists := map[string]string{OverlayChanged: "relinked\nscript\nsrc/edited.c\nsrc/t/012_new.pl\n", OverlayDeleted: "gone.c\n"}
	for name, want := range lists {
		if got, _ := os.ReadFile(filepath.Join(overlay, name)); string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	// Nothing changed: an overlay with two empty lists only.
	empty := filepath.Join(root, "empty")
	if changed, deleted, err := MakeOverlay(context.Background(), base, base, empty); err != nil || len(changed)+len(deleted) > 0 {
		t.Fatalf("same tree: changed %v, deleted %v, %v", changed, deleted, err)
	}
	ents, _ := os.ReadDir(empty)
	if len(ents) != 2 {
		t.Errorf("overlay of an unchanged tree holds %d entries, want the 2 lists", len(ents))
	}
}
