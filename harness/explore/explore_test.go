package explore

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/status"
)

// The explorer's tests need no mount: a small writer drives the model as
// pg_basebackup's finishing part does, correctly and with the mistakes
// of the known-bad variants, and the explorer must tell them apart.

// writer drives a journaled model by path.
type writer struct {
	t  *testing.T
	fs *powerfs.FS
	c  powerfs.Caller
	// tmp is the status file's temporary file.
	tmp string
}

func (w *writer) ino(p string) uint64 {
	ino := powerfs.RootIno
	for _, el := range strings.Split(p, "/") {
		a, e := w.fs.Lookup(ino, el)
		if e != 0 {
			w.t.Fatalf("lookup %s: %v", p, e)
		}
		ino = a.Ino
	}
	return ino
}

func (w *writer) split(p string) (uint64, string) {
	dir, name := filepath.Split(p)
	if dir == "" {
		return powerfs.RootIno, name
	}
	return w.ino(strings.TrimSuffix(dir, "/")), name
}

func (w *writer) create(p string, data []byte) {
	dir, name := w.split(p)
	a, e := w.fs.Create(w.c, dir, name, 0o600)
	if e != 0 {
		w.t.Fatalf("create %s: %v", p, e)
	}
	if _, e := w.fs.Write(w.c, a.Ino, 0, data); e != 0 {
		w.t.Fatalf("write %s: %v", p, e)
	}
}

func (w *writer) mkdir(p string) {
	dir, name := w.split(p)
	if _, e := w.fs.Mkdir(w.c, dir, name, 0o700); e != 0 {
		w.t.Fatalf("mkdir %s: %v", p, e)
	}
}

func (w *writer) fsync(p string) {
	if e := w.fs.Fsync(w.c, w.ino(p)); e != 0 {
		w.t.Fatalf("fsync %s: %v", p, e)
	}
}

func (w *writer) rename(from, to string) {
	d1, n1 := w.split(from)
	d2, n2 := w.split(to)
	if e := w.fs.Rename(w.c, d1, n1, d2, n2, 0); e != 0 {
		w.t.Fatalf("rename %s: %v", from, e)
	}
}

// writeStatus writes a status file the right way, unless the mistake
// says otherwise.
func (w *writer) writeStatus(data []byte, mistake string) {
	if mistake == "status-in-place" {
		ino := w.ino("target/backup_status")
		if e := w.fs.Open(w.c, ino, syscall.O_WRONLY|syscall.O_TRUNC); e != 0 {
			w.t.Fatal(e)
		}
		w.fs.Write(w.c, ino, 0, data)
		w.fsync("target/backup_status")
		return
	}
	w.create(w.tmp, data)
	if mistake != "no-fsync-tmp" && mistake != "not-durable" {
		w.fsync(w.tmp)
	}
	w.rename(w.tmp, "target/backup_status")
	if mistake != "no-dir-fsync" && mistake != "not-durable" {
		w.fsync("target")
	}
}

