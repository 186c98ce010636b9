package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseVariant(t *testing.T) {
	for _, s := range []string{"stock", "patched"} {
		if v, err := ParseVariant(s); err != nil || string(v) != s {
			t.Errorf("ParseVariant(%q) = %q, %v", s, v, err)
		}
	}
	_, err := ParseVariant("fancy")
	if err == nil || !strings.Contains(err.Error(), "supported variants are stock, patched") {
		t.Errorf("unknown variant: %v", err)
	}
}

func TestSpecValidate(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Major: 17, Variant: Stock}, "supported versions are 18, 15"},
		{Spec{Major: 18, Variant: "x"}, "supported variants are stock, patched"},
		{Spec{Major: 18, Variant: Stock, PatchDir: "p"}, "takes no patch directory"},
	} {
		if err := c.spec.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
	if err := (Spec{Major: 15, Variant: Patched}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestKeyDependsOnEveryInput(t *testing.T) {
	dir := t.TempDir()
	p1 := filepath.Join(dir, "0001-a.patch")
	p2 := filepath.Join(dir, "0002-b.patch")
	os.WriteFile(p1, []byte("a"), 0o644)
	os.WriteFile(p2, []byte("b"), 0o644)
	spec := Spec{Major: 18, Variant: Patched}
	base, _ := Key(spec, "src", []string{p1, p2}, "configure=x")
	same, _ := Key(spec, "src", []string{p1, p2}, "configure=x")
	if base != same {
		t.Fatal("key is not deterministic")
	}
	keys := map[string]string{"base": base}
	keys["major"], _ = Key(Spec{Major: 15, Variant: Patched}, "src", []string{p1, p2}, "configure=x")
	keys["source"], _ = Key(spec, "src2", []string{p1, p2}, "configure=x")
	keys["order"], _ = Key(spec, "src", []string{p2, p1}, "configure=x")
	keys["extra"], _ = Key(spec, "src", []string{p1, p2}, "configure=y")
	os.WriteFile(p2, []byte("c"), 0o644)
	keys["content"], _ = Key(spec, "src", []string{p1, p2}, "configure=x")
	seen := map[string]string{}
	for name, k := range keys {
		if other, ok := seen[k]; ok {
			t.Errorf("%s and %s give the same key", name, other)
		}
		seen[k] = name
	}
}

func TestUnknownBackend(t *testing.T) {
	_, err := New(context.Background(), WithRepoRoot(t.TempDir()), WithBackend("vm"))
	if err == nil || !strings.Contains(err.Error(), "supported backends are auto, container, native") {
		t.Errorf("New with backend vm: %v", err)
	}
}

func TestPatchedBuildWithEmptySeriesFails(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "go.mod"), []byte("module github.com/pgbb/pgbb\n"), 0o644)
	empty := filepath.Join(root, "patches", "pg18")
	os.MkdirAll(empty, 0o755)
	b, err := New(context.Background(), WithRepoRoot(root), WithBackend(BackendNative))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Build(context.Background(), Spec{Major: 18, Variant: Patched})
	if err == nil || !strings.Contains(err.Error(), "no patches in "+empty) {
		t.Errorf("patched build with an empty series: %v", err)
	}
}

func TestCheckTAPLog(t *testing.T) {
	suites := DefaultTAPSuites()
	if err := checkTAPLog("TAP tests not enabled. Use --enable-tap-tests\n", suites); err == nil {
		t.Error(`"TAP tests not enabled" accepted`)
	}
	if err := checkTAPLog("All tests successful.\n", suites); err == nil {
		t.Error("one suite's success accepted for two")
	}
	if err := checkTAPLog("All tests successful.\nAll tests successful.\n", suites); err != nil {
		t.Error(err)
	}
}

func TestFindRepoRoot(t *testing.T) {
	root, err := FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Dockerfile.pgbuild")); err != nil {
		t.Errorf("repo root %s has no Dockerfile.pgbuild", root)
	}
}

