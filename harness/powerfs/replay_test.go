package powerfs

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// dump renders a snapshot's paths and file contents.
func dump(s *Snapshot) string {
	var b strings.Builder
	for _, p := range s.Paths() {
		b.WriteString(p)
		if !strings.HasSuffix(p, "/") {
			if data, err := s.ReadFile(p); err == nil {
				fmt.Fprintf(&b, "=%q", data)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// scriptedRun runs a small backup-like sequence with a failed fsync, a
// failed directory fsync, a short write and a crash-after on a journaled
// model, and returns the durable states seen after each step, by the
// number of operations logged.
func scriptedRun(t *testing.T) (*Journal, map[int]string) {
	m := newModel(t, Journaled(), Owner(5, 6))
	if err := m.fs.MkdirAll("target", 0o700); err != nil {
		t.Fatal(err)
	}
	states := map[int]string{}
	step := func() { states[len(m.fs.Log())] = dump(m.fs.Durable()) }
	m.fs.SetRules(Rule{Op: OpFsync, Path: "lost", Times: 1}, Rule{Op: OpFsyncDir, Path: "sub", Times: 1})
	m.mkdir("target/sub")
	step()
	m.write("target/sub/lost", []byte("dropped by a failed fsync"), false)
	m.fsync("target/sub/lost")
	step()
	m.must("fsync lost again", m.fsync("target/sub/lost"))
	m.fsync("target/sub")
	m.must("fsync sub again", m.fsync("target/sub"))
	step()
	m.write("target/data", []byte("0123456789"), true)
	m.fs.SetSpaceLimit(m.fs.Written() + 3)
	ino := m.resolve("target/data")
	m.fs.Write(m.c, ino, 10, []byte("abcdef"))
	m.fs.Write(m.c, ino, 13, []byte("x"))
	m.fs.SetSpaceLimit(0)
	step()
	m.must("fsync data", m.fsync("target/data"))
	_, e := m.fs.Symlink(m.c, m.resolve("target"), "link", "/elsewhere")
	m.must("symlink", e)
	_, e = m.fs.Link(m.c, ino, m.resolve("target"), "hard")
	m.must("link", e)
	step()
	m.write("target/st.tmp", []byte("v1"), true)
	m.must("rename", m.rename("target/st.tmp", "target/st"))
	m.must("open trunc", m.fs.Open(m.c, ino, syscall.O_RDWR|syscall.O_TRUNC))
	m.must("fsync target", m.fsync("target"))
	step()
	m.write("target/gone", nil, false)
	m.must("unlink", m.fs.Unlink(m.c, m.resolve("target"), "gone"))
	m.fs.SetCrashPoints(CrashPoint{Op: OpFsyncDir, N: m.fs.Count(OpFsyncDir) + 1, After: true})
	m.fs.Mark("almost done")
	m.fsync("target/data")
	m.fsync("target")
	step()
	j, err := m.fs.Journal(map[string]string{"what": "test"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := j.Write(&buf); err != nil {
		t.Fatal(err)
	}
	j2, err := ReadJournal(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(j2.Log) != len(j.Log) || j2.Meta["what"] != "test" || len(j2.Setup) != 1 {
		t.Fatalf("journal read back: %d ops, meta %v, setup %v", len(j2.Log), j2.Meta, j2.Setup)
	}
	if seq, ok := j2.MarkSeq("almost done"); !ok || seq == 0 {
		t.Fatalf("mark %d %v", seq, ok)
	}
	return j2, states
}

// TestReplayRebuildsEveryDurableState: replaying the journal through a
// fresh model gives, after each step, the durable state the run had.
func TestReplayRebuildsEveryDurableState(t *testing.T) {
	j, states := scriptedRun(t)
	r, err := NewReplayer(j)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for !r.Done() {
		if _, err := r.Step(); err != nil {
			t.Fatal(err)
		}
		if want, ok := states[r.Next()]; ok {
			checked++
			if got := dump(r.Durable()); got != want {
				t.Fatalf("after %d operations the replay's durable state is\n%s\nthe run's was\n%s", r.Next(), got, want)
			}
		}
	}
	if checked != len(states) {
		t.Fatalf("compared %d states of %d", checked, len(states))
	}
	if !strings.Contains(dump(r.Volatile()), `target/hard=""`) {
		t.Fatalf("volatile state:\n%s", dump(r.Volatile()))
	}
}

func TestReplayRejectsAJournalWithoutData(t *testing.T) {
	m := newModel(t)
	m.write("f", []byte("x"), false)
	if _, err := m.fs.Journal(nil); err == nil {
		t.Fatal("a file system made without Journaled wrote a journal")
	}
	j := &Journal{JournalHeader: JournalHeader{Version: JournalVersion}, Log: m.fs.Log()}
	r, _ := NewReplayer(j)
	r.Step()
	if _, err := r.Step(); err == nil {
		t.Fatal("a write without its data replayed")
	}
}

// TestUnsyncedAndPersist: the operations not yet durable, and the states
// in which some of them reached the disk anyway.
func TestUnsyncedAndPersist(t *testing.T) {
	m := newModel(t, Journaled())
	m.write("status", []byte("old"), true)
	m.must("fsync .", m.fsync("."))
	m.write("status.tmp", []byte("new!"), false)
	m.must("rename", m.rename("status.tmp", "status"))
	j, _ := m.fs.Journal(nil)
	r, _ := NewReplayer(j)
	for !r.Done() {
		if _, err := r.Step(); err != nil {
			t.Fatal(err)
		}
	}
	un := r.Unsynced(0)
	var kinds []string
	for _, op := range un {
		kinds = append(kinds, op.Kind.String())
	}
	if want := []string{"create", "write", "rename"}; !slices.Equal(kinds, want) || r.UnsyncedCount() != 3 {
		t.Fatalf("unsynced %v, want %v", kinds, want)
	}
	if last := r.Unsynced(1); len(last) != 1 || last[0].Kind != OpRename {
		t.Fatalf("last unsynced %v", last)
	}
	base := r.Durable()
	wantFile(t, base, "status", []byte("old"))
	// The rename reached the disk, the data did not: an empty status.
	wantFile(t, base.Persist(un[2]), "status", []byte{})
	// Both, with the write torn after 2 bytes.
	s := base.Persist(un[1].Torn(2), un[2])
	wantFile(t, s, "status", []byte("ne"))
	wantFile(t, base, "status", []byte("old"))
	// Persist of a persisted snapshot keeps both layers.
	s2 := base.Persist(un[0]).Persist(un[1])
	wantFile(t, s2, "status.tmp", []byte("new!"))
}

func TestDiffer(t *testing.T) {
	m := newModel(t)
	m.mkdir("d")
	m.write("d/a", []byte("aaa"), true)
	m.write("d/b", []byte("bbb"), true)
	m.write("status", []byte("x"), true)
	m.must("fsync d", m.fsync("d"))
	m.must("fsync .", m.fsync("."))
	ref := m.fs.Volatile()
	df := NewDiffer(ref, func(rel string) bool { return rel == "status" })
	if d := df.Diff(m.fs.Durable(), 0); !d.Empty() {
		t.Fatalf("durable vs volatile after a full sync: %+v", d)
	}
	m.write("d/a", []byte("AAA"), true)
	m.write("d/c", []byte("extra"), false)
	m.must("fsync d", m.fsync("d"))
	dir, _ := m.parent("d/b")
	m.must("unlink", m.fs.Unlink(m.c, dir, "b"))
	m.must("fsync d", m.fsync("d"))
	m.write("status", []byte("changed"), true)
	d := df.Diff(m.fs.Durable(), 0)
	if !slices.Equal(d.Missing, []string{"d/b"}) || !slices.Equal(d.Changed, []string{"d/a"}) || !slices.Equal(d.Extra, []string{"d/c"}) {
		t.Fatalf("diff %+v", d)
	}
	if d := df.Diff(m.fs.Durable(), 1); len(d.Missing)+len(d.Changed)+len(d.Extra) != 1 {
		t.Fatalf("bounded diff %+v", d)
	}
}
