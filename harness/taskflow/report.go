package taskflow

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgbb/pgbb/harness/status"
)

// Result is one scenario's outcomes, with the unfaulted runs' times.
type Result struct {
	Scenario Scenario `json:"scenario"`
	// Unfaulted are the baseline runs, one per variant.
	Unfaulted []Outcome `json:"unfaulted"`
	// Flows are the task flows.
	Flows []Outcome `json:"flows"`
	// Violations are the broken promises of the flows with a status file
	// (patched, wrapper); Errors the flows that could not run.
	Violations []string `json:"violations,omitempty"`
	Errors     []string `json:"errors,omitempty"`
}

// baseline returns the unfaulted run's wall time of variant v (0 if none).
func (res *Result) baseline(v Variant) time.Duration {
	for _, o := range res.Unfaulted {
		if o.Variant == v && o.Converged {
			return o.Wall
		}
	}
	return 0
}

// stallLimit is how soon a stall must be seen: the reader's stall age
// (status.StallAge), plus a refresh interval (the last rewrite may have
// come just before the sender stopped), the second resolution of UPDATE
// TIME and the monitor's poll.
func stallLimit(sc Scenario) time.Duration {
	return status.StallAge(sc.Refresh) + time.Duration(sc.Refresh)*time.Second + 3*time.Second
}

// cadenceLimit is the longest gap between two UPDATE TIMEs of a live run
// that is not a broken promise: the interval, the second resolution of
// the time, and a loaded machine's delay.
func cadenceLimit(sc Scenario) time.Duration {
	r := time.Duration(sc.Refresh) * time.Second
	return r + max(2*time.Second, r)
}

// Judge fills in Violations and Errors: what a flow with a status file
// (patched, or stock under the wrapper) must never do, and what only the
// stock flows are allowed to show.
func (res *Result) Judge() {
	res.Violations, res.Errors = nil, nil
	for _, o := range append(append([]Outcome{}, res.Unfaulted...), res.Flows...) {
		if o.Err != "" {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %s", o.ID(), o.Err))
			continue
		}
		if !o.Variant.HasStatusFile() {
			continue
		}
		bad := func(format string, args ...any) {
			res.Violations = append(res.Violations, o.ID()+": "+fmt.Sprintf(format, args...))
		}
		if o.TakenIncomplete && !o.Fresh {
			bad("took an incomplete backup as complete: %s", o.Oracle.Reason)
		}
		if f := o.FreshResult; f != nil {
			if f.FalseCompletions > 0 {
				bad("false completion: %s", strings.Join(f.FalseNotes, "; "))
			}
			if f.Blocked > 0 {
				bad("%d retries failed on a dead run's leftovers: %s", f.Blocked, strings.Join(f.BlockedNotes, "; "))
			}
		}
		if o.LiveRemoved > 0 {
			bad("removed the directories of a live run %d time(s)", o.LiveRemoved)
		}
		if o.FalseStalls > 0 {
			bad("%d readings called a healthy run stalled, first: %s", o.FalseStalls, strings.Join(o.StallNotes, "; "))
		}
		for _, p := range o.Problems {
			bad("%s", p)
		}
		if lim := cadenceLimit(res.Scenario); o.MaxUpdateGap > lim {
			bad("a live run's UPDATE TIME advanced by %s at once (refresh %ds, limit %s)", o.MaxUpdateGap, res.Scenario.Refresh, lim)
		}
		if o.Stall && (o.StallSeenAfter == 0 || o.StallSeenAfter > stallLimit(res.Scenario)) {
			bad("stall seen after %s (limit %s; 0: never)", o.StallSeenAfter.Round(time.Second), stallLimit(res.Scenario))
		}
		if (o.Unfaulted || o.Stall || (o.Policy == Leave && !o.Fresh)) && !o.Converged {
			bad("did not converge: a run left alone must complete and be taken as complete")
		}
	}
}

// WriteTable prints the side-by-side table and a summary of the seed's
// scenario in numbers.
func (res *Result) WriteTable(w io.Writer) {
	sc := res.Scenario
	fmt.Fprintf(w, "task flows of %s: scale %d, --max-rate %s, deadline %s per attempt, %d attempts, refresh %ds; pg_basebackup in TZ %s, pgbb-status in TZ %s\n",
		sc.Name, sc.Scale, sc.MaxRate, time.Duration(sc.Deadline), sc.Attempts, sc.Refresh, WriterTZ, ReaderTZ)
	for _, o := range res.Unfaulted {
		fmt.Fprintf(w, "  unfaulted %-7s run: %s (converged %t)\n", o.Variant, o.Wall.Round(time.Second), o.Converged)
	}
	res.writeClassic(w)
	res.writeFresh(w)
	for _, e := range res.Errors {
		fmt.Fprintf(w, "ERROR %s\n", e)
	}
	for _, v := range res.Violations {
		fmt.Fprintf(w, "VIOLATION %s\n", v)
	}
}

