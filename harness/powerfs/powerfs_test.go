package powerfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountFS mounts a new FS on a temporary directory. The kernel tests need
// root and /dev/fuse. Without them they are skipped, since the model's
// own tests (model_test.go, replay_test.go) need neither; with
// PGBB_INTEGRATION set they fail instead, since the harness depends on
// this layer.
func mountFS(t testing.TB, opts ...Option) (*FS, string) {
	t.Helper()
	missing := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = fmt.Sprintf("powerfs needs the kernel's FUSE device /dev/fuse (in a container: --device /dev/fuse --cap-add SYS_ADMIN): %v", err)
	} else if os.Geteuid() != 0 {
		missing = fmt.Sprintf("powerfs mounts directly with mount(2) and needs root (euid is %d)", os.Geteuid())
	}
	if missing != "" {
		if os.Getenv("PGBB_INTEGRATION") != "" {
			t.Fatal(missing + " (PGBB_INTEGRATION is set)")
		}
		t.Skip(missing + "; set PGBB_INTEGRATION=1 to make this a failure")
	}
	dir := t.TempDir()
	fs := New(opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fs.Mount(ctx, dir); err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := fs.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return fs, dir
}

// write creates (or truncates) a file with data, fsyncing it if asked.
func write(t testing.TB, p string, data []byte, fsync bool) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	if fsync {
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync %s: %v", p, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
}

// fsyncPath opens p read-only (a directory too) and fsyncs it.
func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func mustFsync(t testing.TB, p string) {
	t.Helper()
	if err := fsyncPath(p); err != nil {
		t.Fatalf("fsync %s: %v", p, err)
	}
}

// wantFile fails unless the snapshot holds rel with content want.
func wantFile(t *testing.T, s *Snapshot, rel string, want []byte) {
	t.Helper()
	got, err := s.ReadFile(rel)
	if err != nil {
		t.Fatalf("after power loss %s should be there with %q; durable paths: %v; error: %v", rel, want, s.Paths(), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("after power loss %s holds %q, want %q", rel, got, want)
	}
}

// wantGone fails if the snapshot holds rel.
func wantGone(t *testing.T, s *Snapshot, rel, why string) {
	t.Helper()
	if s.Exists(rel) {
		got, _ := s.ReadFile(rel)
		t.Fatalf("after power loss %s should be gone (%s), but it is there with %q", rel, why, got)
	}
}

func TestUnsyncedFileIsLost(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "f"), []byte("never synced"), false)
	if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(got) != "never synced" {
		t.Fatalf("before power loss the file reads %q, %v", got, err)
	}
	s := fs.PowerLoss()
	wantGone(t, s, "f", "neither the file nor its directory was fsynced")
	// Even with its directory entry durable, unsynced data is lost.
	fs2, dir2 := mountFS(t)
	write(t, filepath.Join(dir2, "g"), []byte("data"), false)
	mustFsync(t, dir2)
	wantFile(t, fs2.PowerLoss(), "g", []byte{})
}

func TestSyncedFileInSyncedDirSurvives(t *testing.T) {
	fs, dir := mountFS(t)
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "d", "f"), []byte("durable"), true)
	mustFsync(t, filepath.Join(dir, "d"))
	mustFsync(t, dir)
	s := fs.PowerLoss()
	wantFile(t, s, "d/f", []byte("durable"))

	out := filepath.Join(t.TempDir(), "out")
	if err := s.Materialise(out); err != nil {
		t.Fatalf("materialise: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(out, "d", "f"))
	if err != nil || string(got) != "durable" {
		t.Fatalf("materialised d/f reads %q, %v", got, err)
	}
	st, err := os.Stat(filepath.Join(out, "d"))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("materialised d: %v, %v (want mode 0700)", st.Mode(), err)
	}
}

