package pgsrc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLookupUnknownVersionListsSupported(t *testing.T) {
	for _, in := range []string{"17", "x", "9.6"} {
		_, err := ParseMajor(in)
		if err == nil || !strings.Contains(err.Error(), "supported versions are 18, 15") {
			t.Errorf("ParseMajor(%q) = %v, want error listing 18, 15", in, err)
		}
	}
	for in, want := range map[string]int{"18": 18, "15": 15, "18.6": 18} {
		got, err := ParseMajor(in)
		if err != nil || got != want {
			t.Errorf("ParseMajor(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestPinsAreComplete(t *testing.T) {
	for _, r := range Releases() {
		if len(r.SHA256) != 64 || r.OrigTarball == "" || r.SourcePackage == "" || r.Suite == "" || r.TopDir == "" ||
			!strings.HasPrefix(r.Version, strings.Split(r.TopDir, "-")[1][:2]) {
			t.Errorf("incomplete pin: %+v", r)
		}
	}
}

// fakeRelease pins content under a fake name.
func fakeRelease(content []byte) Release {
	sum := sha256.Sum256(content)
	return Release{Major: 99, Version: "99.1", SourcePackage: "postgresql-99", Suite: "sid",
		OrigTarball: "postgresql-99_99.1.orig.tar.gz", SHA256: hex.EncodeToString(sum[:]), TopDir: "postgresql-99.1"}
}

func writer(content []byte) DownloadFunc {
	return func(_ context.Context, rel Release, dir string) error {
		return os.WriteFile(filepath.Join(dir, rel.OrigTarball), content, 0o644)
	}
}

func TestFetchTruncatedDownloadIsRemovedAndReported(t *testing.T) {
	good := bytes.Repeat([]byte("postgres"), 1000)
	rel := fakeRelease(good)
	cache := t.TempDir()
	f := &Fetcher{CacheDir: cache, Download: writer(good[:100])}
	_, err := f.Fetch(context.Background(), rel)
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("Fetch of a truncated download: %v, want *ChecksumError", err)
	}
	if !ce.Removed || ce.Size != 100 || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("error %v: want removed, size 100", err)
	}
	left, _ := filepath.Glob(filepath.Join(cache, "dist", "*"))
	left2, _ := filepath.Glob(filepath.Join(cache, "dist", ".*", "*"))
	if len(left)+len(left2) != 0 {
		t.Errorf("files left after a corrupt download: %v %v", left, left2)
	}
}

func TestFetchReplacesCorruptCachedFile(t *testing.T) {
	good := []byte("the real tarball")
	rel := fakeRelease(good)
	cache := t.TempDir()
	dist := filepath.Join(cache, "dist")
	os.MkdirAll(dist, 0o755)
	os.WriteFile(filepath.Join(dist, rel.OrigTarball), []byte("the real tarbal"), 0o644)
	calls := 0
	f := &Fetcher{CacheDir: cache, Download: func(ctx context.Context, r Release, dir string) error {
		calls++
		return writer(good)(ctx, r, dir)
	}}
	path, err := f.Fetch(context.Background(), rel)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != string(good) || calls != 1 {
		t.Errorf("got %q after %d downloads", got, calls)
	}
	// Cached and good: no second download.
	if _, err := f.Fetch(context.Background(), rel); err != nil || calls != 1 {
		t.Errorf("second Fetch: %v, %d downloads", err, calls)
	}
}

func TestPrepareNeverBuildsCorruptSource(t *testing.T) {
	good := tarGz(t, map[string]string{"postgresql-99.1/configure": "PACKAGE_VERSION='99.1'\n"})
	rel := fakeRelease(good)
	r := &Resolver{CacheDir: t.TempDir(), Download: writer(append(good[:len(good)-10:len(good)-10], "xxxxxxxxxx"...))}
	dest := filepath.Join(t.TempDir(), "tree")
	_, err := r.Prepare(context.Background(), Source{Release: rel, Version: rel.Version, SHA256: rel.SHA256}, nil, dest)
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("Prepare with a corrupt download: %v, want *ChecksumError", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("a tree was prepared from a corrupt download")
	}
	// The good download prepares.
	r.Download = writer(good)
	ver, err := r.Prepare(context.Background(), Source{Release: rel, Version: rel.Version, SHA256: rel.SHA256}, nil, dest)
	if err != nil || ver != "99.1" {
		t.Fatalf("Prepare: %q, %v", ver, err)
	}
}

func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestExtractRefusesEscapingPaths(t *testing.T) {
	dir := t.TempDir()
	tb := filepath.Join(dir, "evil.tar.gz")
	os.WriteFile(tb, tarGz(t, map[string]string{"../escape": "x"}), 0o644)
	if err := Extract(context.Background(), tb, filepath.Join(dir, "out")); err == nil || !strings.Contains(err.Error(), "leaves the destination") {
		t.Fatalf("Extract: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Fatal("entry escaped")
	}
}

func TestReadTreeVersion(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "meson.build"), []byte("project('postgresql',\n  ['c'],\n  version: '19devel',\n)\n"), 0o644)
	if v, err := ReadTreeVersion(dir); err != nil || v != "19devel" {
		t.Errorf("meson: %q %v", v, err)
	}
	os.WriteFile(filepath.Join(dir, "configure"), []byte("#!/bin/sh\nPACKAGE_VERSION='18.4'\n"), 0o755)
	if v, err := ReadTreeVersion(dir); err != nil || v != "18.4" {
		t.Errorf("configure: %q %v", v, err)
	}
	if _, err := ReadTreeVersion(t.TempDir()); err == nil {
		t.Error("empty dir has a version")
	}
}

