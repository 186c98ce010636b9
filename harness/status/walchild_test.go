package status

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// addChild adds to the fake /proc a pg_basebackup pid in process group
// pgid (its parent: 1), started at ticks since the fake boot, whose
// /proc/PID/status has the line uids ("" for none).
func (p fakeProc) addChild(pid, pgid int, ticks uint64, uids string) {
	writeFile(p.t, p.root, fmt.Sprintf("%d/stat", pid), []byte(fmt.Sprintf(
		"%d (%s) S 1 %d 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 %d 20 21\n", pid, WriterName, pgid, ticks)))
	status := fmt.Sprintf("Name:\t%s\nState:\tS\nPid:\t%d\nNSpid:\t%d\n", WriterName, pid, pid)
	if uids != "" {
		status += "Uid:\t" + uids + "\n"
	}
	writeFile(p.t, p.root, fmt.Sprintf("%d/status", pid), []byte(status))
}

// TestWALChildOfOwner: a pg_basebackup in the process group of the dead
// run's pid blocks the removal only if it may be the run's WAL streaming
// child: a process of the status file's owner (by any of its uids, or
// uids unknown) that did not start before the writer (START TICKS). A
// process of another user that took the pid number as its process group
// (setsid after cycling pids) used to block the clean-up of someone
// else's dead run.
func TestWALChildOfOwner(t *testing.T) {
	me := os.Geteuid()
	other := me + otherUID
	own := fmt.Sprintf("%d\t%d\t%d\t%d", me, me, me, me)
	foreign := fmt.Sprintf("%d\t%d\t%d\t%d", other, other, other, other)
	s := inProgressStatus(true)
	writerTicks := fakeTicks(s.StartTime.Add(-time.Second))
	tests := []struct {
		name    string
		ticks   uint64 // START TICKS, 0 for none
		child   uint64 // the child's start in ticks
		uids    string
		blocked bool
	}{
		{"another user's", 0, writerTicks + 100, foreign, false},
		{"another user's, START TICKS", writerTicks, writerTicks + 100, foreign, false},
		{"the owner's", 0, writerTicks + 100, own, true},
		{"the owner's, START TICKS", writerTicks, writerTicks + 100, own, true},
		{"the owner's, same tick as the writer", writerTicks, writerTicks, own, true},
		{"the owner's, before the writer", writerTicks, writerTicks - 100, own, false},
		{"the owner's, before START TIME without START TICKS", 0, writerTicks - 6000, own, true},
		{"the owner's by its saved uid", 0, writerTicks + 100, fmt.Sprintf("%d\t%d\t%d\t%d", other, other, me, other), true},
		{"uids unknown", 0, writerTicks + 100, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := makeLayout(t)
			st := l.status()
			data := st.Encode()
			if tc.ticks != 0 {
				data = withStartTicks(st, tc.ticks)
			}
			if err := os.WriteFile(l.file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			p := newFakeProc(t, hostNS)
			p.addChild(5678, st.PID, tc.child, tc.uids)
			rm := RemoveIfDead(t.Context(), l.file, true, WithProcesses(hostnameProcfs{Procfs{Root: p.root}, "db1"}))
			refused := rm.ExitCode == ExitRefused && strings.Contains(rm.Refused, "WAL streaming child")
			if refused != tc.blocked || (!tc.blocked && rm.ExitCode != ExitRemoved) {
				t.Errorf("exit %d, refused %q; want blocked %v", rm.ExitCode, rm.Refused, tc.blocked)
			}
		})
	}
}