func TestStepFilter(t *testing.T) {
	var out strings.Builder
	f := &stepFilter{w: &out, prefix: "> "}
	f.Write([]byte("Step 1/2 : FROM x\nnoise\nSte"))
	f.Write([]byte("p 2/2 : RUN y\n"))
	if got, want := out.String(), "> Step 1/2 : FROM x\n> Step 2/2 : RUN y\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDemux(t *testing.T) {
	frame := func(stream byte, s string) []byte {
		n := len(s)
		return append([]byte{stream, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, s...)
	}
	in := append(frame(1, "out\n"), frame(2, "err\n")...)
	var out strings.Builder
	if err := demux(&out, strings.NewReader(string(in))); err != nil || out.String() != "out\nerr\n" {
		t.Errorf("demux = %q, %v", out.String(), err)
	}
}

func TestMissingDepsNotRootNamesPackages(t *testing.T) {
	if _, err := os.Stat("/usr/bin/dpkg-query"); err != nil {
		t.Skip("not a Debian host")
	}
	err := ensureDebsAs(context.Background(), &logger{}, "build dependencies of the native build", []string{"make", "pgbb-no-such-package"}, false)
	if err == nil || !strings.Contains(err.Error(), "apt-get install pgbb-no-such-package") || strings.Contains(err.Error(), "install make") {
		t.Errorf("missing package, not root: %v", err)
	}
}

// TestNoEngine: a forced container backend without an engine is an error;
// auto falls back to native and says so.
func TestNoEngine(t *testing.T) {
	root, err := FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	noEngine := func(c *Config) {
		c.engineErr = errors.New("dial unix /var/run/docker.sock: connect: no such file or directory")
	}
	_, err = New(context.Background(), WithRepoRoot(root), WithBackend(BackendContainer), noEngine)
	if err == nil || !strings.Contains(err.Error(), "backend container (forced): docker engine does not answer") {
		t.Errorf("forced container without an engine: %v", err)
	}
	var log strings.Builder
	b, err := New(context.Background(), WithRepoRoot(root), WithBackend(BackendAuto), WithLog(&log), noEngine)
	if err != nil || b.Backend() != BackendNative || !strings.Contains(log.String(), "backend: native (auto: no Docker engine") {
		t.Errorf("auto without an engine: %v, log %q", err, log.String())
	}
}

func TestLockBuildExcludes(t *testing.T) {
	var log strings.Builder
	b := &Builder{cfg: Config{cacheDir: t.TempDir()}, log: &logger{&log}}
	unlock, err := b.lockBuild(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := b.lockBuild(ctx, "x"); err == nil {
		t.Fatal("second lock taken while the first is held")
	}
	if !strings.Contains(log.String(), "waiting for another harness process") {
		t.Errorf("no waiting message: %q", log.String())
	}
	unlock()
	unlock2, err := b.lockBuild(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}

// TestRelocateTree: a copied build tree names its new directory in
// src/Makefile.global and config.status, and config.status keeps its time
// (a newer one would make make regenerate the configuration).
func TestRelocateTree(t *testing.T) {
	tree := t.TempDir()
	from, to := "/cache/pg/18-patched-aaaa", "/cache/pg/18-patched-bbbb"
	global := "prefix := " + from + "/install\nabs_top_builddir = " + from + "/src\nother := " + from + "-x\n"
	if err := os.MkdirAll(filepath.Join(tree, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "src/Makefile.global"), []byte(global), 0o644); err != nil {
		t.Fatal(err)
	}
	status := filepath.Join(tree, "config.status")
	if err := os.WriteFile(status, []byte("S[\"prefix\"]=\""+from+"/install\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"src/bin/prog": "\x7fELF prog", "src/lib/libx.so.5.18": "\x7fELF lib", "src/bin/prog.o": "\x7fELF obj", "src/bin/script": "#!/bin/sh"}
	for name, data := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, name)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(status, old, old); err != nil {
		t.Fatal(err)
	}
	if err := relocateTree(tree, from, to); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(tree, "src/Makefile.global"))
	want := "prefix := " + to + "/install\nabs_top_builddir = " + to + "/src\nother := " + from + "-x\n"
	if string(got) != want {
		t.Errorf("Makefile.global:\n%s\nwant:\n%s", got, want)
	}
	if st, _ := os.Stat(status); !st.ModTime().Equal(old) {
		t.Errorf("config.status time changed to %s", st.ModTime())
	}
	for name, gone := range map[string]bool{"src/bin/prog": true, "src/lib/libx.so.5.18": true, "src/bin/prog.o": false, "src/bin/script": false} {
		if _, err := os.Stat(filepath.Join(tree, name)); os.IsNotExist(err) != gone {
			t.Errorf("%s: removed %t, want %t (linked programs and libraries go, objects and scripts stay)", name, !gone, gone)
		}
	}
	if err := relocateTree(tree, "/elsewhere", to); err == nil {
		t.Error("a tree that does not name the old directory must be an error")
	}
}
