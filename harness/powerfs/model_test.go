package powerfs

import (
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// The model's tests call it directly: no mount, no root, no /dev/fuse.

// model drives an FS by path, as a program on the mount would.
type model struct {
	t  testing.TB
	fs *FS
	c  Caller
}

func newModel(t testing.TB, opts ...Option) *model {
	return &model{t: t, fs: New(opts...), c: Caller{PID: 42, UID: 1000, GID: 1000}}
}

// resolve returns the inode of a path, 0 when it does not exist.
func (m *model) resolve(p string) uint64 {
	ino := RootIno
	for _, el := range strings.Split(path.Clean(p), "/") {
		if el == "." || el == "" {
			continue
		}
		a, e := m.fs.Lookup(ino, el)
		if e != 0 {
			return 0
		}
		ino = a.Ino
	}
	return ino
}

// parent returns the inode of p's directory and p's base name.
func (m *model) parent(p string) (uint64, string) {
	m.t.Helper()
	dir := m.resolve(path.Dir(p))
	if dir == 0 {
		m.t.Fatalf("no directory %s", path.Dir(p))
	}
	return dir, path.Base(p)
}

func (m *model) must(what string, e syscall.Errno) {
	m.t.Helper()
	if e != 0 {
		m.t.Fatalf("%s: %v", what, e)
	}
}

// write creates (or truncates) p with data, fsyncing it if asked.
func (m *model) write(p string, data []byte, fsync bool) {
	m.t.Helper()
	ino := m.resolve(p)
	if ino == 0 {
		dir, name := m.parent(p)
		a, e := m.fs.Create(m.c, dir, name, 0o600)
		m.must("create "+p, e)
		ino = a.Ino
	} else {
		m.must("open "+p, m.fs.Open(m.c, ino, syscall.O_WRONLY|syscall.O_TRUNC))
	}
	_, e := m.fs.Write(m.c, ino, 0, data)
	m.must("write "+p, e)
	if fsync {
		m.must("fsync "+p, m.fs.Fsync(m.c, ino))
	}
}

func (m *model) fsync(p string) syscall.Errno { return m.fs.Fsync(m.c, m.resolve(p)) }

func (m *model) mkdir(p string) {
	m.t.Helper()
	dir, name := m.parent(p)
	_, e := m.fs.Mkdir(m.c, dir, name, 0o700)
	m.must("mkdir "+p, e)
}

func (m *model) rename(from, to string) syscall.Errno {
	m.t.Helper()
	d1, n1 := m.parent(from)
	d2, n2 := m.parent(to)
	return m.fs.Rename(m.c, d1, n1, d2, n2, 0)
}

func TestModelWhatSurvivesAPowerLoss(t *testing.T) {
	m := newModel(t)
	m.write("unsynced", []byte("never synced"), false)
	m.write("dataonly", []byte("data synced, entry not"), true)
	m.mkdir("d")
	m.write("d/f", []byte("durable"), true)
	m.must("fsync d", m.fsync("d"))
	m.must("fsync .", m.fsync("."))
	m.write("later", []byte("x"), false)
	s := m.fs.PowerLoss()
	wantFile(t, s, "d/f", []byte("durable"))
	wantFile(t, s, "unsynced", []byte{})
	wantFile(t, s, "dataonly", []byte("data synced, entry not"))
	wantGone(t, s, "later", "created after the last directory fsync")
	if e := m.fs.Fsync(m.c, RootIno); e != syscall.EIO {
		t.Fatalf("after the power loss an fsync returns %v, want EIO", e)
	}
	if m.fs.Refused() != 1 {
		t.Fatalf("refused %d, want 1", m.fs.Refused())
	}
}

func TestModelRenameAndUnlinkNeedTheDirectory(t *testing.T) {
	m := newModel(t)
	m.write("status", []byte("in progress"), true)
	m.must("fsync .", m.fsync("."))
	m.write("status.tmp", []byte("completed"), true)
	m.must("rename", m.rename("status.tmp", "status"))
	s := m.fs.Durable()
	wantFile(t, s, "status", []byte("in progress"))
	wantGone(t, s, "status.tmp", "its creation was never made durable")
	m.must("fsync .", m.fsync("."))
	wantFile(t, m.fs.Durable(), "status", []byte("completed"))

	dir, name := m.parent("status")
	m.must("unlink", m.fs.Unlink(m.c, dir, name))
	wantFile(t, m.fs.Durable(), "status", []byte("completed"))

	// Between directories: each side needs its own fsync.
	m.mkdir("a")
	m.mkdir("b")
	m.write("a/f", []byte("moved"), true)
	m.must("fsync a", m.fsync("a"))
	m.must("fsync .", m.fsync("."))
	m.must("rename", m.rename("a/f", "b/f"))
	m.must("fsync b", m.fsync("b"))
	s = m.fs.Durable()
	wantFile(t, s, "a/f", []byte("moved"))
	wantFile(t, s, "b/f", []byte("moved"))
	m.must("fsync a", m.fsync("a"))
	wantGone(t, m.fs.Durable(), "a/f", "both directories were fsynced")
}

func TestModelRenameErrors(t *testing.T) {
	m := newModel(t)
	m.mkdir("d")
	m.write("d/x", nil, false)
	m.write("f", nil, false)
	m.write("g", nil, false)
	root := RootIno
	d := m.resolve("d")
	for _, c := range []struct {
		name         string
		from, to     string
		flags        uint32
		want         syscall.Errno
		fromD, toDir uint64
	}{
		{"missing source", "nope", "f", 0, syscall.ENOENT, root, root},
		{"no replace", "f", "g", RenameNoReplace, syscall.EEXIST, root, root},
		{"exchange", "f", "g", 2, syscall.EINVAL, root, root},
		{"file over directory", "f", "d", 0, syscall.EISDIR, root, root},
		{"directory over file", "d", "f", 0, syscall.ENOTDIR, root, root},
	} {
		if e := m.fs.Rename(m.c, c.fromD, c.from, c.toDir, c.to, c.flags); e != c.want {
			t.Errorf("%s: %v, want %v", c.name, e, c.want)
		}
	}
	m.mkdir("e")
	if e := m.fs.Rename(m.c, root, "e", root, "d", 0); e != syscall.ENOTEMPTY {
		t.Errorf("directory over a non-empty one: %v", e)
	}
	if e := m.fs.Rmdir(m.c, root, "d"); e != syscall.ENOTEMPTY {
		t.Errorf("rmdir of a non-empty directory: %v", e)
	}
	if e := m.fs.Unlink(m.c, root, "d"); e != syscall.EISDIR {
		t.Errorf("unlink of a directory: %v", e)
	}
	if e := m.fs.Rmdir(m.c, root, "f"); e != syscall.ENOTDIR {
		t.Errorf("rmdir of a file: %v", e)
	}
	if _, e := m.fs.Link(m.c, d, root, "dl"); e != syscall.EPERM {
		t.Errorf("hard link to a directory: %v", e)
	}
	if _, e := m.fs.Create(m.c, root, "f", 0o600); e != syscall.EEXIST {
		t.Errorf("create over a file: %v", e)
	}
	m.must("rmdir e", m.fs.Rmdir(m.c, root, "e"))
	m.must("same inode", m.fs.Rename(m.c, root, "f", root, "f", 0))
}

func TestModelFsyncEIONeverRetriedIntoSuccess(t *testing.T) {
	m := newModel(t)
	m.write("f", []byte("old"), true)
	m.must("fsync .", m.fsync("."))
	m.fs.SetRules(Rule{Op: OpFsync, Path: "f", Nth: 1, Times: 1})
	ino := m.resolve("f")
	m.must("open", m.fs.Open(m.c, ino, syscall.O_WRONLY|syscall.O_TRUNC))
	if _, e := m.fs.Write(m.c, ino, 0, []byte("lost data")); e != 0 {
		t.Fatal(e)
	}
	if e := m.fs.Fsync(m.c, ino); e != syscall.EIO {
		t.Fatalf("first fsync: %v, want EIO", e)
	}
	m.must("second fsync", m.fs.Fsync(m.c, ino))
	if got, _ := m.fs.Durable().ReadFile("f"); bytes.Contains(got, []byte("lost data")) {
		t.Fatalf("a failed fsync was retried into success: %q", got)
	}
	m.fs.Write(m.c, ino, 0, []byte("L"))
	m.must("fsync", m.fs.Fsync(m.c, ino))
	wantFile(t, m.fs.PowerLoss(), "f", []byte("Lld\x00\x00\x00\x00\x00\x00"))
}

func TestModelFsyncDirEIODropsEntries(t *testing.T) {
	m := newModel(t)
	m.write("f", []byte("x"), true)
	m.fs.SetRules(Rule{Op: OpFsyncDir, Nth: 1, Times: 1})
	if e := m.fsync("."); e != syscall.EIO {
		t.Fatalf("directory fsync: %v, want EIO", e)
	}
	m.must("second directory fsync", m.fsync("."))
	wantGone(t, m.fs.Durable(), "f", "its entry was dropped by the failed directory fsync")
	m.write("g", []byte("y"), true)
	m.must("fsync .", m.fsync("."))
	s := m.fs.PowerLoss()
	wantGone(t, s, "f", "its entry was dropped")
	wantFile(t, s, "g", []byte("y"))
}

func TestModelRulesOnOpen(t *testing.T) {
	m := newModel(t)
	m.write("a", nil, false)
	m.fs.SetRules(Rule{Op: OpOpen, Path: "a", ForWrite: true})
	ino := m.resolve("a")
	m.must("read-only open", m.fs.Open(m.c, ino, syscall.O_RDONLY))
	if e := m.fs.Open(m.c, ino, syscall.O_RDWR); e != syscall.EIO {
		t.Fatalf("open for write: %v, want EIO", e)
	}
	if e := m.fs.Open(m.c, RootIno, syscall.O_RDWR); e != syscall.EISDIR {
		t.Fatalf("a directory opened for write: %v", e)
	}
	if got := m.fs.RuleHits(); !slices.Equal(got, []int{1}) {
		t.Fatalf("rule hits %v", got)
	}
}

func TestModelENOSPC(t *testing.T) {
	m := newModel(t)
	m.fs.SetSpaceLimit(10000)
	a, _ := m.fs.Create(m.c, RootIno, "f", 0o600)
	if k, e := m.fs.Write(m.c, a.Ino, 0, make([]byte, 8000)); k != 8000 || e != 0 {
		t.Fatalf("under the limit: %d, %v", k, e)
	}
	if k, e := m.fs.Write(m.c, a.Ino, 8000, make([]byte, 4000)); k != 2000 || e != 0 {
		t.Fatalf("across the limit: %d, %v (the kernel turns the short write into ENOSPC)", k, e)
	}
	if k, e := m.fs.Write(m.c, a.Ino, 10000, []byte{1}); k != 0 || e != syscall.ENOSPC {
		t.Fatalf("at the limit: %d, %v", k, e)
	}
	st, _ := m.fs.StatFs()
	if st.Bfree != 0 || st.Blocks != 10000/4096 {
		t.Fatalf("statfs %+v", st)
	}
	if at, _ := m.fs.GetAttr(a.Ino); at.Size != 10000 {
		t.Fatalf("size %d", at.Size)
	}
}

func TestModelCrashPoints(t *testing.T) {
	m := newModel(t)
	m.fs.SetCrashPoints(CrashPoint{Op: OpFsync, N: 2})
	m.write("a", []byte("a"), true)
	m.must("fsync .", m.fsync("."))
	b, _ := m.fs.Create(m.c, RootIno, "b", 0o600)
	m.fs.Write(m.c, b.Ino, 0, []byte("b"))
	if e := m.fs.Fsync(m.c, b.Ino); e != syscall.EIO {
		t.Fatalf("fsync at the crash point: %v", e)
	}
	<-m.fs.Crashed()
	if op, ok := m.fs.CrashOp(); !ok || op.Crash != "before" || op.Path != "b" {
		t.Fatalf("crash op %v", op)
	}
	s := m.fs.PowerLoss()
	wantFile(t, s, "a", []byte("a"))
	wantGone(t, s, "b", "the power went before its fsync")

	m = newModel(t)
	m.fs.SetCrashPoints(CrashPoint{Op: OpFsyncDir, N: 2, After: true})
	m.write("s", []byte("1"), true)
	m.must("fsync .", m.fsync("."))
	m.write("s.tmp", []byte("2"), true)
	m.must("rename", m.rename("s.tmp", "s"))
	m.must("the crash-after operation itself", m.fsync("."))
	<-m.fs.Crashed()
	wantFile(t, m.fs.PowerLoss(), "s", []byte("2"))
}

func TestModelAttributesDurableWithTheInode(t *testing.T) {
	m := newModel(t, Owner(7, 8), RootMode(0o750))
	m.write("f", []byte("x"), true)
	m.must("fsync .", m.fsync("."))
	mode, uid := uint32(0o640), uint32(9)
	size := uint64(4)
	a, e := m.fs.SetAttr(m.c, m.resolve("f"), AttrChange{Mode: &mode, UID: &uid, Size: &size})
	m.must("setattr", e)
	if a.Mode != syscall.S_IFREG|0o640 || a.UID != 9 || a.Size != 4 {
		t.Fatalf("attributes %+v", a)
	}
	out := filepath.Join(t.TempDir(), "before")
	if err := m.fs.Durable().Materialise(out); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(out, "f")); st.Mode().Perm() != 0o600 || st.Size() != 1 {
		t.Fatalf("before the fsync: %v %d", st.Mode(), st.Size())
	}
	m.must("fsync", m.fsync("f"))
	out = filepath.Join(t.TempDir(), "after")
	if err := m.fs.Durable().Materialise(out); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(out, "f")); st.Mode().Perm() != 0o640 || st.Size() != 4 {
		t.Fatalf("after the fsync: %v %d", st.Mode(), st.Size())
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o750 {
		t.Fatalf("root mode %v", st.Mode())
	}
}

