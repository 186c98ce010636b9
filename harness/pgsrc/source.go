package pgsrc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
)

// Source identifies the PostgreSQL source of one build: a pinned Debian
// release, or the user's own tree or tarball given as PGSRC.
type Source struct {
	// Release is the pinned release of the requested major version.
	Release Release
	// Version is the version of this source ("18.6"); for a PGSRC tarball
	// it is only known after extraction and starts as Release.Version.
	Version string
	// Origin says where the source comes from, for logs.
	Origin string
	// Tarball is the PGSRC tarball, or "" (the pinned tarball is fetched).
	Tarball string
	// Dir is the PGSRC source tree, or "".
	Dir string
	// SHA256 identifies the content: the tarball's sha256, or a hash over
	// the tree's paths, modes and contents.
	SHA256 string
}

// Resolver finds and prepares PostgreSQL sources.
type Resolver struct {
	// CacheDir holds downloads (see Fetcher).
	CacheDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Download overrides how pinned tarballs are downloaded (tests).
	Download DownloadFunc
}

func (r *Resolver) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, "pgsrc: "+format+"\n", args...)
	}
}

// Identify returns the source of a major version: the pinned release, or
// pgsrc (a directory or a tarball) when it is not empty. Nothing is
// downloaded; a PGSRC tree is hashed and its version checked.
func (r *Resolver) Identify(ctx context.Context, major int, pgsrc string) (Source, error) {
	rel, err := Lookup(major)
	if err != nil {
		return Source{}, err
	}
	if pgsrc == "" {
		return Source{Release: rel, Version: rel.Version, Origin: "Debian " + rel.SourcePackage + " (" + rel.Suite + ") " + rel.OrigTarball, SHA256: rel.SHA256}, nil
	}
	abs, err := filepath.Abs(pgsrc)
	if err != nil {
		return Source{}, fmt.Errorf("PGSRC %s: %w", pgsrc, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return Source{}, fmt.Errorf("PGSRC: %w", err)
	}
	if st.IsDir() {
		ver, err := ReadTreeVersion(abs)
		if err != nil {
			return Source{}, fmt.Errorf("PGSRC: %w", err)
		}
		if err := r.checkVersion(rel, ver, "PGSRC="+abs); err != nil {
			return Source{}, err
		}
		sum, err := TreeSHA256(ctx, abs)
		if err != nil {
			return Source{}, fmt.Errorf("PGSRC: %w", err)
		}
		return Source{Release: rel, Version: ver, Origin: "PGSRC tree " + abs, Dir: abs, SHA256: sum}, nil
	}
	sum, _, err := FileSHA256(abs)
	if err != nil {
		return Source{}, fmt.Errorf("PGSRC: %w", err)
	}
	return Source{Release: rel, Version: rel.Version, Origin: "PGSRC tarball " + abs, Tarball: abs, SHA256: sum}, nil
}

// checkVersion fails when a tree's major version is not the requested one
// and reports a minor version that differs from the pin.
func (r *Resolver) checkVersion(rel Release, ver, origin string) error {
	if majorOf(ver) != rel.Major {
		return fmt.Errorf("%s is PostgreSQL %s, not %d", origin, ver, rel.Major)
	}
	if ver != rel.Version {
		r.logf("note: %s is PostgreSQL %s; the pinned release is %s", origin, ver, rel.Version)
	}
	return nil
}

func majorOf(ver string) int {
	m := regexp.MustCompile(`^(\d+)`).FindString(ver)
	n, _ := strconv.Atoi(m)
	return n
}

// Prepare puts the source tree of src, with the patches applied in order,
// at dest, which must not exist yet. It returns the version of the tree.
func (r *Resolver) Prepare(ctx context.Context, src Source, patches []string, dest string) (string, error) {
	if _, err := os.Lstat(dest); err == nil {
		return "", fmt.Errorf("prepare source: %s already exists", dest)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("prepare source: %w", err)
	}
	ver := src.Version
	switch {
	case src.Dir != "":
		r.logf("copying %s to %s", src.Dir, dest)
		if err := CopyTree(ctx, src.Dir, dest); err != nil {
			return "", fmt.Errorf("prepare source: %w", err)
		}
	default:
		tarball := src.Tarball
		if tarball == "" {
			f := &Fetcher{CacheDir: r.CacheDir, Log: r.Log, Download: r.Download}
			var err error
			if tarball, err = f.Fetch(ctx, src.Release); err != nil {
				return "", err
			}
		}
		tmp := dest + ".extract"
		_ = os.RemoveAll(tmp)
		defer os.RemoveAll(tmp)
		r.logf("extracting %s", tarball)
		if err := Extract(ctx, tarball, tmp); err != nil {
			return "", err
		}
		top, err := topDir(tmp)
		if err != nil {
			return "", fmt.Errorf("prepare source from %s: %w", tarball, err)
		}
		if ver, err = ReadTreeVersion(top); err != nil {
			return "", fmt.Errorf("prepare source from %s: %w", tarball, err)
		}
		if err := r.checkVersion(src.Release, ver, tarball); err != nil {
			return "", err
		}
		if err := os.Rename(top, dest); err != nil {
			return "", fmt.Errorf("prepare source: %w", err)
		}
	}
	if err := ApplySeries(ctx, dest, patches, r.Log); err != nil {
		return "", err
	}
	return ver, nil
}

// topDir returns the directory of an extracted tarball that holds
// configure: the directory itself or its only subdirectory.
func topDir(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "configure")); err == nil {
		return dir, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 1 {
		return filepath.Join(dir, dirs[0]), nil
	}
	return "", errors.New("not a PostgreSQL source tarball: no configure at its top")
}

