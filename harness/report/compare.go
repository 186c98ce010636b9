package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

// Build is one column of a comparison: the records of one build under
// test, with the label that heads its column.
type Build struct {
	Label string
	// Source says where the records came from (a run directory), Detail
	// how they were made (seed, backend, scenarios); both may be empty.
	Source string
	Detail string
	// Records are the build's trial records.
	Records []*trial.Record
}

// BuildInfo describes a column of a comparison.
type BuildInfo struct {
	Label  string `json:"label"`
	Source string `json:"source,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Trials counts the build's records; StatusFile says whether the
	// build writes a status file (as its records say).
	Trials     int  `json:"trials"`
	StatusFile bool `json:"status_file"`
}

// Why a cell of a comparison has no counts.
const (
	// MissingNoTrials: the build ran no trial of the plan (shown "-").
	MissingNoTrials = "no trials"
	// MissingNoStatusFile: the status file signal of a build that writes
	// none, a stock build (shown "n/a").
	MissingNoStatusFile = "no status file"
)

// Cell is how one signal did for one build under one plan, over the
// trials the oracle checked (see SignalRow).
type Cell struct {
	Build string `json:"build"`
	// Missing says why there are no counts (MissingNoTrials,
	// MissingNoStatusFile); empty when the counts apply.
	Missing string `json:"missing,omitempty"`
	// Trials counts the build's trials of the plan, checked or not.
	Trials      int `json:"trials"`
	Checked     int `json:"checked"`
	Claims      int `json:"claims"`
	FalseClaims int `json:"false_claims"`
	Misses      int `json:"misses"`
}

// String is the cell as the text table shows it:
// checked/claims/false claims/misses, "-" or "n/a".
func (c Cell) String() string {
	switch c.Missing {
	case "":
		return fmt.Sprintf("%d/%d/%d/%d", c.Checked, c.Claims, c.FalseClaims, c.Misses)
	case MissingNoTrials:
		return "-"
	case MissingNoStatusFile:
		return "n/a"
	}
	return c.Missing
}

// CompareRow is one fault plan ("all" for every trial) and signal, with
// a cell per build in the comparison's order.
type CompareRow struct {
	Plan   string `json:"plan"`
	Signal string `json:"signal"`
	Cells  []Cell `json:"cells"`
}

// Comparison sets the operator signals of several builds side by side:
// per fault plan, how often each claimed a completion the oracle rejected
// and how often it missed one the oracle confirmed; and what the runs
// left running and what the builds' clean-ups did about it.
type Comparison struct {
	Builds []BuildInfo `json:"builds"`
	// Rows are ordered by plan as the summary orders them ("all" first,
	// then "none", then the others by name), then by signal (Signals).
	Rows []CompareRow `json:"rows"`
	// Processes has a row per plan, in the order of Rows.
	Processes []ProcessRow `json:"processes"`
	// Scoped names the plans of the comparison whose fault is not the
	// same on every build, with what differs (PlanScope).
	Scoped map[string]string `json:"scoped,omitempty"`
	// Notes qualify the comparison, e.g. builds that ran different
	// scenarios.
	Notes []string `json:"notes,omitempty"`
}

// ProcessCell is, for one build under one plan, how often a process of
// the run outlived the one the trial started, and how often the build's
// clean-up removed a live run (LiveRemoved), over every trial.
type ProcessCell struct {
	Build string `json:"build"`
	// Missing is MissingNoTrials when the build ran no trial of the plan.
	Missing string `json:"missing,omitempty"`
	Trials  int    `json:"trials"`
	// Orphaned counts trials whose run left a process alive once the
	// process the trial started had exited (the stock WAL streaming
	// child; under the wrapper also pg_basebackup).
	Orphaned int `json:"orphaned"`
	// LiveRemoved counts trials whose clean-up removed a live run.
	LiveRemoved int `json:"live_removed"`
}

// String is the cell as the text table shows it:
// trials/orphaned/live runs removed, or "-".
func (c ProcessCell) String() string {
	if c.Missing != "" {
		return "-"
	}
	return fmt.Sprintf("%d/%d/%d", c.Trials, c.Orphaned, c.LiveRemoved)
}

// ProcessRow is one fault plan ("all" for every trial), with a cell per
// build in the comparison's order.
type ProcessRow struct {
	Plan  string        `json:"plan"`
	Cells []ProcessCell `json:"cells"`
}

// LiveRemoved says whether the clean-up an operator of r's build runs
// would have removed directories that a process of the run was still
// writing into. With a status file that clean-up is --remove-if-dead,
// asked while processes outlived the one started and while the stop plan
// held the run stopped (trial.Record.LiveRemoved). Without one, it is
// what a stock user has: once the process started has exited, a run that
// neither exited 0 nor left backup_manifest is removed with rm -rf, which
// removes a live run whenever a process of its group outlived it.
func LiveRemoved(r *trial.Record) bool {
	if r.StatusFile {
		return r.LiveRemoved()
	}
	return r.Orphans.Alive && !r.Exited0() && !r.ManifestPresent
}

// PlanScope says, for the fault plans that do not do the same on every
// build, what differs; a comparison marks them. Every build runs the
// same scenarios, so that its columns count the same trials: where a
// plan has nothing to aim at, its trials are runs without that fault.
func PlanScope() map[string]string {
	return map[string]string{
		scenario.PlanKillBackup: "SIGKILL to pg_basebackup alone: under the wrapper its child, which pgbb-run outlives; on the other builds the same as kill",
		scenario.PlanTermBackup: "SIGTERM to pg_basebackup alone: under the wrapper its child; on the other builds the same as term",
		scenario.PlanStop: "SIGSTOP of the process started (the wrapper's, under it), the reader and --remove-if-dead while stopped; " +
			"a build without a status file is only stopped and continued",
		scenario.PlanStatusDirReadOnly: "the status file's directory made read-only: a build without a status file has none, and runs unfaulted",
		scenario.PlanStatusFileIOError: "I/O errors on the status file alone: a build without a status file has none to fault",
	}
}

// Compare counts, for each build, each plan (the union over the builds)
// and each signal, what the signal claimed over the trials the oracle
// checked, as Summarize does for one build.
func Compare(builds []Build) Comparison {
	var c Comparison
	cols := make([]column, len(builds))
	plans := map[string]bool{}
	for i, b := range builds {
		cols[i] = newColumn(b.Records)
		c.Builds = append(c.Builds, BuildInfo{Label: b.Label, Source: b.Source, Detail: b.Detail,
			Trials: len(b.Records), StatusFile: cols[i].status["all"]})
		for p := range cols[i].trials {
			plans[p] = true
		}
	}
	order := make([]string, 0, len(plans))
	for p := range plans {
		order = append(order, p)
	}
	sort.Slice(order, func(i, j int) bool { return planLess(order[i], order[j]) })
	scope := PlanScope()
	for _, p := range order {
		for _, sig := range Signals() {
			row := CompareRow{Plan: p, Signal: sig}
			for i, b := range builds {
				row.Cells = append(row.Cells, cols[i].cell(b.Label, p, sig))
			}
			c.Rows = append(c.Rows, row)
		}
		prow := ProcessRow{Plan: p}
		for i, b := range builds {
			prow.Cells = append(prow.Cells, cols[i].processCell(b.Label, p))
		}
		c.Processes = append(c.Processes, prow)
		if why, ok := scope[p]; ok {
			if c.Scoped == nil {
				c.Scoped = map[string]string{}
			}
			c.Scoped[p] = why
		}
	}
	c.Notes = scenarioNotes(builds)
	return c
}

// column is one build's counts, by plan ("all" included).
type column struct {
	signals  map[[2]string]SignalRow // by signal, plan
	trials   map[string]int
	status   map[string]bool // some trial of the plan expects a status file
	orphaned map[string]int
	removed  map[string]int // live runs removed
}

func newColumn(recs []*trial.Record) column {
	col := column{signals: map[[2]string]SignalRow{}, trials: map[string]int{}, status: map[string]bool{},
		orphaned: map[string]int{}, removed: map[string]int{}}
	for _, r := range Summarize(recs).Signals {
		col.signals[[2]string{r.Signal, r.Plan}] = r
	}
	for _, r := range recs {
		for _, p := range []string{r.Plan, "all"} {
			col.trials[p]++
			col.status[p] = col.status[p] || r.StatusFile
			if r.Orphans.Alive {
				col.orphaned[p]++
			}
			if LiveRemoved(r) {
				col.removed[p]++
			}
		}
	}
	return col
}

func (col column) processCell(build, plan string) ProcessCell {
	c := ProcessCell{Build: build, Trials: col.trials[plan]}
	if c.Trials == 0 {
		c.Missing = MissingNoTrials
		return c
	}
	c.Orphaned, c.LiveRemoved = col.orphaned[plan], col.removed[plan]
	return c
}

func (col column) cell(build, plan, signal string) Cell {
	c := Cell{Build: build, Trials: col.trials[plan]}
	switch {
	case c.Trials == 0:
		c.Missing = MissingNoTrials
	case signal == SignalStatus && !col.status[plan]:
		c.Missing = MissingNoStatusFile
	default:
		r := col.signals[[2]string{signal, plan}]
		c.Checked, c.Claims, c.FalseClaims, c.Misses = r.Checked, r.Claims, r.FalseClaims, r.Misses
	}
	return c
}

// scenarioNotes says so when the builds did not all run the same
// scenarios.
func scenarioNotes(builds []Build) []string {
	var lists []string
	for _, b := range builds {
		seen := map[string]bool{}
		var names []string
		for _, r := range b.Records {
			if !seen[r.Scenario] {
				seen[r.Scenario] = true
				names = append(names, r.Scenario)
			}
		}
		slices.Sort(names)
		lists = append(lists, strings.Join(names, ", "))
	}
	same := true
	for _, l := range lists {
		same = same && l == lists[0]
	}
	if same {
		return nil
	}
	note := "the builds ran different scenarios, so their counts are not comparable as they stand:"
	for i, b := range builds {
		note += fmt.Sprintf(" %s: %s;", b.Label, lists[i])
	}
	return []string{strings.TrimSuffix(note, ";")}
}

// compareKey explains the counts and the empty cells of a comparison.
const compareKey = "false claim: said complete, oracle rejected; miss: did not say so, oracle confirmed; " +
	"-: the build ran no trial of the plan; n/a: the build writes no status file"

// processKey explains the process table of a comparison.
const processKey = "orphaned: a process of the run (the WAL streaming child; under the wrapper also pg_basebackup) " +
	"was alive once the process started had exited; live run removed: the build's clean-up would have removed the directories " +
	"of a run still writing (with a status file: --remove-if-dead --dry-run that did not refuse while orphans lived, " +
	"or --remove-if-dead while the stop plan held the run; without one: rm -rf of a run that neither exited 0 nor left " +
	"backup_manifest, once the process started had exited, while an orphan lived)"

// scopeMark marks a plan whose fault differs between builds.
const scopeMark = "*"

// planLabel is the plan as the tables show it, marked when scoped.
func (c Comparison) planLabel(plan string) string {
	if _, ok := c.Scoped[plan]; ok {
		return plan + scopeMark
	}
	return plan
}

// scopeNotes says what differs for each marked plan, in plan order.
func (c Comparison) scopeNotes() []string {
	var notes []string
	for _, r := range c.Processes {
		if why, ok := c.Scoped[r.Plan]; ok {
			notes = append(notes, fmt.Sprintf("%s%s %s", r.Plan, scopeMark, why))
		}
	}
	return notes
}

// WriteComparison prints the builds and the comparison table.
func WriteComparison(w io.Writer, c Comparison) {
	fmt.Fprintln(w, "builds:")
	for _, b := range c.Builds {
		fmt.Fprintf(w, "  %s: %d trials, status file %s", b.Label, b.Trials, yesNo(b.StatusFile))
		if b.Source != "" {
			fmt.Fprintf(w, ", %s", b.Source)
		}
		if b.Detail != "" {
			fmt.Fprintf(w, " (%s)", b.Detail)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "operator signals across builds, over the trials the oracle checked; each cell is checked/claims/false claims/misses")
	fmt.Fprintf(w, "(%s):\n", compareKey)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "plan\tsignal\t")
	for _, b := range c.Builds {
		fmt.Fprintf(tw, "%s\t", b.Label)
	}
	fmt.Fprintln(tw)
	for _, r := range c.Rows {
		fmt.Fprintf(tw, "%s\t%s\t", c.planLabel(r.Plan), r.Signal)
		for _, cell := range r.Cells {
			fmt.Fprintf(tw, "%s\t", cell)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "processes left and clean-ups across builds, over every trial; each cell is trials/orphaned/live runs removed")
	fmt.Fprintf(w, "(%s):\n", processKey)
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "plan\t")
	for _, b := range c.Builds {
		fmt.Fprintf(tw, "%s\t", b.Label)
	}
	fmt.Fprintln(tw)
	for _, r := range c.Processes {
		fmt.Fprintf(tw, "%s\t", c.planLabel(r.Plan))
		for _, cell := range r.Cells {
			fmt.Fprintf(tw, "%s\t", cell)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if notes := c.scopeNotes(); len(notes) > 0 {
		fmt.Fprintf(w, "\n%s: the plan's fault differs between builds (every build runs the same trials):\n", scopeMark)
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	for _, n := range c.Notes {
		fmt.Fprintln(w, "\nNOTE: "+n)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Styles of the comparison's HTML table.
const (
	tdStyle   = `style="padding:2px 8px;border:1px solid #ccc;text-align:right"`
	thStyle   = `style="padding:2px 8px;border:1px solid #ccc;background:#eee"`
	noneStyle = `style="padding:2px 8px;border:1px solid #ccc;text-align:center;color:#9e9e9e"`
)

// CompareHTML returns the comparison as a section of an HTML report: the
// builds, then a table with, for each build, checked, claims, false
// claims (red when any) and misses (orange when any).
func CompareHTML(c Comparison) string {
	var b strings.Builder
	b.WriteString("<h2>Operator signals across builds</h2>\n<ul>\n")
	for _, bi := range c.Builds {
		fmt.Fprintf(&b, "<li><b>%s</b>: %d trials, status file %s", htmlEscape(bi.Label), bi.Trials, yesNo(bi.StatusFile))
		if bi.Source != "" {
			fmt.Fprintf(&b, ", <code>%s</code>", htmlEscape(bi.Source))
		}
		if bi.Detail != "" {
			fmt.Fprintf(&b, " (%s)", htmlEscape(bi.Detail))
		}
		b.WriteString("</li>\n")
	}
	fmt.Fprintf(&b, "</ul>\n<p>Over the trials the oracle checked; %s.</p>\n", htmlEscape(compareKey))
	for _, n := range c.Notes {
		fmt.Fprintf(&b, "<p><b>Note:</b> %s</p>\n", htmlEscape(n))
	}
	signalTableHTML(&b, c)
	b.WriteString("<h2>Processes left and clean-ups across builds</h2>\n")
	fmt.Fprintf(&b, "<p>Over every trial; %s.</p>\n", htmlEscape(processKey))
	processTableHTML(&b, c)
	if notes := c.scopeNotes(); len(notes) > 0 {
		fmt.Fprintf(&b, "<p>%s: the plan's fault differs between builds (every build runs the same trials):</p>\n<ul>\n", scopeMark)
		for _, n := range notes {
			fmt.Fprintf(&b, "<li>%s</li>\n", htmlEscape(n))
		}
		b.WriteString("</ul>\n")
	}
	return b.String()
}

// signalTableHTML writes the table of operator signals: per plan and
// signal, each build's four cells.
func signalTableHTML(b *strings.Builder, c Comparison) {
	b.WriteString(`<table style="border-collapse:collapse">` + "\n")
	fmt.Fprintf(b, "<tr><th %s rowspan=\"2\">plan</th><th %s rowspan=\"2\">signal</th>", thStyle, thStyle)
	for _, bi := range c.Builds {
		fmt.Fprintf(b, "<th %s colspan=\"4\">%s</th>", thStyle, htmlEscape(bi.Label))
	}
	b.WriteString("</tr>\n<tr>")
	for range c.Builds {
		fmt.Fprintf(b, "<th %[1]s>checked</th><th %[1]s>claims</th><th %[1]s>false claims</th><th %[1]s>misses</th>", thStyle)
	}
	b.WriteString("</tr>\n")
	for _, r := range c.Rows {
		fmt.Fprintf(b, "<tr><td %s>%s</td><td %s>%s</td>", thStyle, htmlEscape(c.planLabel(r.Plan)), thStyle, htmlEscape(r.Signal))
		for _, cell := range r.Cells {
			b.WriteString(cellHTML(cell))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
}

// processTableHTML writes the table of processes left and clean-ups: per
// plan, each build's three cells.
func processTableHTML(b *strings.Builder, c Comparison) {
	b.WriteString(`<table style="border-collapse:collapse">` + "\n")
	fmt.Fprintf(b, "<tr><th %s rowspan=\"2\">plan</th>", thStyle)
	for _, bi := range c.Builds {
		fmt.Fprintf(b, "<th %s colspan=\"3\">%s</th>", thStyle, htmlEscape(bi.Label))
	}
	b.WriteString("</tr>\n<tr>")
	for range c.Builds {
		fmt.Fprintf(b, "<th %[1]s>trials</th><th %[1]s>orphaned</th><th %[1]s>live runs removed</th>", thStyle)
	}
	b.WriteString("</tr>\n")
	for _, r := range c.Processes {
		fmt.Fprintf(b, "<tr><td %s>%s</td>", thStyle, htmlEscape(c.planLabel(r.Plan)))
		for _, cell := range r.Cells {
			b.WriteString(processCellHTML(cell))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
}

// processCellHTML is one build's three cells of a process row, or one
// cell spanning them.
func processCellHTML(c ProcessCell) string {
	if c.Missing != "" {
		return fmt.Sprintf("<td %s colspan=\"3\" title=\"%s\">-</td>", noneStyle, htmlEscape(c.Missing))
	}
	return fmt.Sprintf("<td %s>%d</td>", tdStyle, c.Trials) + markedCell(c.Orphaned, outcomeColors["failed"]) + markedCell(c.LiveRemoved, outcomeColors["violation"])
}

// markedCell is a cell holding n, in bold of color when it is not 0.
func markedCell(n int, color string) string {
	if n == 0 {
		return fmt.Sprintf("<td %s>0</td>", tdStyle)
	}
	return fmt.Sprintf("<td %s><b style=\"color:%s\">%d</b></td>", tdStyle, color, n)
}

// cellHTML is one build's four cells of a row, or one cell spanning them.
func cellHTML(c Cell) string {
	if c.Missing != "" {
		return fmt.Sprintf("<td %s colspan=\"4\" title=\"%s\">%s</td>", noneStyle, htmlEscape(c.Missing), htmlEscape(c.String()))
	}
	return fmt.Sprintf("<td %s>%d</td><td %s>%d</td>", tdStyle, c.Checked, tdStyle, c.Claims) +
		markedCell(c.FalseClaims, outcomeColors["violation"]) + markedCell(c.Misses, outcomeColors["failed"])
}

// SaveComparison writes comparison.json and comparison.html into dir,
// creating dir.
func SaveComparison(dir string, c Comparison, title string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save comparison: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save comparison: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "comparison.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save comparison: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "comparison.html"), []byte(page(title, CompareHTML(c))), 0o644); err != nil {
		return fmt.Errorf("save comparison: %w", err)
	}
	return nil
}