// writeClassic prints the table of the flows that judge with what their
// build offers and clean up, and a summary per variant, if the scenario
// has such flows.
func (res *Result) writeClassic(w io.Writer) {
	sc := res.Scenario
	if !slices.ContainsFunc(res.Flows, func(o Outcome) bool { return !o.Fresh }) {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "flow\tconverged\tattempts\twall\twall/unfaulted\tincomplete taken\tlive removed\tfalse stalls\tstall seen\tmax update gap\t")
	for _, o := range res.Flows {
		if o.Fresh {
			continue
		}
		ratio, stall, gap, stalls := res.ratio(o), "-", "-", "n/a"
		if o.Variant.HasStatusFile() {
			stalls = fmt.Sprintf("%d/%d", o.FalseStalls, o.Samples)
			gap = o.MaxUpdateGap.Round(time.Second).String()
			if o.Stall {
				stall = fmt.Sprintf("%s (%.1f intervals)", o.StallSeenAfter.Round(time.Second), o.StallSeenAfter.Seconds()/float64(sc.Refresh))
			}
		}
		fmt.Fprintf(tw, "%s\t%t\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", o.ID(), o.Converged, len(o.Attempts),
			o.Wall.Round(time.Second), ratio, yesNo(o.TakenIncomplete), o.LiveRemoved, stalls, stall, gap)
	}
	tw.Flush()
	for _, v := range Variants() {
		conv, flows, taken, live := 0, 0, 0, 0
		for _, o := range res.Flows {
			if o.Variant != v || o.Fresh {
				continue
			}
			flows++
			if o.Converged && !o.TakenIncomplete {
				conv++
			}
			if o.TakenIncomplete {
				taken++
			}
			live += o.LiveRemoved
		}
		if flows == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: %d of %d flows ended with a complete backup; %d took an incomplete one as complete; %d clean-ups removed a live run\n",
			v, conv, flows, taken, live)
	}
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "no"
}

// ratio is a converged flow's wall time against its variant's unfaulted
// run, or "-".
func (res *Result) ratio(o Outcome) string {
	if b := res.baseline(o.Variant); b > 0 && o.Converged {
		return fmt.Sprintf("%.2f", float64(o.Wall)/float64(b))
	}
	return "-"
}

// writeFresh prints the fresh flows' table and a summary per variant, if
// the scenario has fresh flows.
func (res *Result) writeFresh(w io.Writer) {
	var fresh []Outcome
	for _, o := range res.Flows {
		if o.Fresh && o.FreshResult != nil {
			fresh = append(fresh, o)
		}
	}
	if len(fresh) == 0 {
		return
	}
	fmt.Fprintln(w, "fresh flows: each attempt into b-N, one --status-file, judged by exit code and backup_manifest (stock) or grep '^STATUS: completed' (patched), nothing cleaned up:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "flow\tconverged\tattempts\twall\twall/unfaulted\tfalse completions\tdead attempts\tdisk left\tper dead attempt\torphans alive\tblocked retries\tstale .tmp (planted)\texit 0 unseen\t")
	for _, o := range fresh {
		f := o.FreshResult
		fmt.Fprintf(tw, "%s\t%t\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t\n", o.ID(), o.Converged, len(o.Attempts),
			o.Wall.Round(time.Second), res.ratio(o), f.FalseCompletions, f.DeadAttempts, humanBytes(f.LeftBytes),
			perAttempt(f.LeftBytes, f.DeadAttempts), f.Orphans, patchedOnly(o, fmt.Sprint(f.Blocked)),
			patchedOnly(o, fmt.Sprintf("%d (%d)", f.StaleTemps, f.Planted)), patchedOnly(o, fmt.Sprint(f.Missed)))
	}
	tw.Flush()
	for _, v := range []Variant{Stock, Patched} {
		conv, flows, falses, dead, orphans := 0, 0, 0, 0, 0
		var left int64
		for _, o := range fresh {
			if o.Variant != v {
				continue
			}
			flows++
			if o.Converged && o.FreshResult.FalseCompletions == 0 {
				conv++
			}
			falses += o.FreshResult.FalseCompletions
			dead += o.FreshResult.DeadAttempts
			orphans += o.FreshResult.Orphans
			left += o.FreshResult.LeftBytes
		}
		if flows > 0 {
			fmt.Fprintf(w, "%s fresh: %d of %d flows ended with their own complete backup; %d false completions; %d dead attempts left %s (%s each), %d with processes still alive\n",
				v, conv, flows, falses, dead, humanBytes(left), perAttempt(left, dead), orphans)
		}
	}
}

// patchedOnly returns s for a patched flow, "n/a" for a stock one.
func patchedOnly(o Outcome, s string) string {
	if o.Variant != Patched {
		return "n/a"
	}
	return s
}

// perAttempt is bytes shared among n attempts, or "-".
func perAttempt(bytes int64, n int) string {
	if n == 0 {
		return "-"
	}
	return humanBytes(bytes / int64(n))
}

// humanBytes writes n bytes in MB (10^6) or GB (10^9), one decimal.
func humanBytes(n int64) string {
	if n >= 1e9 {
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}
