package status

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeBoot is the btime of the fake /proc trees.
const fakeBoot = 1795000000

// fakeProc is a made-up /proc: a boot time, the reader's PID namespace
// (none if ns is empty) and processes added with add.
type fakeProc struct {
	t    *testing.T
	root string
}

// newFakeProc makes a fake /proc whose self/ns/pid links to ns.
func newFakeProc(t *testing.T, ns string) fakeProc {
	t.Helper()
	p := fakeProc{t: t, root: t.TempDir()}
	writeFile(t, p.root, "stat", []byte(fmt.Sprintf("cpu 1 2 3\nbtime %d\n", fakeBoot)))
	if ns != "" {
		if err := os.MkdirAll(filepath.Join(p.root, "self", "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(ns, filepath.Join(p.root, "self", "ns", "pid")); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// add adds process pid named name in state, started at start, with the
// NSpid line nspid (none if empty).
func (p fakeProc) add(pid int, name, state string, start time.Time, nspid string) {
	ticks := start.Sub(time.Unix(fakeBoot, 0)) / (10 * time.Millisecond)
	writeFile(p.t, p.root, fmt.Sprintf("%d/stat", pid), []byte(fmt.Sprintf(
		"%d (%s) %s 1 %d 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 %d 20 21\n", pid, name, state, pid, ticks)))
	status := fmt.Sprintf("Name:\t%s\nState:\t%s\nPid:\t%d\n", name, state, pid)
	if nspid != "" {
		status += "NSpid:\t" + nspid + "\n"
	}
	writeFile(p.t, p.root, fmt.Sprintf("%d/status", pid), []byte(status+"Threads:\t1\n"))
}

const (
	hostNS  = "pid:[4026531836]"
	otherNS = "pid:[4026532179]"
)

// TestLivenessPIDNamespacesFakeProc: the liveness check, reading fake /proc
// trees, never calls a run dead when the reader is in a PID namespace other
// than the host's, nor when a pg_basebackup in a nested namespace has the
// recorded pid there, even one that started after START TIME by the wall
// clock (which may have been set forward); it still does when no such
// process exists (and, with START TICKS, when it started at another tick:
// TestClockSteppedForwardNested).
func TestLivenessPIDNamespacesFakeProc(t *testing.T) {
	s := inProgressStatus(true) // pid 1234 on db1
	start := s.StartTime
	tests := []struct {
		name   string
		ns     string
		procs  func(p fakeProc)
		want   Verdict
		final  bool
		reason string
	}{
		{"host namespace, pid gone", hostNS, func(fakeProc) {}, NotComplete, true, "is gone"},
		{"host namespace, alive", hostNS, func(p fakeProc) { p.add(1234, WriterName, "S", start.Add(-time.Second), "1234") },
			Running, false, "started at"},
		{"other namespace, pid gone", otherNS, func(fakeProc) {}, NotComplete, false, "PID namespace other than the host's"},
		{"namespace unknown, pid gone", "", func(fakeProc) {}, NotComplete, false, "PID namespace"},
		{"other namespace, pid another program", otherNS, func(p fakeProc) { p.add(1234, "bash", "S", start, "1234") },
			NotComplete, false, "PID namespace other than the host's"},
		{"other namespace, pid reused later", otherNS, func(p fakeProc) { p.add(1234, WriterName, "S", start.Add(time.Minute), "1234") },
			NotComplete, false, "cannot be told"},
		{"other namespace, alive", otherNS, func(p fakeProc) { p.add(1234, WriterName, "S", start.Add(-time.Second), "1234") },
			Running, false, "started at"},
		{"nested pg_basebackup has the pid", hostNS, func(p fakeProc) { p.add(5678, WriterName, "S", start.Add(-time.Second), "5678\t1234") },
			NotComplete, false, "another PID namespace has pid 1234"},
		{"nested two levels, middle entry", hostNS, func(p fakeProc) { p.add(5678, WriterName, "S", start, "5678\t1234\t7") },
			NotComplete, false, "another PID namespace has pid 1234"},
		{"nested, pid is another program here", hostNS, func(p fakeProc) {
			p.add(1234, "systemd", "S", start.Add(-time.Hour), "1234")
			p.add(5678, WriterName, "S", start, "5678\t1234")
		}, NotComplete, false, "another PID namespace has pid 1234"},
		// Later by the wall clock: it may have been set forward.
		{"nested, started later", hostNS, func(p fakeProc) { p.add(5678, WriterName, "S", start.Add(time.Minute), "5678\t1234") },
			NotComplete, false, "another PID namespace has pid 1234"},
		{"nested, zombie", hostNS, func(p fakeProc) { p.add(5678, WriterName, "Z", start, "5678\t1234") },
			NotComplete, true, "is gone"},
		{"nested, another program", hostNS, func(p fakeProc) { p.add(5678, "postgres", "S", start, "5678\t1234") },
			NotComplete, true, "is gone"},
		{"nested, another inner pid", hostNS, func(p fakeProc) { p.add(5678, WriterName, "S", start, "5678\t1235") },
			NotComplete, true, "is gone"},
		{"a pg_basebackup without NSpid", hostNS, func(p fakeProc) { p.add(5678, WriterName, "S", start, "") },
			NotComplete, false, "no NSpid line"},
		{"not nested, host pid 1234 elsewhere in the list", hostNS, func(p fakeProc) { p.add(5678, WriterName, "S", start, "5678") },
			NotComplete, true, "is gone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeProc(t, tc.ns)
			tc.procs(p)
			v, final, l := Decide(s, hostnameProcfs{Procfs{Root: p.root}, "db1"}, DefaultStartSlack)
			if v != tc.want || final != tc.final {
				t.Errorf("%v final %v, want %v final %v (%s)", v, final, tc.want, tc.final, l.Reason)
			}
			if !strings.Contains(l.Reason, tc.reason) {
				t.Errorf("reason %q, want %q in it", l.Reason, tc.reason)
			}
			if l.Certain != tc.final && v != Running {
				t.Errorf("certain %v with final %v", l.Certain, tc.final)
			}
		})
	}
}

// hostnameProcfs is a Procfs with a made-up host name.
type hostnameProcfs struct {
	Procfs
	host string
}

func (h hostnameProcfs) Hostname() (string, error) { return h.host, nil }

// TestProcfsPIDNamespace reads the reader's PID namespace from fake /proc
// trees.
func TestProcfsPIDNamespace(t *testing.T) {
	for ns, want := range map[string]uint64{hostNS: InitialPIDNamespace, otherNS: 4026532179, "pid:[x]": 0, "net:[4026531840]": 0, "": 0} {
		got, err := Procfs{Root: newFakeProc(t, ns).root}.PIDNamespace()
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("%q: %d %v, want %d", ns, got, err, want)
		}
	}
}

// TestProcfsNestedWriters lists the pg_basebackup processes of a fake /proc
// tree that have a pid in a nested namespace.
func TestProcfsNestedWriters(t *testing.T) {
	p := newFakeProc(t, hostNS)
	start := time.Unix(fakeBoot+100, 0)
	p.add(10, WriterName, "S", start, "10\t7")
	p.add(11, WriterName, "S", start, "11\t8\t7")
	p.add(12, WriterName, "S", start, "12")
	p.add(13, "sleep", "S", start, "13\t7")
	got, err := Procfs{Root: p.root}.NestedWriters(7)
	if err != nil || len(got) != 2 || got[0].PID != 10 || got[1].PID != 11 || len(got[1].NSpid) != 3 || !got[0].StartTime.Equal(start) {
		t.Errorf("%+v %v, want pids 10 and 11", got, err)
	}
	writeFile(t, p.root, "14/stat", []byte("14 (pg_basebackup) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5 20 21\n"))
	writeFile(t, p.root, "14/status", []byte("Name:\tpg_basebackup\nNSpid:\t14\tx\n"))
	if _, err := (Procfs{Root: p.root}).NestedWriters(7); err == nil || !strings.Contains(err.Error(), "NSpid") {
		t.Errorf("a bad NSpid line: %v", err)
	}
}

// setBoot gives the fake /proc the boot ID id.
func (p fakeProc) setBoot(id string) {
	writeFile(p.t, p.root, "sys/kernel/random/boot_id", []byte(id+"\n"))
}

// setNamespace links /proc/PID/ns/pid of the fake process pid to ns.
func (p fakeProc) setNamespace(pid int, ns string) {
	dir := filepath.Join(p.root, fmt.Sprint(pid), "ns")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Symlink(ns, filepath.Join(dir, "pid")); err != nil {
		p.t.Fatal(err)
	}
}

// TestLivenessRecordedIdentityFakeProc: with the BOOT ID and PID NAMESPACE
// that the writer records, the liveness check never calls a live run dead
// from another boot or another PID namespace, finds a writer that runs in
// a nested namespace from the host, and no longer takes a host process
// that has the writer's namespace-local pid for the writer.
func TestLivenessRecordedIdentityFakeProc(t *testing.T) {
	const (
		bootA, bootB = "6c1b3f0e-1111-4a5b-9c1d-0123456789ab", "0a2d7e55-2222-4c3b-8d4e-ba9876543210"
		thirdNS      = "pid:[4026532500]"
	)
	s := inProgressStatus(true) // pid 1234 on db1
	start := s.StartTime
	tests := []struct {
		name       string
		readerNS   string
		readerBoot string
		writerNS   string
		procs      func(p fakeProc)
		want       Verdict
		final      bool
		reason     string
	}{
		{"another boot, pid gone", hostNS, bootB, hostNS, func(fakeProc) {}, NotComplete, false, "restarted since"},
		{"another boot, pid alive", hostNS, bootB, hostNS, func(p fakeProc) { p.add(1234, WriterName, "S", start, "1234") },
			NotComplete, false, "restarted since"},
		{"boot unreadable", hostNS, "", hostNS, func(fakeProc) {}, NotComplete, false, "boot ID cannot be read"},
		{"host namespace, pid gone", hostNS, bootA, hostNS, func(fakeProc) {}, NotComplete, true, "is gone"},
		{"host namespace, alive", hostNS, bootA, hostNS, func(p fakeProc) { p.add(1234, WriterName, "S", start, "1234") },
			Running, false, "started at"},
		{"both in one container, pid gone", otherNS, bootA, otherNS, func(fakeProc) {}, NotComplete, true, "is gone"},
		{"both in one container, alive", otherNS, bootA, otherNS, func(p fakeProc) { p.add(1234, WriterName, "S", start, "1234") },
			Running, false, "started at"},
		{"writer in a container, alive", hostNS, bootA, otherNS, func(p fakeProc) {
			p.add(1234, "systemd", "S", start.Add(-time.Hour), "1234")
			p.add(5678, WriterName, "S", start, "5678\t1234")
			p.setNamespace(5678, otherNS)
		}, Running, false, "in PID namespace " + otherNS},
		{"writer in a container gone, an older host pg_basebackup has its pid", hostNS, bootA, otherNS, func(p fakeProc) {
			p.add(1234, WriterName, "S", start.Add(-time.Hour), "1234")
			p.setNamespace(1234, hostNS)
		}, NotComplete, true, "no pg_basebackup has pid 1234 in PID namespace"},
		{"writer in a container gone, another container's pg_basebackup has its pid", hostNS, bootA, otherNS, func(p fakeProc) {
			p.add(5678, WriterName, "S", start, "5678\t1234")
			p.setNamespace(5678, thirdNS)
		}, NotComplete, true, "no pg_basebackup has pid 1234"},
		{"writer in a container, its namespace hidden", hostNS, bootA, otherNS, func(p fakeProc) {
			p.add(5678, WriterName, "S", start, "5678\t1234")
		}, NotComplete, false, "may not see"},
		{"writer in a container, started later", hostNS, bootA, otherNS, func(p fakeProc) {
			p.add(5678, WriterName, "S", start.Add(time.Minute), "5678\t1234")
			p.setNamespace(5678, otherNS)
		}, NotComplete, false, "set forward"},
		{"reader in a third namespace", thirdNS, bootA, otherNS, func(fakeProc) {}, NotComplete, false, "which is not the host's"},
		{"reader in a container, writer on the host", otherNS, bootA, hostNS, func(fakeProc) {}, NotComplete, false, "which is not the host's"},
		{"reader's namespace unknown", "", bootA, otherNS, func(fakeProc) {}, NotComplete, false, "cannot be told"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeProc(t, tc.readerNS)
			if tc.readerBoot != "" {
				p.setBoot(tc.readerBoot)
			}
			tc.procs(p)
			w := *s
			w.BootID, w.PIDNamespace = bootA, tc.writerNS
			v, final, l := Decide(&w, hostnameProcfs{Procfs{Root: p.root}, "db1"}, DefaultStartSlack)
			if v != tc.want || final != tc.final {
				t.Errorf("%v final %v, want %v final %v (%s)", v, final, tc.want, tc.final, l.Reason)
			}
			if !strings.Contains(l.Reason, tc.reason) {
				t.Errorf("reason %q, want %q in it", l.Reason, tc.reason)
			}
			if l.Certain != tc.final && v != Running {
				t.Errorf("certain %v with final %v", l.Certain, tc.final)
			}
		})
	}
}