func TestSyncedFileInUnsyncedDirIsLost(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "f"), []byte("data synced, entry not"), true)
	wantGone(t, fs.PowerLoss(), "f", "fsync of a file does not make its directory entry durable")

	// A durable file in a directory whose own entry was never synced.
	fs, dir = mountFS(t)
	os.Mkdir(filepath.Join(dir, "d"), 0o700)
	write(t, filepath.Join(dir, "d", "f"), []byte("x"), true)
	mustFsync(t, filepath.Join(dir, "d"))
	wantGone(t, fs.PowerLoss(), "d/f", "d itself was never made durable in the root")
}

func TestRenameWithoutDirFsyncIsLost(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "old"), []byte("content"), true)
	mustFsync(t, dir)
	if err := os.Rename(filepath.Join(dir, "old"), filepath.Join(dir, "new")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err != nil {
		t.Fatalf("before power loss the new name is there: %v", err)
	}
	s := fs.PowerLoss()
	wantFile(t, s, "old", []byte("content"))
	wantGone(t, s, "new", "the rename's directory was not fsynced")

	// The usual temporary-file dance without the final directory fsync:
	// the old status comes back.
	fs, dir = mountFS(t)
	write(t, filepath.Join(dir, "status"), []byte("in progress"), true)
	mustFsync(t, dir)
	write(t, filepath.Join(dir, "status.tmp"), []byte("completed"), true)
	if err := os.Rename(filepath.Join(dir, "status.tmp"), filepath.Join(dir, "status")); err != nil {
		t.Fatal(err)
	}
	s = fs.PowerLoss()
	wantFile(t, s, "status", []byte("in progress"))
	wantGone(t, s, "status.tmp", "its creation was never made durable")
}

func TestRenameWithDirFsyncSurvives(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "status"), []byte("in progress"), true)
	mustFsync(t, dir)
	write(t, filepath.Join(dir, "status.tmp"), []byte("completed"), true)
	if err := os.Rename(filepath.Join(dir, "status.tmp"), filepath.Join(dir, "status")); err != nil {
		t.Fatal(err)
	}
	mustFsync(t, dir)
	s := fs.PowerLoss()
	wantFile(t, s, "status", []byte("completed"))
	wantGone(t, s, "status.tmp", "it was renamed and the directory fsynced")

	// Between directories: both must be fsynced.
	fs, dir = mountFS(t)
	os.Mkdir(filepath.Join(dir, "a"), 0o755)
	os.Mkdir(filepath.Join(dir, "b"), 0o755)
	write(t, filepath.Join(dir, "a", "f"), []byte("moved"), true)
	mustFsync(t, filepath.Join(dir, "a"))
	mustFsync(t, dir)
	if err := os.Rename(filepath.Join(dir, "a", "f"), filepath.Join(dir, "b", "f")); err != nil {
		t.Fatal(err)
	}
	mustFsync(t, filepath.Join(dir, "b"))
	mustFsync(t, filepath.Join(dir, "a"))
	s = fs.PowerLoss()
	wantFile(t, s, "b/f", []byte("moved"))
	wantGone(t, s, "a/f", "both directories were fsynced after the rename")
}

func TestUnlinkWithoutDirFsyncComesBack(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "f"), []byte("still here"), true)
	mustFsync(t, dir)
	if err := os.Remove(filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fs.PowerLoss(), "f", []byte("still here"))
}

func TestLaterWritesWithoutFsyncAreLost(t *testing.T) {
	fs, dir := mountFS(t)
	p := filepath.Join(dir, "f")
	write(t, p, []byte("first version"), true)
	mustFsync(t, dir)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("FIRST"), 0)
	f.Write([]byte(" and more"))
	f.Close()
	wantFile(t, fs.PowerLoss(), "f", []byte("first version"))
}