var (
	configureVersion = regexp.MustCompile(`(?m)^PACKAGE_VERSION='([^']+)'`)
	mesonVersion     = regexp.MustCompile(`(?s)project\(\s*'postgresql'.*?version:\s*'([^']+)'`)
)

// ReadTreeVersion reads the PostgreSQL version of a source tree from its
// configure script, or from meson.build.
func ReadTreeVersion(dir string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "configure")); err == nil {
		if m := configureVersion.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "meson.build")); err == nil {
		if m := mesonVersion.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
	}
	return "", fmt.Errorf("%s: no PostgreSQL version found in configure or meson.build (is it a PostgreSQL source tree?)", dir)
}

// skipInTree says which entries of a user's tree are not source.
func skipInTree(rel string) bool {
	base := filepath.Base(rel)
	return base == ".git"
}

// TreeSHA256 hashes a source tree: relative paths, file types, executable
// bits, symlink targets and contents, in path order, skipping .git.
func TreeSHA256(ctx context.Context, dir string) (string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && skipInTree(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		paths = append(paths, rel)
		return ctx.Err()
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", dir, err)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, rel := range paths {
		p := filepath.Join(dir, rel)
		st, err := os.Lstat(p)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", dir, err)
		}
		switch {
		case st.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", dir, err)
			}
			fmt.Fprintf(h, "L %s %s\n", rel, t)
		case st.IsDir():
			fmt.Fprintf(h, "D %s\n", rel)
		case st.Mode().IsRegular():
			fmt.Fprintf(h, "F %s %d %t\n", rel, st.Size(), st.Mode()&0o111 != 0)
			fh, err := os.Open(p)
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", dir, err)
			}
			_, err = io.Copy(h, fh)
			fh.Close()
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", p, err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CopyTree copies a source tree (regular files, directories, symlinks) to
// dest, skipping .git.
func CopyTree(ctx context.Context, src, dest string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && skipInTree(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dest, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&os.ModeSymlink != 0, info.Mode().IsRegular():
			return copyEntry(p, target, info)
		}
		return nil
	})
}
