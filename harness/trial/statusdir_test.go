package trial

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/scenario"
)

// TestProgressNotFatal: with the status file's directory read-only from
// "receiving data", a run that ends before its last step breaks
// progress-rewrite-not-fatal, and so does one that does not complete
// although the directory was writable again before the end of the data;
// an error exit breaks it too, and exit 0 with the warning that the
// status file could not say completed is what a run kept read-only to the
// end must do.
func TestProgressNotFatal(t *testing.T) {
	sc := scenario.Defaults()
	sc.StatusInterval = 1
	upTo := func(last fault.Phase) fault.Timeline {
		tl := fault.Timeline{}
		for p := fault.PhaseStart; p <= last; p++ {
			tl[p.String()] = time.Duration(p) * time.Second
		}
		tl[fault.PhaseExited.String()] = 10 * time.Second
		return tl
	}
	inProgress := StatusFile{Present: true, Valid: true, State: "in progress"}
	rec := func(early, restored bool, restoredAt fault.Phase, exit Exit, sf StatusFile, tl fault.Timeline) Record {
		o := &fault.StatusDirObservation{Phase: "receiving data", Early: early, Restored: restored}
		if restored {
			o.RestoredPhase = restoredAt.String()
		}
		r := Record{StatusFile: true, Plan: scenario.PlanStatusDirReadOnly, Exit: exit, Status: sf, Timeline: tl,
			Fault: fault.Injection{Plan: scenario.PlanStatusDirReadOnly, Fired: true, StatusDir: o}}
		if sf.State == "completed" {
			r.Oracle = &oracle.Verdict{Complete: true}
		}
		return r
	}
	unsaid := func(r Record) Record { r.StatusUnsaid = true; return r }
	notFired := rec(true, false, 0, Exit{Code: 1}, inProgress, upTo(fault.PhaseReceiving))
	notFired.Fault.Fired = false
	cases := []struct {
		name string
		rec  Record
		want []string
	}{
		{"writable again early, completes", rec(true, true, fault.PhaseReceiving, Exit{Code: 0}, completed("yes"), upTo(fault.PhaseCompleted)), nil},
		{"not fired", notFired, nil},
		// A status file that cannot be written never fails the run: exit
		// 0 with the warning, never an error exit.
		{"read-only to the end, exit 0 with the warning", unsaid(rec(false, false, 0, Exit{Code: 0}, inProgress, upTo(fault.PhaseCompleted))), nil},
		{"read-only to the end, fails at the final status", rec(false, false, 0, Exit{Code: 1}, inProgress, upTo(fault.PhaseRename)), []string{InvProgressNotFatal}},
		{"aborted by a progress rewrite", rec(false, false, 0, Exit{Code: 1}, inProgress, upTo(fault.PhaseReceiving)), []string{InvProgressNotFatal}},
		{"aborted, then writable again", rec(true, true, fault.PhaseReceiving, Exit{Code: 1}, inProgress, upTo(fault.PhaseReceiving)),
			[]string{InvProgressNotFatal, InvProgressNotFatal}},
		{"killed before its last step", rec(false, false, 0, Exit{Code: -1, Signal: "killed"}, inProgress, upTo(fault.PhaseReceiving)), []string{InvProgressNotFatal}},
		// Exit 0 over a status that could not say completed is
		// exit0-is-completed's, unless the run warned so.
		{"read-only to the end, exit 0", rec(false, false, 0, Exit{Code: 0}, inProgress, upTo(fault.PhaseCompleted)), []string{InvExit0Completed}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, v := range Check(&c.rec, sc) {
				got = append(got, v.Invariant)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("violations %v, want %v", got, c.want)
			}
		})
	}
}

func TestLastStep(t *testing.T) {
	s := scenario.Defaults()
	if got := lastStep(s); got != fault.PhaseRename {
		t.Errorf("with a manifest: %s", got)
	}
	s.Manifest = false
	if got := lastStep(s); got != fault.PhaseSync {
		t.Errorf("without a manifest: %s", got)
	}
	s.Sync = false
	if got := lastStep(s); got != fault.PhaseWALWait {
		t.Errorf("without sync, WAL streamed: %s", got)
	}
	s.WALMethod = "fetch"
	if got := lastStep(s); got != fault.PhaseEndOfData {
		t.Errorf("WAL fetched: %s", got)
	}
}
