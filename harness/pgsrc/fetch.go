package pgsrc

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pgbb/pgbb/harness/filelock"
)

// DownloadFunc puts rel.OrigTarball into dir. It does not verify it; the
// Fetcher does.
type DownloadFunc func(ctx context.Context, rel Release, dir string) error

// Fetcher downloads pinned source tarballs into a cache directory and
// verifies their checksums.
type Fetcher struct {
	// CacheDir holds the tarballs (CacheDir/dist) and the project's own apt
	// state (CacheDir/apt).
	CacheDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Download fetches a tarball; nil means AptDownload through the
	// project's own deb-src sources file.
	Download DownloadFunc
}

// ChecksumError reports a tarball whose sha256 does not match its pin. The
// file has been removed when this error is returned.
type ChecksumError struct {
	// Path is the rejected file.
	Path string
	// Want is the pinned sha256, Got the file's.
	Want, Got string
	// Size is the file's size in bytes (a truncated download is short).
	Size int64
	// Removed says whether the file was removed.
	Removed bool
	// Detail says why it could not be removed.
	Detail string
}

func (e *ChecksumError) Error() string {
	msg := fmt.Sprintf("checksum mismatch for %s (%d bytes): sha256 %s, pinned %s", e.Path, e.Size, e.Got, e.Want)
	if e.Removed {
		msg += "; the file was removed and will not be built"
	}
	if e.Detail != "" {
		msg += "; " + e.Detail
	}
	return msg
}

func (f *Fetcher) logf(format string, args ...any) {
	if f.Log != nil {
		fmt.Fprintf(f.Log, "pgsrc: "+format+"\n", args...)
	}
}

// Fetch returns the path of the verified orig tarball of rel, downloading it
// when it is not cached. A cached file with a wrong checksum is removed and
// downloaded again; a downloaded file with a wrong checksum is removed and
// reported as a *ChecksumError.
func (f *Fetcher) Fetch(ctx context.Context, rel Release) (string, error) {
	dist := filepath.Join(f.CacheDir, "dist")
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return "", fmt.Errorf("fetch %s: %w", rel.OrigTarball, err)
	}
	// Tests in several packages fetch at once from one cache: one at a time,
	// so that the second finds the first's tarball instead of downloading it
	// again into the same apt state.
	release, err := filelock.Acquire(ctx, filepath.Join(f.CacheDir, "locks", "fetch.lock"), 0, func() {
		f.logf("waiting for another harness process fetching sources")
	})
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", rel.OrigTarball, err)
	}
	defer release()
	path := filepath.Join(dist, rel.OrigTarball)
	if _, err := os.Stat(path); err == nil {
		if err := verifyOrRemove(path, rel.SHA256); err == nil {
			f.logf("using cached %s (sha256 verified)", path)
			return path, nil
		} else {
			f.logf("cached tarball rejected, downloading again: %v", err)
		}
	}

	tmp, err := os.MkdirTemp(dist, ".download-")
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", rel.OrigTarball, err)
	}
	defer os.RemoveAll(tmp)

	download := f.Download
	if download == nil {
		download = (&Apt{StateDir: filepath.Join(f.CacheDir, "apt"), Log: f.Log}).Download
	}
	f.logf("downloading %s (Debian source package %s, %s)", rel.OrigTarball, rel.SourcePackage, rel.Suite)
	if err := download(ctx, rel, tmp); err != nil {
		return "", fmt.Errorf("fetch %s: %w", rel.OrigTarball, err)
	}
	got := filepath.Join(tmp, rel.OrigTarball)
	if err := verifyOrRemove(got, rel.SHA256); err != nil {
		return "", fmt.Errorf("fetch %s: %w", rel.OrigTarball, err)
	}
	if err := os.Rename(got, path); err != nil {
		return "", fmt.Errorf("fetch %s: %w", rel.OrigTarball, err)
	}
	f.logf("downloaded %s (sha256 %s verified)", path, rel.SHA256)
	return path, nil
}

// verifyOrRemove checks path against the hex sha256 want; on a mismatch it
// removes the file and returns a *ChecksumError.
func verifyOrRemove(path, want string) error {
	got, size, err := FileSHA256(path)
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	if got == want {
		return nil
	}
	ce := &ChecksumError{Path: path, Want: want, Got: got, Size: size}
	if rmErr := os.Remove(path); rmErr == nil {
		ce.Removed = true
	} else {
		ce.Detail = "could not remove it: " + rmErr.Error()
	}
	return ce
}