func TestFsyncEIONeverRetriedIntoSuccess(t *testing.T) {
	fs, dir := mountFS(t)
	p := filepath.Join(dir, "f")
	write(t, p, []byte("old"), true)
	mustFsync(t, dir)
	fs.SetRules(Rule{Op: OpFsync, Path: "f", Nth: 1, Times: 1})

	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("lost data")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("first fsync: got %v, want EIO", err)
	}
	// As on Linux after a write-back error: the retry succeeds, and the
	// data it was meant to save is gone for good.
	if err := f.Sync(); err != nil {
		t.Fatalf("second fsync: %v (Linux reports the error once)", err)
	}
	if got := fs.RuleHits(); !slices.Equal(got, []int{1}) {
		t.Fatalf("rule hits %v, want [1]", got)
	}
	s := fs.Durable()
	if got, _ := s.ReadFile("f"); bytes.Contains(got, []byte("lost data")) {
		t.Fatalf("a failed fsync was retried into success: durable f holds %q", got)
	}
	// Data written after the error is made durable by the next fsync,
	// over the old content: the dropped bytes stay old (or zero).
	if _, err := f.WriteAt([]byte("L"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, _ := fs.PowerLoss().ReadFile("f")
	if want := []byte("Lld\x00\x00\x00\x00\x00\x00"); !bytes.Equal(got, want) {
		t.Fatalf("durable f holds %q, want %q (new byte, old bytes, zeros for the dropped range)", got, want)
	}
}

func TestFsyncDirEIODropsEntries(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "f"), []byte("x"), true)
	fs.SetRules(Rule{Op: OpFsyncDir, Nth: 1, Times: 1})
	if err := fsyncPath(dir); !errors.Is(err, syscall.EIO) {
		t.Fatalf("directory fsync: got %v, want EIO", err)
	}
	if err := fsyncPath(dir); err != nil {
		t.Fatalf("second directory fsync: %v", err)
	}
	wantGone(t, fs.Durable(), "f", "its entry was dropped by the failed directory fsync")
	// A change after the error is synced by the next directory fsync.
	write(t, filepath.Join(dir, "g"), []byte("y"), true)
	mustFsync(t, dir)
	s := fs.PowerLoss()
	wantGone(t, s, "f", "its entry was dropped")
	wantFile(t, s, "g", []byte("y"))
}

func TestEIOOnOpenForWrite(t *testing.T) {
	fs, dir := mountFS(t)
	os.MkdirAll(filepath.Join(dir, "base", "1"), 0o700)
	for _, n := range []string{"1259", "2608", "3600_fsm"} {
		write(t, filepath.Join(dir, "base", "1", n), []byte(n), false)
	}
	fs.SetRules(Rule{Op: OpOpen, Path: "base/1/2608", ForWrite: true})
	if b, err := os.ReadFile(filepath.Join(dir, "base", "1", "2608")); err != nil || string(b) != "2608" {
		t.Fatalf("a read-only open must pass: %q, %v", b, err)
	}
	_, err := os.OpenFile(filepath.Join(dir, "base", "1", "2608"), os.O_RDWR, 0)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("open O_RDWR: got %v, want EIO", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "base", "1", "1259"), os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("another file's open must pass: %v", err)
	}
	f.Close()
	// Nth open for write, any path.
	fs.SetRules(Rule{Op: OpOpen, ForWrite: true, Nth: 2, Times: 1})
	var errs []bool
	for _, n := range []string{"1259", "2608", "3600_fsm"} {
		f, err := os.OpenFile(filepath.Join(dir, "base", "1", n), os.O_RDWR, 0)
		errs = append(errs, err != nil)
		if err == nil {
			f.Close()
		}
	}
	if !slices.Equal(errs, []bool{false, true, false}) {
		t.Fatalf("failed opens %v, want only the second", errs)
	}
}

func TestEIOOnRename(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "a.tmp"), []byte("x"), true)
	fs.AddRule(Rule{Op: OpRename, Path: "a"})
	err := os.Rename(filepath.Join(dir, "a.tmp"), filepath.Join(dir, "a"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("rename: got %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.tmp")); err != nil {
		t.Fatalf("a failed rename must leave the source: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed rename must not make the target: %v", err)
	}
}