func TestModelLinksSymlinksListingsReads(t *testing.T) {
	m := newModel(t)
	m.write("f", []byte("shared"), true)
	f := m.resolve("f")
	if _, e := m.fs.Link(m.c, f, RootIno, "g"); e != 0 {
		t.Fatal(e)
	}
	if _, e := m.fs.Symlink(m.c, RootIno, "l", "f"); e != 0 {
		t.Fatal(e)
	}
	if tgt, e := m.fs.Readlink(m.resolve("l")); tgt != "f" || e != 0 {
		t.Fatalf("readlink %q %v", tgt, e)
	}
	if _, e := m.fs.Readlink(f); e != syscall.EINVAL {
		t.Fatalf("readlink of a file: %v", e)
	}
	list, e := m.fs.OpenDir(m.c, RootIno)
	var names []string
	for _, d := range list {
		names = append(names, d.Name)
	}
	if e != 0 || !slices.Equal(names, []string{".", "..", "f", "g", "l"}) {
		t.Fatalf("listing %v %v", names, e)
	}
	buf := make([]byte, 4)
	if k, e := m.fs.Read(f, 2, buf); k != 4 || e != 0 || string(buf) != "ared" {
		t.Fatalf("read %d %v %q", k, e, buf)
	}
	if a, _ := m.fs.GetAttr(f); a.Nlink != 2 {
		t.Fatalf("nlink %d", a.Nlink)
	}
	m.must("fsync .", m.fsync("."))
	out := filepath.Join(t.TempDir(), "out")
	if err := m.fs.PowerLoss().Materialise(out); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(out, "f"))
	b, _ := os.Stat(filepath.Join(out, "g"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Fatal("f and g should be one inode after materialising")
	}
	if tgt, err := os.Readlink(filepath.Join(out, "l")); err != nil || tgt != "f" {
		t.Fatalf("materialised symlink %q %v", tgt, err)
	}
}

