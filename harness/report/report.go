// Package report turns trial records into the campaign's evidence: a
// summary table per scenario and fault plan, a table of how often each
// operator signal (exit code, "base backup completed" in the log,
// backup_manifest present, the status file) claimed a completion the
// oracle rejected or missed one it confirmed, and an HTML page with an SVG
// chart of outcomes over the phases of a backup.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/trial"
)

// Row is one line of the summary: a scenario and fault plan.
type Row struct {
	Scenario string `json:"scenario"`
	Plan     string `json:"plan"`
	// Trials counts trials; Fired those whose fault was injected; Late
	// those whose fault fired after the last data file was received.
	Trials int `json:"trials"`
	Fired  int `json:"fired"`
	Late   int `json:"late"`
	// Exit0 counts exit code 0; Completed valid "completed" status files;
	// InProgress and Failed the other states; NoStatus trials without a
	// valid status file.
	Exit0      int `json:"exit0"`
	Completed  int `json:"completed"`
	InProgress int `json:"in_progress"`
	Failed     int `json:"failed"`
	NoStatus   int `json:"no_status"`
	// Checked counts oracle runs; Complete those that found a complete
	// backup.
	Checked  int `json:"checked"`
	Complete int `json:"complete"`
	// Orphans counts trials with a WAL child alive after its parent.
	Orphans int `json:"orphans"`
	// Violations counts broken invariants.
	Violations int `json:"violations"`
	// Dropped counts failing trials whose directories were not kept
	// (pgbb-crash -keep-failing): their records and replay commands
	// remain.
	Dropped int `json:"dropped"`
}

// Signal names.
const (
	SignalExit     = "exit code 0"
	SignalLog      = "log \"base backup completed\""
	SignalManifest = "backup_manifest present"
	SignalStatus   = "status file completed"
)

// Signals lists the operator signals in report order.
func Signals() []string { return []string{SignalExit, SignalLog, SignalManifest, SignalStatus} }

// Claims returns, for each signal, whether it claimed a completion in r.
func Claims(r *trial.Record) map[string]bool {
	return map[string]bool{
		SignalExit:     r.Exited0(),
		SignalLog:      r.LogCompleted,
		SignalManifest: r.ManifestPresent,
		SignalStatus:   r.StatusCompleted(),
	}
}

// SignalRow says how one signal did over the trials the oracle checked.
type SignalRow struct {
	Signal string `json:"signal"`
	Plan   string `json:"plan"`
	// Checked counts trials the oracle checked.
	Checked int `json:"checked"`
	// Claims counts trials where the signal claimed completion.
	Claims int `json:"claims"`
	// FalseClaims: the signal claimed completion, the oracle rejected it.
	FalseClaims int `json:"false_claims"`
	// Misses: the signal did not claim completion, the oracle found the
	// backup complete.
	Misses int `json:"misses"`
}

// Summary is the aggregate of a campaign.
type Summary struct {
	Rows       []Row       `json:"rows"`
	Total      Row         `json:"total"`
	Signals    []SignalRow `json:"signals"`
	Violations []string    `json:"violations"`
	// Phases counts outcomes per phase at fault (see Outcome).
	Phases map[string]map[string]int `json:"phases"`
	// Coverage is what the trials exercised beyond their fault plans.
	Coverage Coverage `json:"coverage"`
}

// Outcome classifies a trial for the chart.
func Outcome(r *trial.Record) string {
	switch {
	case len(r.Violations) > 0:
		return "violation"
	case r.StatusCompleted():
		return "completed"
	case r.Status.Valid && r.Status.State == "failed":
		return "failed"
	case r.Status.Valid && r.Status.State == "in progress":
		return "in progress"
	case r.Exited0():
		return "exit 0"
	case !r.TargetPresent:
		return "no directory"
	}
	return "no status"
}

// Outcomes lists outcome names in chart order.
func Outcomes() []string {
	return []string{"completed", "exit 0", "in progress", "failed", "no status", "no directory", "violation"}
}

// PhaseOf returns the phase a trial's fault landed in ("no fault" when it
// did not fire).
func PhaseOf(r *trial.Record) string {
	if !r.Fault.Fired {
		return "no fault"
	}
	return r.Fault.Phase
}

