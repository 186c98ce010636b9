package pgsrc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Overlay files: the lists an overlay carries besides the changed files,
// one path relative to the tree per line.
const (
	// OverlayChanged lists the files the overlay adds or replaces.
	OverlayChanged = ".pgbb-changed"
	// OverlayDeleted lists the files of the base tree the patches removed.
	OverlayDeleted = ".pgbb-deleted"
)

// MakeOverlay writes into overlay what turns the tree base into the tree
// patched: every regular file or symlink that is new or differs (content,
// executable bit or link target) at its relative path, and the two lists
// OverlayChanged and OverlayDeleted (always written, empty when nothing
// changed). It returns the changed and the deleted paths.
//
// The container build copies a release's pristine tree into the image and
// builds it first, then the overlay on top and builds again, so that every
// variant of a release shares the first, long layer.
func MakeOverlay(ctx context.Context, base, patched, overlay string) (changed, deleted []string, err error) {
	baseFiles, err := treeFiles(ctx, base)
	if err != nil {
		return nil, nil, fmt.Errorf("overlay: %w", err)
	}
	patchedFiles, err := treeFiles(ctx, patched)
	if err != nil {
		return nil, nil, fmt.Errorf("overlay: %w", err)
	}
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return nil, nil, fmt.Errorf("overlay: %w", err)
	}
	for rel, pm := range patchedFiles {
		bm, ok := baseFiles[rel]
		if ok {
			same, err := sameFile(filepath.Join(base, rel), filepath.Join(patched, rel), bm, pm)
			if err != nil {
				return nil, nil, fmt.Errorf("overlay: %w", err)
			}
			if same {
				continue
			}
		}
		changed = append(changed, rel)
	}
	for rel := range baseFiles {
		if _, ok := patchedFiles[rel]; !ok {
			deleted = append(deleted, rel)
		}
	}
	sort.Strings(changed)
	sort.Strings(deleted)
	for _, rel := range changed {
		src, dest := filepath.Join(patched, rel), filepath.Join(overlay, rel)
		info, err := os.Lstat(src)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(dest), 0o755)
		}
		if err == nil {
			err = copyEntry(src, dest, info)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("overlay: %w", err)
		}
	}
	for name, list := range map[string][]string{OverlayChanged: changed, OverlayDeleted: deleted} {
		text := strings.Join(list, "\n")
		if text != "" {
			text += "\n"
		}
		if err := os.WriteFile(filepath.Join(overlay, name), []byte(text), 0o644); err != nil {
			return nil, nil, fmt.Errorf("overlay: %w", err)
		}
	}
	return changed, deleted, nil
}

// treeFiles maps the relative path of every regular file and symlink of a
// tree (skipping .git) to its mode.
func treeFiles(ctx context.Context, dir string) (map[string]fs.FileMode, error) {
	files := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && skipInTree(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			info, err := d.Info()
			if err != nil {
				return err
			}
			files[rel] = info.Mode()
		}
		return nil
	})
	return files, err
}

// sameFile compares two entries of the same relative path.
func sameFile(a, b string, am, bm fs.FileMode) (bool, error) {
	if am.Type() != bm.Type() {
		return false, nil
	}
	if am&fs.ModeSymlink != 0 {
		ta, err := os.Readlink(a)
		if err != nil {
			return false, err
		}
		tb, err := os.Readlink(b)
		return err == nil && ta == tb, err
	}
	if am&0o111 != bm&0o111 {
		return false, nil
	}
	da, err := os.ReadFile(a)
	if err != nil {
		return false, err
	}
	db, err := os.ReadFile(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(da, db), nil
}

// copyEntry copies a regular file (with its permissions) or a symlink,
// described by info, from src to dest, whose directory must exist; it
// never replaces an existing dest. CopyTree and MakeOverlay both use it.
func copyEntry(src, dest string, info fs.FileInfo) error {
	if info.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(t, dest)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm()|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