func TestModelTornStates(t *testing.T) {
	m := newModel(t)
	m.fs.TrackTorn("backup_status", "backup_status.tmp")
	m.write("backup_status.tmp", []byte("state=in progress\n"), true)
	m.must("rename", m.rename("backup_status.tmp", "backup_status"))
	m.must("fsync .", m.fsync("."))
	m.write("backup_status.tmp", []byte("state=completed\n"), true)
	m.must("rename", m.rename("backup_status.tmp", "backup_status"))
	states := m.fs.TornStates()
	if want := len("state=in progress\n") + len("state=completed\n") + 2; len(states) != want {
		t.Fatalf("%d torn states, want %d", len(states), want)
	}
	last := states[len(states)-1]
	if last.Kind != "unrenamed" || string(last.Content) != "state=completed\n" {
		t.Fatalf("last torn state %v %q", last, last.Content)
	}
	wantFile(t, last.Base, "backup_status", []byte("state=in progress\n"))
}

// TestModelTornStatesMatched: with TrackTornFunc, the files it accepts
// are tracked whatever their names (a temporary file named after a pid not
// known in advance), and no other.
func TestModelTornStatesMatched(t *testing.T) {
	m := newModel(t)
	m.fs.TrackTornFunc(func(name string) bool {
		return name == "backup_status" || strings.HasPrefix(name, "backup_status.") && strings.HasSuffix(name, ".tmp")
	})
	m.write("other.tmp", []byte("not tracked"), true)
	m.write("backup_status.4321.tmp", []byte("in progress"), true)
	m.must("rename", m.rename("backup_status.4321.tmp", "backup_status"))
	states := m.fs.TornStates()
	if want := len("in progress") + 1; len(states) != want {
		t.Fatalf("%d torn states, want %d", len(states), want)
	}
	for _, st := range states {
		if st.Path != "backup_status.4321.tmp" {
			t.Errorf("torn state of %s", st.Path)
		}
	}
}