// Summarize aggregates records.
func Summarize(recs []*trial.Record) Summary {
	var s Summary
	rows := map[[2]string]*Row{}
	sig := map[[2]string]*SignalRow{}
	s.Phases = map[string]map[string]int{}
	for _, r := range recs {
		s.Coverage.cover(r)
		k := [2]string{r.Scenario, r.Plan}
		if rows[k] == nil {
			rows[k] = &Row{Scenario: r.Scenario, Plan: r.Plan}
		}
		rows[k].add(r)
		s.Total.add(r)
		s.Violations = append(s.Violations, violationLines(r)...)
		ph := PhaseOf(r)
		if s.Phases[ph] == nil {
			s.Phases[ph] = map[string]int{}
		}
		s.Phases[ph][Outcome(r)]++
		addSignals(sig, r)
	}
	for _, r := range rows {
		s.Rows = append(s.Rows, *r)
	}
	sort.Slice(s.Rows, func(i, j int) bool {
		if s.Rows[i].Scenario != s.Rows[j].Scenario {
			return s.Rows[i].Scenario < s.Rows[j].Scenario
		}
		return planOrder(s.Rows[i].Plan) < planOrder(s.Rows[j].Plan)
	})
	for _, r := range sig {
		s.Signals = append(s.Signals, *r)
	}
	sortSignals(s.Signals)
	s.Total.Scenario, s.Total.Plan = "total", ""
	return s
}

// add counts a record into the row.
func (x *Row) add(r *trial.Record) {
	x.Trials++
	if r.Fault.Fired {
		x.Fired++
	}
	if r.Fault.Fired && isLate(r.Fault.Phase) {
		x.Late++
	}
	if r.Exited0() {
		x.Exit0++
	}
	switch {
	case r.StatusCompleted():
		x.Completed++
	case r.Status.Valid && r.Status.State == "in progress":
		x.InProgress++
	case r.Status.Valid && r.Status.State == "failed":
		x.Failed++
	default:
		x.NoStatus++
	}
	if r.Oracle != nil {
		x.Checked++
		if r.Oracle.Complete {
			x.Complete++
		}
	}
	if r.Orphans.Alive {
		x.Orphans++
	}
	x.Violations += len(r.Violations)
	if Dropped(r) {
		x.Dropped++
	}
}

// violationLines says each invariant the record broke, with its replay
// command and where its evidence is.
func violationLines(r *trial.Record) []string {
	var lines []string
	for _, v := range r.Violations {
		line := fmt.Sprintf("%s: %s: %s", r.ID, v.Invariant, v.Message)
		if r.Replay != "" {
			line += "\n    replay: " + r.Replay
		}
		switch {
		case r.Dir != "":
			line += "\n    kept:   " + r.Dir
		case Dropped(r):
			line += "\n    kept:   no (over -keep-failing for this invariant and plan)"
		}
		lines = append(lines, line)
	}
	return lines
}

// addSignals counts how each operator signal did on a record the oracle
// checked, under its plan and under "all".
func addSignals(sig map[[2]string]*SignalRow, r *trial.Record) {
	if r.Oracle == nil {
		return
	}
	claims := Claims(r)
	for _, name := range Signals() {
		if name == SignalStatus && !r.StatusFile {
			continue
		}
		for _, plan := range []string{r.Plan, "all"} {
			sk := [2]string{name, plan}
			sr := sig[sk]
			if sr == nil {
				sr = &SignalRow{Signal: name, Plan: plan}
				sig[sk] = sr
			}
			sr.Checked++
			if claims[name] {
				sr.Claims++
				if !r.Oracle.Complete {
					sr.FalseClaims++
				}
			} else if r.Oracle.Complete {
				sr.Misses++
			}
		}
	}
}

// sortSignals orders signal rows by plan, then in Signals order.
func sortSignals(rows []SignalRow) {
	order := map[string]int{}
	for i, n := range Signals() {
		order[n] = i
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Plan != b.Plan {
			return planLess(a.Plan, b.Plan)
		}
		return order[a.Signal] < order[b.Signal]
	})
}

// Dropped says whether a failing trial's directory was removed to bound
// the evidence (pgbb-crash -keep-failing): it broke an invariant and names
// no directory.
func Dropped(r *trial.Record) bool { return len(r.Violations) > 0 && r.Dir == "" }

func isLate(phase string) bool {
	p, ok := fault.ParsePhase(phase)
	return ok && p >= fault.PhaseEndOfData
}

// planLess orders the plans of the signal table: "all" first, then the
// control plan "none", then the others by name.
func planLess(a, b string) bool {
	if (a == "all") != (b == "all") {
		return a == "all"
	}
	return planOrder(a) < planOrder(b)
}