func TestENOSPCAtBytes(t *testing.T) {
	fs, dir := mountFS(t)
	fs.SetSpaceLimit(10000)
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 8000)); err != nil {
		t.Fatalf("write under the limit: %v", err)
	}
	n, err := f.Write(make([]byte, 4000))
	if n != 2000 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write across the limit: %d bytes, %v; want 2000 bytes, ENOSPC", n, err)
	}
	if _, err := f.Write([]byte{1}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write at the limit: %v, want ENOSPC", err)
	}
	if got := fs.Written(); got != 10000 {
		t.Fatalf("written %d, want 10000", got)
	}
	st, _ := f.Stat()
	if st.Size() != 10000 {
		t.Fatalf("size %d, want 10000", st.Size())
	}
}

func TestCrashPointBeforeAndAfter(t *testing.T) {
	fs, dir := mountFS(t)
	fs.SetCrashPoints(CrashPoint{Op: OpFsync, N: 2})
	write(t, filepath.Join(dir, "a"), []byte("a"), true)
	mustFsync(t, dir)
	f, _ := os.Create(filepath.Join(dir, "b"))
	f.Write([]byte("b"))
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync at the crash point: %v, want EIO", err)
	}
	f.Close()
	select {
	case <-fs.Crashed():
	default:
		t.Fatal("Crashed() not closed at the crash point")
	}
	op, ok := fs.CrashOp()
	if !ok || op.Kind != OpFsync || op.N != 2 || op.Crash != "before" || op.Path != "b" {
		t.Fatalf("crash op %v, %v", op, ok)
	}
	if err := os.WriteFile(filepath.Join(dir, "c"), []byte("c"), 0o600); !errors.Is(err, syscall.EIO) {
		t.Fatalf("after the power loss every operation fails with EIO, got %v", err)
	}
	s := fs.PowerLoss()
	wantFile(t, s, "a", []byte("a"))
	wantGone(t, s, "b", "the power went before its fsync")

	// After: the rename happens and its directory fsync is the crash point.
	fs, dir = mountFS(t)
	fs.SetCrashPoints(CrashPoint{Op: OpFsyncDir, N: 2, After: true})
	write(t, filepath.Join(dir, "s"), []byte("1"), true)
	mustFsync(t, dir)
	write(t, filepath.Join(dir, "s.tmp"), []byte("2"), true)
	os.Rename(filepath.Join(dir, "s.tmp"), filepath.Join(dir, "s"))
	if err := fsyncPath(dir); err != nil {
		t.Fatalf("the crash-after operation itself succeeds: %v", err)
	}
	<-fs.Crashed()
	wantFile(t, fs.PowerLoss(), "s", []byte("2"))
}

func TestOpLogCounts(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "x.tmp"), []byte("hello"), true)
	os.Rename(filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x"))
	mustFsync(t, dir)
	os.Remove(filepath.Join(dir, "x"))
	want := map[string]int{"create": 1, "write": 1, "fsync": 1, "rename": 1, "fsyncdir": 1, "unlink": 1}
	got := fs.Counts()
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("counts %v, want at least %v", got, want)
		}
	}
	var kinds []string
	for i, op := range fs.Log() {
		if op.Seq != i+1 {
			t.Fatalf("op %d has seq %d", i, op.Seq)
		}
		if op.Kind != OpOpen {
			kinds = append(kinds, op.Kind.String()+" "+op.Path)
		}
	}
	wantKinds := []string{"create x.tmp", "write x.tmp", "fsync x.tmp", "rename x.tmp", "fsyncdir .", "unlink x"}
	if !slices.Equal(kinds, wantKinds) {
		t.Fatalf("log %q, want %q", kinds, wantKinds)
	}
}