// FileSHA256 returns the hex sha256 and the size of a file.
func FileSHA256(path string) (string, int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Apt downloads Debian source packages through a deb-src sources file of
// the project's own, leaving the system's apt configuration alone.
type Apt struct {
	// StateDir holds the sources file, package lists and apt's cache.
	StateDir string
	// HostSources are the host's apt sources files read to find the Debian
	// archive address; empty means the standard locations.
	HostSources []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Download fetches rel's orig tarball into dir with `apt-get source
// --download-only`, after updating the project's own deb-src lists.
func (a *Apt) Download(ctx context.Context, rel Release, dir string) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("apt-get not found (a Debian host is needed to download %s; or set PGSRC to a PostgreSQL %d source tree or tarball)", rel.SourcePackage, rel.Major)
	}
	archive, err := HostArchive(a.HostSources)
	if err != nil {
		return err
	}
	// apt-get source runs in a scratch directory, where a relative state
	// directory (PGBB_CACHE=.cache) would name nothing: apt then reads no
	// lists and asks for deb-src URIs.
	state, err := filepath.Abs(a.StateDir)
	if err != nil {
		return fmt.Errorf("apt state %s: %w", a.StateDir, err)
	}
	a = &Apt{StateDir: state, HostSources: a.HostSources, Log: a.Log}
	// apt runs with Debug::NoLocking (its own locks are root's), so two
	// harness processes sharing StateDir would truncate each other's lists
	// mid-"apt-get source" ("You must put some 'deb-src' URIs").
	release, err := filelock.Acquire(ctx, filepath.Join(a.StateDir, "state.lock"), 0, func() {
		if a.Log != nil {
			fmt.Fprintf(a.Log, "pgsrc: waiting for another harness process using %s\n", a.StateDir)
		}
	})
	if err != nil {
		return err
	}
	defer release()
	opts, err := a.prepare(archive)
	if err != nil {
		return err
	}
	if err := a.run(ctx, "", append(opts, "update")...); err != nil {
		return fmt.Errorf("apt-get update with %s: %w", filepath.Join(a.StateDir, "sources.list"), err)
	}
	work, err := os.MkdirTemp(dir, ".apt-source-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := a.run(ctx, work, append(opts, "source", "--download-only", rel.SourcePackage)...); err != nil {
		return fmt.Errorf("apt-get source %s: %w (or set PGSRC to a PostgreSQL %d source tree or tarball)", rel.SourcePackage, err, rel.Major)
	}
	got := filepath.Join(work, rel.OrigTarball)
	if _, err := os.Stat(got); err != nil {
		var names []string
		ents, _ := os.ReadDir(work)
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return fmt.Errorf("the archive no longer carries %s (apt-get source %s gave %s); set PGSRC to a PostgreSQL %s source tree or tarball",
			rel.OrigTarball, rel.SourcePackage, strings.Join(names, ", "), rel.Version)
	}
	return os.Rename(got, filepath.Join(dir, rel.OrigTarball))
}

// prepare writes the sources file and the directories apt needs, and
// returns the apt-get options that point apt at them.
func (a *Apt) prepare(archive string) ([]string, error) {
	lists := filepath.Join(a.StateDir, "lists")
	cache := filepath.Join(a.StateDir, "cache")
	for _, d := range []string{filepath.Join(lists, "partial"), filepath.Join(cache, "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("apt state: %w", err)
		}
	}
	var b strings.Builder
	for _, suite := range []string{"sid", "bookworm"} {
		fmt.Fprintf(&b, "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n", archive, suite)
	}
	src := filepath.Join(a.StateDir, "sources.list")
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("apt sources: %w", err)
	}
	opts := []string{
		"-q",
		"-o", "Dir::Etc::SourceList=" + src,
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + lists,
		"-o", "Dir::Cache=" + cache,
		"-o", "Debug::NoLocking=1",
	}
	if os.Geteuid() == 0 {
		// The project's own directories are not readable by _apt's sandbox
		// in every layout; download as root instead of warning about it.
		opts = append(opts, "-o", "APT::Sandbox::User=root")
	}
	return opts, nil
}

func (a *Apt) run(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if a.Log != nil {
		fmt.Fprintf(a.Log, "pgsrc: apt-get %s\n", args[len(args)-1])
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w\n%s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// HostArchive returns the Debian archive address the host's own apt
// sources use (the URI of the first non-security "deb" entry), read from
// the given files or, when none are given, from /etc/apt/sources.list.d/*.sources
// and /etc/apt/sources.list. It never writes anything.
func HostArchive(files []string) (string, error) {
	if len(files) == 0 {
		deb822, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
		oneLine, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
		files = append(append(deb822, "/etc/apt/sources.list"), oneLine...)
	}
	for _, f := range files {
		uri, err := archiveFromFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if uri != "" {
			return uri, nil
		}
	}
	return "", fmt.Errorf("no Debian archive found in the host's apt sources (%s)", strings.Join(files, ", "))
}

func archiveFromFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	good := func(uri string) bool {
		return (strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")) &&
			!strings.Contains(uri, "security") && !strings.Contains(uri, "ports")
	}
	sc := bufio.NewScanner(fh)
	if strings.HasSuffix(path, ".sources") {
		// deb822: stanzas separated by blank lines.
		var types, uris []string
		flush := func() string {
			defer func() { types, uris = nil, nil }()
			if !contains(types, "deb") {
				return ""
			}
			for _, u := range uris {
				if good(u) {
					return strings.TrimRight(u, "/")
				}
			}
			return ""
		}
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				if u := flush(); u != "" {
					return u, nil
				}
				continue
			}
			if strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "types":
				types = strings.Fields(v)
			case "uris":
				uris = strings.Fields(v)
			}
		}
		if err := sc.Err(); err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		return flush(), nil
	}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		uri := f[1]
		if strings.HasPrefix(uri, "[") {
			// Options: skip to the closing bracket.
			for i := 1; i < len(f); i++ {
				if strings.HasSuffix(f[i], "]") && i+1 < len(f) {
					uri = f[i+1]
					break
				}
			}
		}
		if good(uri) {
			return strings.TrimRight(uri, "/"), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "", nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
