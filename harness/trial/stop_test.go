package trial

import (
	"slices"
	"testing"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/scenario"
)

func TestCheckStop(t *testing.T) {
	good := func() fault.StopObservation {
		return fault.StopObservation{Stopped: true, State: "in progress", Verdict: "stalled", ExitCode: 5,
			RemoveExit: 1, RemoveRefused: "the run is alive", TargetIntact: true, Continued: true, Samples: 4}
	}
	done := Record{StatusFile: true, Exit: Exit{Code: 0}, Status: completed("yes"), Oracle: &oracle.Verdict{Complete: true}}
	cases := []struct {
		name   string
		fired  bool
		modify func(o *fault.StopObservation, r *Record)
		want   []string
	}{
		{"as it should", true, func(*fault.StopObservation, *Record) {}, nil},
		{"not fired", false, func(o *fault.StopObservation, r *Record) { *o = fault.StopObservation{} }, nil},
		{"completed before the stop", true, func(o *fault.StopObservation, r *Record) {
			o.State, o.Verdict, o.ExitCode, o.RemoveRefused = "completed", "completed", 0, "completed"
		}, nil},
		{"said dead", true, func(o *fault.StopObservation, r *Record) { o.Verdict = "not-complete" }, []string{InvStoppedStalled}},
		{"said running", true, func(o *fault.StopObservation, r *Record) { o.Verdict = "running" }, []string{InvStoppedStalled}},
		{"never stopped", true, func(o *fault.StopObservation, r *Record) { o.Stopped = false }, []string{InvStoppedStalled}},
		{"removed", true, func(o *fault.StopObservation, r *Record) { o.RemoveExit, o.TargetIntact = 0, false }, []string{InvStoppedNotRemoved}},
		{"refused but touched", true, func(o *fault.StopObservation, r *Record) { o.TargetIntact = false }, []string{InvStoppedNotRemoved}},
		{"not continued", true, func(o *fault.StopObservation, r *Record) { o.Continued = false }, []string{InvContinuedCompletes}},
		{"failed after continuing", true, func(o *fault.StopObservation, r *Record) {
			r.Exit, r.Status = Exit{Code: 1}, StatusFile{Present: true, Valid: true, State: "failed"}
		}, []string{InvContinuedCompletes}},
		{"phases back", true, func(o *fault.StopObservation, r *Record) { o.PhaseOrder = "phase went back" }, []string{InvPhasesForward}},
		{"another namespace cannot tell", true, func(o *fault.StopObservation, r *Record) {
			o.OtherNamespace = &fault.NamespaceReader{Verdict: "not-complete", ExitCode: 1, RemoveExit: 1}
		}, nil},
		{"another namespace said dead", true, func(o *fault.StopObservation, r *Record) {
			o.OtherNamespace = &fault.NamespaceReader{Verdict: "not-complete", Final: true, ExitCode: 1, RemoveExit: 1}
		}, []string{InvOtherNamespaceUndecided}},
		{"another namespace would remove", true, func(o *fault.StopObservation, r *Record) {
			o.OtherNamespace = &fault.NamespaceReader{Verdict: "not-complete", ExitCode: 1, RemoveExit: 0}
		}, []string{InvOtherNamespaceUndecided}},
		{"another namespace could not run", true, func(o *fault.StopObservation, r *Record) {
			o.OtherNamespace = &fault.NamespaceReader{Error: "unshare: not found"}
		}, []string{InvOtherNamespaceUndecided}},
		{"another user agrees", true, func(o *fault.StopObservation, r *Record) {
			o.OtherUser = &fault.UserReader{User: "pgbbreader", Verdict: "stalled", ExitCode: 5}
		}, nil},
		{"another user cannot read the file", true, func(o *fault.StopObservation, r *Record) {
			o.OtherUser = &fault.UserReader{User: "pgbbreader", Verdict: "not-complete", ExitCode: 1, Summary: "status file cannot be used: permission denied"}
		}, []string{InvOtherUserAgrees}},
		{"another user could not run", true, func(o *fault.StopObservation, r *Record) {
			o.OtherUser = &fault.UserReader{User: "pgbbreader", Error: "fork/exec: permission denied"}
		}, []string{InvOtherUserAgrees}},
		{"a wrapper's first version, not yet group-readable", true, func(o *fault.StopObservation, r *Record) {
			r.Wrapped, o.Phase = true, "starting"
			o.OtherUser = &fault.UserReader{User: "pgbbreader", Error: "open status file: open /t/status/backup_status: permission denied"}
		}, nil},
		{"the patched build's first version, not readable", true, func(o *fault.StopObservation, r *Record) {
			o.Phase = "starting"
			o.OtherUser = &fault.UserReader{User: "pgbbreader", Error: "open status file: open /t/status/backup_status: permission denied"}
		}, []string{InvOtherUserAgrees}},
		{"a wrapper's later version, not readable", true, func(o *fault.StopObservation, r *Record) {
			r.Wrapped, o.Phase = true, "receiving data"
			o.OtherUser = &fault.UserReader{User: "pgbbreader", Error: "open status file: open /t/status/backup_status: permission denied"}
		}, []string{InvOtherUserAgrees}},
		{"a wrapper's reader that could not run", true, func(o *fault.StopObservation, r *Record) {
			r.Wrapped, o.Phase = true, "starting"
			o.OtherUser = &fault.UserReader{User: "pgbbreader", Error: "fork/exec: permission denied"}
		}, []string{InvOtherUserAgrees}},
		{"another namespace said dead after completion", true, func(o *fault.StopObservation, r *Record) {
			o.State, o.Verdict, o.ExitCode, o.RemoveRefused = "completed", "completed", 0, "completed"
			o.OtherNamespace = &fault.NamespaceReader{Verdict: "completed", Final: true, RemoveExit: 1}
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := done
			o := good()
			tc.modify(&o, &r)
			r.Fault = fault.Injection{Plan: scenario.PlanStop, Fired: tc.fired, Stop: &o}
			var got []string
			for _, v := range Check(&r, scenario.Defaults()) {
				got = append(got, v.Invariant)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("violations %v, want %v (%+v)", got, tc.want, Check(&r, scenario.Defaults()))
			}
		})
	}
}