func planOrder(p string) string {
	if p == "none" {
		return "0"
	}
	return "1" + p
}

// WriteTable prints the summary tables.
func WriteTable(w io.Writer, s Summary) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tplan\ttrials\tfired\tlate\texit0\tcompleted\tin prog\tfailed\tno status\tchecked\tcomplete\torphans\tviolations\t")
	for _, r := range append(s.Rows, s.Total) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", r.Scenario, r.Plan, r.Trials, r.Fired, r.Late,
			r.Exit0, r.Completed, r.InProgress, r.Failed, r.NoStatus, r.Checked, r.Complete, r.Orphans, r.Violations)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "operator signals over the trials the oracle checked (false claim: said complete, oracle rejected; miss: did not say so, oracle confirmed):")
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "plan\tsignal\tchecked\tclaims\tfalse claims\tmisses\t")
	for _, r := range s.Signals {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t\n", r.Plan, r.Signal, r.Checked, r.Claims, r.FalseClaims, r.Misses)
	}
	tw.Flush()
	if len(s.Violations) > 0 {
		fmt.Fprintf(w, "\n%d INVARIANT VIOLATIONS:\n", len(s.Violations))
		for _, v := range s.Violations {
			fmt.Fprintln(w, "  "+v)
		}
		if s.Total.Dropped > 0 {
			fmt.Fprintf(w, "%d failing trials' directories not kept (over -keep-failing per invariant and plan): their records and replay commands are above\n", s.Total.Dropped)
		}
	} else {
		fmt.Fprintln(w, "\ninvariant violations: 0")
	}
	WriteCoverage(w, s.Coverage)
}

// Save writes summary.json and report.html into dir.
func Save(dir string, s Summary, title string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save summary: %w", err)
	}
	var b strings.Builder
	b.WriteString("<h2>Outcomes by the phase the fault landed in</h2>\n")
	b.WriteString(Chart(s))
	b.WriteString("\n<h2>Summary</h2>\n<pre>\n")
	var tb strings.Builder
	WriteTable(&tb, s)
	b.WriteString(htmlEscape(tb.String()))
	b.WriteString("</pre>\n")
	if err := os.WriteFile(filepath.Join(dir, "report.html"), []byte(page(title, b.String())), 0o644); err != nil {
		return fmt.Errorf("save report: %w", err)
	}
	return nil
}

// page wraps the sections of a report in an HTML page with title as its
// heading.
func page(title, body string) string {
	return fmt.Sprintf("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head><body style=\"font-family:sans-serif\">\n<h1>%s</h1>\n%s</body></html>\n",
		htmlEscape(title), htmlEscape(title), body)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;").Replace(s)
}

var outcomeColors = map[string]string{
	"completed": "#2e7d32", "exit 0": "#81c784", "in progress": "#1565c0", "failed": "#ef6c00",
	"no status": "#9e9e9e", "no directory": "#d7ccc8", "violation": "#c62828",
}

// Chart returns an SVG stacked bar chart: one bar per phase of a backup
// (in order, then "no fault"), stacked by outcome.
func Chart(s Summary) string {
	var cols []string
	for _, p := range fault.Phases() {
		if _, ok := s.Phases[p.String()]; ok {
			cols = append(cols, p.String())
		}
	}
	if _, ok := s.Phases["no fault"]; ok {
		cols = append(cols, "no fault")
	}
	maxN := 1
	for _, c := range cols {
		n := 0
		for _, v := range s.Phases[c] {
			n += v
		}
		maxN = max(maxN, n)
	}
	const h, barW, gap, left, top = 260, 70, 24, 40, 20
	width := left + len(cols)*(barW+gap) + 160
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-size="11">`, width, h+top+50)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`, left, top+h, left+len(cols)*(barW+gap), top+h)
	for i, c := range cols {
		x := left + gap/2 + i*(barW+gap)
		y := top + h
		total := 0
		for _, o := range Outcomes() {
			n := s.Phases[c][o]
			if n == 0 {
				continue
			}
			total += n
			bh := n * h / maxN
			y -= bh
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %s %d</title></rect>`, x, y, barW, bh, outcomeColors[o], c, o, n)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%d</text>`, x+barW/2, y-4, total)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, x+barW/2, top+h+16, c)
	}
	lx := left + len(cols)*(barW+gap) + 10
	for i, o := range Outcomes() {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`, lx, top+i*18, outcomeColors[o], lx+18, top+i*18+10, o)
	}
	b.WriteString("</svg>")
	return b.String()
}
