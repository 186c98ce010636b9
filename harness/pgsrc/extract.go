package pgsrc

import (
	"archive/tar"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Extract unpacks a tarball into dest (created if missing). .tar.bz2,
// .tar.gz/.tgz and plain .tar are read natively; other compressions are
// handed to the system tar. Entries that would land outside dest are
// refused.
func Extract(ctx context.Context, tarball, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("extract %s: %w", tarball, err)
	}
	name := strings.ToLower(tarball)
	fh, err := os.Open(tarball)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer fh.Close()
	var r io.Reader
	switch {
	case strings.HasSuffix(name, ".tar.bz2") || strings.HasSuffix(name, ".tbz2"):
		r = bzip2.NewReader(fh)
	case strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tgz"):
		gz, err := gzip.NewReader(fh)
		if err != nil {
			return fmt.Errorf("extract %s: %w", tarball, err)
		}
		defer gz.Close()
		r = gz
	case strings.HasSuffix(name, ".tar"):
		r = fh
	default:
		cmd := exec.CommandContext(ctx, "tar", "-xf", tarball, "-C", dest)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("extract %s: tar: %w: %s", tarball, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := untar(ctx, r, dest); err != nil {
		return fmt.Errorf("extract %s: %w", tarball, err)
	}
	return nil
}

func untar(ctx context.Context, r io.Reader, dest string) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		clean := filepath.Clean(hdr.Name)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("entry %q leaves the destination", hdr.Name)
		}
		target := filepath.Join(dest, clean)
		mode := os.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode|0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			if err := out.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src := filepath.Join(dest, filepath.Clean(hdr.Linkname))
			if err := os.Link(src, target); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
			// Metadata only.
		default:
			return fmt.Errorf("entry %q: unsupported type %q", hdr.Name, hdr.Typeflag)
		}
	}
}