func TestModelLog(t *testing.T) {
	m := newModel(t)
	m.write("x.tmp", []byte("hello"), true)
	m.must("rename", m.rename("x.tmp", "x"))
	m.must("fsync .", m.fsync("."))
	m.must("unlink", m.fs.Unlink(m.c, RootIno, "x"))
	var kinds []string
	for i, op := range m.fs.Log() {
		if op.Seq != i+1 {
			t.Fatalf("op %d has seq %d", i, op.Seq)
		}
		kinds = append(kinds, op.Kind.String()+" "+op.Path)
	}
	want := []string{"create x.tmp", "write x.tmp", "fsync x.tmp", "rename x.tmp", "fsyncdir .", "unlink x"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("log %q, want %q", kinds, want)
	}
	if c := m.fs.Counts(); c["write"] != 1 || c["open"] != 0 {
		t.Fatalf("counts %v", c)
	}
	files, dirs := m.fs.Stats()
	if files != 0 || dirs != 1 {
		t.Fatalf("stats %d files %d dirs", files, dirs)
	}
}

func TestModelHookAndAlive(t *testing.T) {
	var seen []string
	m := newModel(t, OnOp(func(op Op) { seen = append(seen, op.String()) }))
	m.write("f", []byte("ab"), false)
	if len(seen) != 2 || !strings.Contains(seen[1], "write[1] f [0,+2)") {
		t.Fatalf("hook saw %q", seen)
	}
	if e := m.fs.Alive(); e != 0 {
		t.Fatal(e)
	}
	m.fs.PowerLoss()
	if e := m.fs.Alive(); !errors.Is(e, syscall.EIO) {
		t.Fatalf("alive after the power loss: %v", e)
	}
}