// noSyncRun journals a --no-sync run: its first version of the status
// file is made durable (unless firstDurable is false, the mistake), then
// nothing: the data, the later versions, the final "completed" with SYNC:
// off and DURABLE: no are written and renamed, never synced.
func noSyncRun(t *testing.T, firstDurable bool) *powerfs.Journal {
	w := &writer{t: t, fs: powerfs.New(powerfs.Journaled()), c: powerfs.Caller{PID: 7}, tmp: status.TempPath("target/backup_status", 7)}
	w.fs.MkdirAll("target", 0o700)
	first := ""
	if !firstDurable {
		first = "not-durable"
	}
	w.writeStatus(readStatus(t, "in_progress_killed"), first)
	w.create("target/base.tar", []byte("the data"))
	w.create("target/backup_manifest.tmp", []byte("manifest"))
	w.fs.Mark("finishing")
	w.rename("target/backup_manifest.tmp", "target/backup_manifest")
	w.writeStatus(readStatus(t, "completed_nosync_tar_nointerval"), "not-durable")
	j, err := w.fs.Journal(nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestExploreFirstVersionDurable: once the first version of the status
// file has returned, no crash state is without it (at a reused path, an
// earlier run's file would be back), with --no-sync too; a run that does
// not make it durable breaks the rule, in its start and in its finishing
// part.
func TestExploreFirstVersionDurable(t *testing.T) {
	for _, tc := range []struct {
		name string
		j    *powerfs.Journal
		want bool
	}{
		{"the right order", backupRun(t, ""), false},
		{"first version not durable", backupRun(t, "first-not-durable"), true},
		{"--no-sync", noSyncRun(t, true), false},
		{"--no-sync, first version not durable", noSyncRun(t, false), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Explore(context.Background(), tc.j, Config{Status: "target/backup_status", K: 2, From: -1})
			if err != nil {
				t.Fatal(err)
			}
			broke := res.ByRule[RuleFirstVersionDurable] > 0
			if broke != tc.want || !tc.want && res.ViolationCount > 0 {
				t.Fatalf("violations %v, want %s: %t", res.ByRule, RuleFirstVersionDurable, tc.want)
			}
		})
	}
}

func readStatus(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("../status/testdata/real/0003", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// backupRun journals a backup's run into target and a tablespace ts1,
// with one mistake (or none), writing the status file through
// target/backup_status.7.tmp, as the pg_basebackup of pid 7 does.
func backupRun(t *testing.T, mistake string) *powerfs.Journal {
	return backupRunThrough(t, mistake, status.TempPath("target/backup_status", 7))
}

// backupRunThrough is backupRun writing the status file through tmp.
func backupRunThrough(t *testing.T, mistake, tmp string) *powerfs.Journal {
	w := &writer{t: t, fs: powerfs.New(powerfs.Journaled()), c: powerfs.Caller{PID: 7}, tmp: tmp}
	w.fs.MkdirAll("target", 0o700)
	w.fs.MkdirAll("ts1", 0o700)
	first := ""
	if mistake == "first-not-durable" {
		first = "not-durable"
	}
	w.writeStatus(readStatus(t, "in_progress_killed"), first)
	w.mkdir("target/base")
	w.mkdir("target/pg_wal")
	w.create("target/base/1", []byte("relation one"))
	w.create("target/base/2", []byte("relation two"))
	w.create("ts1/PG_18", []byte("tablespace file"))
	w.create("target/pg_wal/000000010000000000000002", make([]byte, 4096))
	w.create("target/backup_manifest.tmp", []byte("manifest"))
	w.fs.Mark("finishing")
	w.fs.Write(w.c, w.ino("target/pg_wal/000000010000000000000002"), 4096, []byte("end of WAL"))
	completed := readStatus(t, "completed_plain_tablespace_waldir")
	if mistake == "status-before-sync" {
		w.writeStatus(completed, "")
	}
	for _, p := range []string{"target/base/1", "target/base/2", "target/pg_wal/000000010000000000000002",
		"target/backup_manifest.tmp", "target/base", "target/pg_wal"} {
		w.fsync(p)
	}
	if mistake != "no-tablespace-sync" {
		w.fsync("ts1/PG_18")
		w.fsync("ts1")
	}
	w.fsync("target")
	if mistake == "status-before-manifest-rename" {
		w.writeStatus(completed, "")
	}
	w.rename("target/backup_manifest.tmp", "target/backup_manifest")
	w.fsync("target")
	if !strings.HasPrefix(mistake, "status-before") {
		w.writeStatus(completed, mistake)
	}
	j, err := w.fs.Journal(nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestExploreTheRightOrderBreaksNothing: a run that does everything in
// the right order breaks no rule in any crash state, whether it writes the
// status file through FILE.PID.tmp or, as earlier writers did, FILE.tmp.
func TestExploreTheRightOrderBreaksNothing(t *testing.T) {
	for _, tmp := range []string{status.TempPath("target/backup_status", 7), status.LegacyTempPath("target/backup_status")} {
		t.Run(strings.TrimPrefix(tmp, "target/"), func(t *testing.T) { testRightOrder(t, backupRunThrough(t, "", tmp)) })
	}
}

func testRightOrder(t *testing.T, j *powerfs.Journal) {
	for k := 0; k <= 6; k++ {
		res, err := Explore(context.Background(), j, Config{Status: "target/backup_status", K: k, From: -1})
		if err != nil {
			t.Fatal(err)
		}
		if res.ViolationCount > 0 || res.UndecidedCount > 0 {
			t.Fatalf("K=%d: %d violations, %d undecided: %+v", k, res.ViolationCount, res.UndecidedCount, res.Violations)
		}
		if res.Complete == 0 || res.States != res.Pessimistic+res.Subsets+res.Torn+1 || res.Cheap() != res.States {
			t.Fatalf("K=%d: %+v", k, res)
		}
		if k == 4 && (res.Subsets == 0 || res.Torn == 0) {
			t.Fatalf("K=4 built no subset or torn states: %+v", res)
		}
	}
}

func TestExploreFindsEachMistake(t *testing.T) {
	for mistake, rule := range map[string]string{
		"status-before-sync":            RuleCompletedIsComplete,
		"status-before-manifest-rename": RuleCompletedIsComplete,
		"status-in-place":               RuleNotTorn,
		"no-fsync-tmp":                  RuleNotTorn,
		"no-dir-fsync":                  RuleDurableAtExit,
		"no-tablespace-sync":            RuleCompletedIsComplete,
	} {
		res, err := Explore(context.Background(), backupRun(t, mistake), Config{Status: "target/backup_status", K: 2, From: -1})
		if err != nil {
			t.Fatal(err)
		}
		if res.ByRule[rule] == 0 {
			t.Errorf("%s: no %s violation; found %v", mistake, rule, res.ByRule)
		}
	}
}

func TestExploreStartsAtTheFinishingPart(t *testing.T) {
	j := backupRun(t, "")
	from := FinishingStart(j, "finishing")
	if from == 0 || j.Log[from].Kind != powerfs.OpCreate || j.Log[from].Name != "backup_manifest.tmp" {
		t.Fatalf("finishing part starts at %d: %v", from, j.Log[from])
	}
	all, _ := Explore(context.Background(), j, Config{Status: "target/backup_status", K: 1, From: 0})
	fin, _ := Explore(context.Background(), j, Config{Status: "target/backup_status", K: 1, From: -1})
	// The start is explored too: from the first rename of the status
	// file to StartOps operations after its first version returned.
	want := len(j.Log) - from
	for i := fin.StartFrom; i <= fin.StartTo && i < from; i++ {
		want++
	}
	if fin.StartTo == 0 || j.Log[fin.StartFrom].Kind != powerfs.OpRename || fin.Prefixes != want || all.Prefixes != len(j.Log) || fin.States >= all.States {
		t.Fatalf("from the start %+v; from the finishing part %+v", all, fin)
	}
}

func TestStateIDsAndMaterialise(t *testing.T) {
	j := backupRun(t, "no-fsync-tmp")
	res, err := Explore(context.Background(), j, Config{Status: "target/backup_status", K: 3, From: -1})
	if err != nil || len(res.Violations) == 0 {
		t.Fatalf("%v %+v", err, res)
	}
	v := res.Violations[0]
	id, err := ParseStateID(v.State)
	if err != nil || id.String() != v.State {
		t.Fatalf("state id %q: %v, %v", v.State, id, err)
	}
	out := filepath.Join(t.TempDir(), "state")
	if err := Materialise(j, id, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "target", "backup_status"))
	if err != nil || len(b) > 0 && !strings.Contains(v.Message, "does not parse") {
		t.Fatalf("materialised status %q, %v; violation %v", b, err, v)
	}
	for _, bad := range []string{"", "x1", "p", "p0", "p3+x", "p3~2:1", "p3+2~2"} {
		if _, err := ParseStateID(bad); err == nil {
			t.Errorf("ParseStateID(%q) accepted", bad)
		}
	}
	good := StateID{Prefix: 9, Persisted: []int{4, 8}, Torn: 8, TornLen: 3}
	if back, err := ParseStateID(good.String()); err != nil || !slices.Equal(back.Persisted, good.Persisted) || back.TornLen != 3 {
		t.Fatalf("round trip %v: %v %v", good, back, err)
	}
	if _, err := Build(j, StateID{Prefix: 100000}); err == nil {
		t.Fatal("a state past the log's end was built")
	}
}

// TestExploreCompletedNotDurableWithSyncOn: a run with sync on that says
// "completed" (DURABLE: no, as a completed status written before the
// sync does) over a backup not yet on disk breaks completed-is-complete;
// only a --no-sync run's DURABLE: no promises nothing.
func TestExploreCompletedNotDurableWithSyncOn(t *testing.T) {
	w := &writer{t: t, fs: powerfs.New(powerfs.Journaled()), c: powerfs.Caller{PID: 7}, tmp: status.TempPath("target/backup_status", 7)}
	w.fs.MkdirAll("target", 0o700)
	w.writeStatus(readStatus(t, "in_progress_killed"), "")
	w.create("target/base.tar", []byte("the data"))
	w.fs.Mark("finishing")
	notDurable := strings.Replace(string(readStatus(t, "completed_plain_tablespace_waldir")), "DURABLE: yes", "DURABLE: no", 1)
	body := notDurable[:strings.LastIndex(notDurable, "CHECKSUM: ")]
	notDurable = body + fmt.Sprintf("CHECKSUM: %08X\n", crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)))
	w.writeStatus([]byte(notDurable), "")
	w.fsync("target/base.tar")
	w.fsync("target")
	j, err := w.fs.Journal(nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Explore(context.Background(), j, Config{Status: "target/backup_status", K: 1, From: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.ByRule[RuleCompletedIsComplete] == 0 {
		t.Fatalf("no %s violation: %v", RuleCompletedIsComplete, res.ByRule)
	}
}