func TestIdentifyPGSRCTree(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "configure"), []byte("PACKAGE_VERSION='18.4'\n"), 0o755)
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("x"), 0o644)
	var log bytes.Buffer
	r := &Resolver{CacheDir: t.TempDir(), Log: &log}
	src, err := r.Identify(context.Background(), 18, dir)
	if err != nil {
		t.Fatal(err)
	}
	if src.Version != "18.4" || src.Dir != dir || !strings.Contains(log.String(), "pinned release is 18.6") {
		t.Errorf("Identify = %+v, log %q", src, log.String())
	}
	// .git does not change the identity.
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("y"), 0o644)
	src2, _ := r.Identify(context.Background(), 18, dir)
	if src2.SHA256 != src.SHA256 {
		t.Error(".git changed the tree hash")
	}
	if _, err := r.Identify(context.Background(), 15, dir); err == nil || !strings.Contains(err.Error(), "not 15") {
		t.Errorf("18.4 tree for 15: %v", err)
	}
}

func TestHostArchive(t *testing.T) {
	dir := t.TempDir()
	deb822 := filepath.Join(dir, "debian.sources")
	os.WriteFile(deb822, []byte("Types: deb\n# comment\nURIs: http://archive.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://archive.example/debian-security\n"), 0o644)
	oneLine := filepath.Join(dir, "sources.list")
	os.WriteFile(oneLine, []byte("deb-src http://src.example/debian sid main\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n"), 0o644)
	for _, c := range []struct {
		files []string
		want  string
	}{{[]string{deb822}, "http://archive.example/debian"}, {[]string{filepath.Join(dir, "missing"), oneLine}, "http://mirror.example/debian"}} {
		got, err := HostArchive(c.files)
		if err != nil || got != c.want {
			t.Errorf("HostArchive(%v) = %q, %v; want %q", c.files, got, err, c.want)
		}
	}
	if _, err := HostArchive([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("no sources: no error")
	}
}

func TestParsePatch(t *testing.T) {
	fh, err := os.Open("testdata/pg18-broken/0001-broken-second-hunk.patch")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	hunks, err := ParsePatch(fh)
	if err != nil {
		t.Fatal(err)
	}
	f := "src/bin/pg_basebackup/pg_basebackup.c"
	want := []Hunk{
		{File: f, Number: 1, Header: "@@ -1,6 +1,7 @@", OldStart: 1, Line: 9},
		{File: f, Number: 2, Header: "@@ -2348,6 +2349,7 @@ BaseBackup(char *compression_algorithm, char *compression_detail,", OldStart: 2348, Line: 17},
	}
	if diff := cmp.Diff(want, hunks); diff != "" {
		t.Errorf("ParsePatch (-want +got):\n%s", diff)
	}
}

// TestApplySeriesSynthetic applies a series to a small tree, in name order,
// and checks that a failing hunk is named; it needs git but no network.
func TestApplySeriesSynthetic(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(filepath.Join(tree, "src"), 0o755)
	var lines []string
	for i := 1; i <= 40; i++ {
		lines = append(lines, "line "+strings.Repeat("x", i%7)+string(rune('a'+i%26)))
	}
	os.WriteFile(filepath.Join(tree, "src", "f.c"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	pd := t.TempDir()
	// 0002 depends on 0001: applying in name order matters.
	os.WriteFile(filepath.Join(pd, "0001-first.patch"), []byte("--- a/src/f.c\n+++ b/src/f.c\n@@ -1,3 +1,4 @@\n "+lines[0]+"\n+first\n "+lines[1]+"\n "+lines[2]+"\n"), 0o644)
	os.WriteFile(filepath.Join(pd, "0002-second.patch"), []byte("--- a/src/f.c\n+++ b/src/f.c\n@@ -1,3 +1,4 @@\n "+lines[0]+"\n first\n+second\n "+lines[1]+"\n"), 0o644)
	os.WriteFile(filepath.Join(pd, "notes.txt"), []byte("not a patch"), 0o644)
	series, err := PatchSeries(pd)
	if err != nil || len(series) != 2 {
		t.Fatalf("PatchSeries: %v %v", series, err)
	}
	if err := ApplySeries(context.Background(), tree, series, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(tree, "src", "f.c"))
	if !strings.HasPrefix(string(got), lines[0]+"\nfirst\nsecond\n") {
		t.Errorf("tree after series:\n%s", got)
	}
	bad := filepath.Join(pd, "0003-bad.patch")
	os.WriteFile(bad, []byte("--- a/src/f.c\n+++ b/src/f.c\n@@ -1,2 +1,3 @@\n "+lines[0]+"\n+ok\n first\n@@ -30,3 +31,4 @@ ctx\n no such line\n+x\n "+lines[30]+"\n "+lines[31]+"\n"), 0o644)
	err = ApplySeries(context.Background(), tree, []string{bad}, nil)
	var pe *PatchError
	if !errors.As(err, &pe) || pe.Hunk == nil || pe.Hunk.Number != 2 || pe.File != "src/f.c" {
		t.Fatalf("bad patch: %v", err)
	}
	for _, s := range []string{"0003-bad.patch", "src/f.c", "hunk #2", "@@ -30,3 +31,4 @@"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not name %q: %v", s, err)
		}
	}
}

func TestPatchSeriesEmpty(t *testing.T) {
	dir := t.TempDir()
	if _, err := PatchSeries(dir); err == nil || !strings.Contains(err.Error(), "no patches in "+dir) {
		t.Errorf("empty series: %v", err)
	}
}

func TestPatchSeriesStacked(t *testing.T) {
	base, top := t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(base, "0002-b.patch"), filepath.Join(base, "0001-a.patch"),
		filepath.Join(base, CoverLetter), filepath.Join(top, "0001-z.patch"), filepath.Join(top, "README.md")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := PatchSeries(base + string(os.PathListSeparator) + top)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(base, "0001-a.patch"), filepath.Join(base, "0002-b.patch"), filepath.Join(top, "0001-z.patch")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stacked series (-want +got):\n%s", diff)
	}
	if _, err := PatchSeries(base + string(os.PathListSeparator) + t.TempDir()); err == nil || !strings.Contains(err.Error(), "no patches in ") {
		t.Errorf("stacked series with an empty directory: %v", err)
	}
}

// TestRealTreePatches applies the test patches to the real trees: the
// trivial ones apply to 18.6 and 15.18, the broken one fails naming its second hunk. It
// downloads the pinned source, so it runs with PGBB_INTEGRATION=1.
func TestRealTreePatches(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") == "" {
		t.Skip("set PGBB_INTEGRATION=1 (make test does) to download the 18.6 source")
	}
	cache := os.Getenv("PGBB_CACHE")
	if cache == "" {
		cache = filepath.Join("..", "..", ".cache")
	}
	r := &Resolver{CacheDir: cache, Log: testLog{t}}
	ctx := context.Background()
	src, err := r.Identify(ctx, 18, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, major := range []int{18, 15} {
		s, err := r.Identify(ctx, major, "")
		if err != nil {
			t.Fatal(err)
		}
		trivial, err := PatchSeries(fmt.Sprintf("testdata/pg%d-trivial", major))
		if err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(t.TempDir(), "trivial")
		if _, err := r.Prepare(ctx, s, trivial, dest); err != nil {
			t.Fatalf("trivial patch on %s: %v", s.Version, err)
		}
		got, err := os.ReadFile(filepath.Join(dest, "src/bin/pg_basebackup/pg_basebackup.c"))
		if err != nil || !strings.Contains(string(got), "pgbb harness test: a trivial patch") {
			t.Fatalf("trivial patch on %s: line missing (%v)", s.Version, err)
		}
	}
	broken, err := PatchSeries("testdata/pg18-broken")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Prepare(ctx, src, broken, filepath.Join(t.TempDir(), "broken"))
	var pe *PatchError
	if !errors.As(err, &pe) || pe.Hunk == nil {
		t.Fatalf("broken patch: %v, want a *PatchError naming a hunk", err)
	}
	t.Logf("broken patch error, as a user sees it:\n%v", err)
	for _, s := range []string{"0001-broken-second-hunk.patch", "src/bin/pg_basebackup/pg_basebackup.c", "hunk #2", "@@ -2348,6 +2349,7 @@"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not name %q", s)
		}
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestPGSRCTarball(t *testing.T) {
	dir := t.TempDir()
	tb := filepath.Join(dir, "postgresql-18.4.tar.gz")
	os.WriteFile(tb, tarGz(t, map[string]string{"postgresql-18.4/configure": "PACKAGE_VERSION='18.4'\n", "postgresql-18.4/README": "hi\n"}), 0o644)
	var log bytes.Buffer
	r := &Resolver{CacheDir: t.TempDir(), Log: &log}
	src, err := r.Identify(context.Background(), 18, tb)
	if err != nil || src.Tarball != tb || len(src.SHA256) != 64 {
		t.Fatalf("Identify: %+v, %v", src, err)
	}
	dest := filepath.Join(dir, "tree")
	ver, err := r.Prepare(context.Background(), src, nil, dest)
	if err != nil || ver != "18.4" || !strings.Contains(log.String(), "pinned release is 18.6") {
		t.Fatalf("Prepare: %q, %v, log %q", ver, err, log.String())
	}
	if _, err := os.Stat(filepath.Join(dest, "README")); err != nil {
		t.Errorf("tree not at dest: %v", err)
	}
	src15, err := r.Identify(context.Background(), 15, tb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prepare(context.Background(), src15, nil, filepath.Join(dir, "tree15")); err == nil || !strings.Contains(err.Error(), "not 15") {
		t.Errorf("18.4 tarball as 15: %v", err)
	}
}

// TestAptRelativeStateDir runs Apt.Download against a fake apt-get with a
// relative state directory, as PGBB_CACHE=.cache gives: `apt-get source`
// runs in a scratch directory, so every path handed to apt must be
// absolute. (A relative one made the real apt read no lists and ask for
// deb-src URIs.)
func TestAptRelativeStateDir(t *testing.T) {
	bin := t.TempDir()
	// The fake checks that the sources file it is given exists from its
	// working directory, then "downloads" the tarball there.
	fake := `#!/bin/sh
for a in "$@"; do
	case "$a" in
	Dir::Etc::SourceList=*)
		f="${a#Dir::Etc::SourceList=}"
		[ -f "$f" ] || { echo "E: You must put some 'deb-src' URIs in your sources.list ($f from $(pwd))"; exit 100; } ;;
	esac
done
case "$*" in
*" source "*) echo tarball > postgresql-18_18.6.orig.tar.bz2 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "apt-get"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	root := t.TempDir()
	t.Chdir(root)
	sources := filepath.Join(root, "host.sources")
	os.WriteFile(sources, []byte("Types: deb\nURIs: http://archive.example/debian\n"), 0o644)
	out := filepath.Join(root, "out")
	os.Mkdir(out, 0o755)

	rel, err := Lookup(18)
	if err != nil {
		t.Fatal(err)
	}
	a := &Apt{StateDir: filepath.Join(".cache", "apt"), HostSources: []string{sources}}
	if err := a.Download(context.Background(), rel, out); err != nil {
		t.Fatalf("Download with a relative state directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, rel.OrigTarball)); err != nil {
		t.Fatalf("tarball not delivered: %v", err)
	}
}