func TestTornStates(t *testing.T) {
	fs, dir := mountFS(t)
	fs.TrackTorn("backup_status", "backup_status.tmp")
	st, tmp := filepath.Join(dir, "backup_status"), filepath.Join(dir, "backup_status.tmp")
	write(t, filepath.Join(dir, "data"), []byte("other"), true)
	write(t, tmp, []byte("state=in progress\n"), true)
	if err := os.Rename(tmp, st); err != nil {
		t.Fatal(err)
	}
	mustFsync(t, dir)
	write(t, tmp, []byte("state=completed\n"), true)
	if err := os.Rename(tmp, st); err != nil {
		t.Fatal(err)
	}
	mustFsync(t, dir)

	states := fs.TornStates()
	var prefixes, unrenamed int
	for _, s := range states {
		switch s.Kind {
		case "prefix":
			prefixes++
		case "unrenamed":
			unrenamed++
		}
	}
	if want := len("state=in progress\n") + len("state=completed\n"); prefixes != want {
		t.Fatalf("%d prefix states, want %d (every prefix of each write)", prefixes, want)
	}
	if unrenamed != 2 {
		t.Fatalf("%d unrenamed states, want 2", unrenamed)
	}
	// The 7-byte prefix of the second write, over an empty new file.
	var found *TornState
	for i := range states {
		s := &states[i]
		if s.Kind == "prefix" && s.Prefix == 7 && strings.HasPrefix(string(s.Content), "state=c") {
			found = s
		}
	}
	if found == nil || string(found.Content) != "state=c" || found.Path != "backup_status.tmp" {
		t.Fatalf("no 7-byte torn prefix of the completed write: %+v", found)
	}
	// Its base: the first status is durable under its final name.
	wantFile(t, found.Base, "backup_status", []byte("state=in progress\n"))
	out := filepath.Join(t.TempDir(), "torn")
	if err := found.Materialise(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "backup_status.tmp"))
	if err != nil || string(b) != "state=c" {
		t.Fatalf("materialised torn file reads %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "backup_status")); string(b) != "state=in progress\n" {
		t.Fatalf("materialised status reads %q", b)
	}
	// The last unrenamed state: the completed temporary file, the old status.
	last := states[len(states)-1]
	if last.Kind != "unrenamed" || string(last.Content) != "state=completed\n" {
		t.Fatalf("last state %v: %q", last, last.Content)
	}
	wantFile(t, last.Base, "backup_status", []byte("state=in progress\n"))
}

func TestHardLinksAndSymlinksMaterialise(t *testing.T) {
	fs, dir := mountFS(t)
	write(t, filepath.Join(dir, "f"), []byte("shared"), true)
	if err := os.Link(filepath.Join(dir, "f"), filepath.Join(dir, "g")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "l")); err != nil || target != "f" {
		t.Fatalf("readlink: %q, %v", target, err)
	}
	mustFsync(t, dir)
	out := filepath.Join(t.TempDir(), "out")
	if err := fs.PowerLoss().Materialise(out); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(out, "f"))
	b, _ := os.Stat(filepath.Join(out, "g"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Fatalf("f and g should be one inode after materialising: %v %v", a, b)
	}
	if target, err := os.Readlink(filepath.Join(out, "l")); err != nil || target != "f" {
		t.Fatalf("materialised symlink: %q, %v", target, err)
	}
}

func TestMkdirAllIsDurable(t *testing.T) {
	fs := New(Owner(65534, 65534))
	if err := fs.MkdirAll("target/sub", 0o700); err != nil {
		t.Fatal(err)
	}
	s := fs.PowerLoss()
	if !s.Exists("target/sub") {
		t.Fatalf("MkdirAll directories must be durable: %v", s.Paths())
	}
	if err := fs.MkdirAll("../x", 0o700); err == nil {
		t.Fatal("MkdirAll accepted ..")
	}
}

func TestSpans(t *testing.T) {
	var s spans
	s = s.add(10, 20)
	s = s.add(30, 40)
	s = s.add(15, 31)
	s = s.add(0, 2)
	if want := (spans{{0, 2}, {10, 40}}); !slices.Equal(s, want) {
		t.Fatalf("spans %v, want %v", s, want)
	}
	s = s.add(2, 10)
	if want := (spans{{0, 40}}); !slices.Equal(s, want) || !s.covers(40) || s.covers(41) {
		t.Fatalf("spans %v, want %v", s, want)
	}
	if c := s.clip(5); !slices.Equal(c, spans{{0, 5}}) {
		t.Fatalf("clip: %v", c)
	}
}
