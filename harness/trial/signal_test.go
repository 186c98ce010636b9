package trial

import (
	"fmt"
	"testing"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/scenario"
)

// TestSignalFailsRun: SIGTERM or SIGINT to pg_basebackup alone must end
// the run as "failed" with a REASON naming the signal, leave no process
// of its group behind and, without --no-clean, no directory it created;
// each record below that breaks one of these is flagged, the correct
// ones are not.
func TestSignalFailsRun(t *testing.T) {
	clean := scenario.Defaults()
	noClean := clean
	noClean.NoClean = true
	failed := func(reason string) StatusFile {
		return StatusFile{Present: true, Valid: true, State: "failed", Reason: reason}
	}
	term := func(exit Exit, sf StatusFile) Record {
		return Record{StatusFile: true, Plan: scenario.PlanTerm, Fault: fault.Injection{Plan: scenario.PlanTerm, Fired: true}, Exit: exit, Status: sf}
	}
	done := term(Exit{Code: 0}, completed("yes"))
	done.Oracle = &oracle.Verdict{Complete: true}
	withOrphan := term(Exit{Code: 1}, failed("terminated by signal SIGTERM while receiving data"))
	withOrphan.Orphans = Orphans{Alive: true, PIDs: []int{4242}}
	left := term(Exit{Code: 1}, failed("terminated by signal SIGTERM while receiving data"))
	left.CreatedLeft = []string{"/t/target"}
	sigint := term(Exit{Code: 1}, failed("terminated by signal SIGINT while syncing"))
	sigint.Plan, sigint.Fault.Plan = scenario.PlanInt, scenario.PlanInt
	notFired := term(Exit{Code: -1, Signal: "terminated"}, StatusFile{Present: true, Valid: true, State: "in progress"})
	notFired.Fault.Fired = false
	kill := term(Exit{Code: -1, Signal: "killed"}, StatusFile{Present: true, Valid: true, State: "in progress"})
	kill.Plan, kill.Fault.Plan = scenario.PlanKill, scenario.PlanKill
	cases := []struct {
		name string
		rec  Record
		sc   scenario.Scenario
		want []string
	}{
		{"failed, reason names the signal, cleaned", term(Exit{Code: 1}, failed("terminated by signal SIGTERM while receiving data")), clean, nil},
		{"failed, --no-clean keeps the directories", left, noClean, nil},
		{"completed before the signal", done, clean, nil},
		{"no status file yet", term(Exit{Code: -1, Signal: "terminated"}, StatusFile{}), clean, nil},
		{"SIGINT named", sigint, clean, nil},
		{"signal before its time", notFired, clean, nil},
		{"SIGKILL is another plan", kill, clean, nil},
		// The previous series: no handler, the run dies "in progress".
		{"killed by the signal in progress", term(Exit{Code: -1, Signal: "terminated"}, StatusFile{Present: true, Valid: true, State: "in progress"}), clean, []string{InvSignalFailsRun}},
		{"failed for another reason", term(Exit{Code: 1}, failed("error while receiving data")), clean, []string{InvSignalFailsRun}},
		{"reason names the other signal", term(Exit{Code: 1}, failed("terminated by signal SIGTERMX")), clean, []string{InvSignalFailsRun}},
		{"WAL child left", withOrphan, clean, []string{InvSignalFailsRun}},
		{"directory not cleaned", left, clean, []string{InvSignalFailsRun}},
		// Exit 0 over "failed" is exit0-is-completed's.
		{"exit 0 over failed", term(Exit{Code: 0}, failed("terminated by signal SIGTERM while syncing")), clean, []string{InvExit0Completed}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, v := range Check(&c.rec, c.sc) {
				got = append(got, v.Invariant)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("violations %v, want %v", got, c.want)
			}
		})
	}
}

func TestContainsWord(t *testing.T) {
	for s, want := range map[string]bool{
		"terminated by signal SIGTERM while syncing": true, "SIGTERM": true, "(SIGTERM)": true,
		"SIGTERMX": false, "XSIGTERM": false, "": false, "signal sigterm": false,
	} {
		if got := containsWord(s, "SIGTERM"); got != want {
			t.Errorf("containsWord(%q) = %t", s, got)
		}
	}
}
