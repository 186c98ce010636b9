package report

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/status"
	"github.com/pgbb/pgbb/harness/trial"
)

// stock marks records as those of a build that writes no status file.
func stock(recs ...*trial.Record) []*trial.Record {
	for _, r := range recs {
		r.StatusFile = false
		r.Status = trial.StatusFile{}
		r.Variant = "stock"
	}
	return recs
}

func compareBuilds() []Build {
	yes, no := true, false
	stockRecs := stock(
		rec("s/control-w0", "none", 0, "", true, &yes, ""),
		rec("s/0", "kill", 0, "", true, &yes, ""),
		// The exit code lied: pg_basebackup exited 0, the oracle
		// rejected the backup (hypothetical for stock, a false claim).
		rec("s/1", "kill", 0, "", true, &no, "sync"),
		rec("s/2", "kill", -1, "", false, nil, "receiving"),
	)
	patched := []*trial.Record{
		rec("s/control-w0", "none", 0, "completed", true, &yes, ""),
		rec("s/0", "kill", 0, "completed", true, &yes, ""),
		// The status file did not say completed, yet the backup is
		// complete: killed after the manifest rename, before the status
		// rewrite (a miss of the status file).
		rec("s/1", "kill", -1, "in progress", true, &yes, "rename"),
		rec("s/2", "term", 1, "failed", false, &no, "sync"),
	}
	return []Build{{Label: "18.6 stock", Records: stockRecs}, {Label: "18.6 patched", Source: "runs/p", Records: patched}}
}

func cellOf(t *testing.T, c Comparison, plan, signal, build string) Cell {
	t.Helper()
	for _, r := range c.Rows {
		if r.Plan != plan || r.Signal != signal {
			continue
		}
		for _, cell := range r.Cells {
			if cell.Build == build {
				return cell
			}
		}
	}
	t.Fatalf("no cell for %s / %s / %s", plan, signal, build)
	return Cell{}
}

func TestCompare(t *testing.T) {
	c := Compare(compareBuilds())
	if len(c.Builds) != 2 || c.Builds[0].StatusFile || !c.Builds[1].StatusFile || c.Builds[1].Trials != 4 {
		t.Fatalf("builds %+v", c.Builds)
	}
	var plans []string
	for i, r := range c.Rows {
		if i%len(Signals()) == 0 {
			plans = append(plans, r.Plan)
		}
		if r.Signal != Signals()[i%len(Signals())] || len(r.Cells) != 2 {
			t.Fatalf("row %d: %+v", i, r)
		}
	}
	if want := []string{"all", "none", "kill", "term"}; !reflect.DeepEqual(plans, want) {
		t.Errorf("plans %v, want %v", plans, want)
	}
	for _, tc := range []struct {
		plan, signal, build string
		want                Cell
	}{
		// Stock: the exit code claimed 2 of 3 checked kill trials, one
		// falsely.
		{"kill", SignalExit, "18.6 stock", Cell{Trials: 3, Checked: 2, Claims: 2, FalseClaims: 1}},
		{"kill", SignalManifest, "18.6 stock", Cell{Trials: 3, Checked: 2, Claims: 2, FalseClaims: 1}},
		{"all", SignalExit, "18.6 stock", Cell{Trials: 4, Checked: 3, Claims: 3, FalseClaims: 1}},
		{"kill", SignalStatus, "18.6 stock", Cell{Trials: 3, Missing: MissingNoStatusFile}},
		{"term", SignalExit, "18.6 stock", Cell{Missing: MissingNoTrials}},
		// Patched: the status file missed one completion, claimed none
		// falsely; the exit code missed the same one.
		{"kill", SignalStatus, "18.6 patched", Cell{Trials: 2, Checked: 2, Claims: 1, Misses: 1}},
		{"kill", SignalExit, "18.6 patched", Cell{Trials: 2, Checked: 2, Claims: 1, Misses: 1}},
		{"kill", SignalManifest, "18.6 patched", Cell{Trials: 2, Checked: 2, Claims: 2}},
		{"term", SignalStatus, "18.6 patched", Cell{Trials: 1, Checked: 1}},
		{"all", SignalStatus, "18.6 patched", Cell{Trials: 4, Checked: 4, Claims: 2, Misses: 1}},
	} {
		tc.want.Build = tc.build
		if got := cellOf(t, c, tc.plan, tc.signal, tc.build); got != tc.want {
			t.Errorf("%s / %s / %s: got %+v, want %+v", tc.plan, tc.signal, tc.build, got, tc.want)
		}
	}
	if len(c.Notes) != 0 {
		t.Errorf("notes %v", c.Notes)
	}

	var b strings.Builder
	WriteComparison(&b, c)
	text := b.String()
	var statusLine, termLine string
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[0] == "kill" && strings.Contains(l, SignalStatus) {
			statusLine = l
		}
		if len(f) > 2 && f[0] == "term" && strings.Contains(l, SignalExit) {
			termLine = l
		}
	}
	// The stock column of the status file signal says n/a, the patched
	// one counts: checked/claims/false claims/misses.
	if f := strings.Fields(statusLine); len(f) < 2 || f[len(f)-2] != "n/a" || f[len(f)-1] != "2/1/0/1" {
		t.Errorf("status file row %q in:\n%s", statusLine, text)
	}
	if f := strings.Fields(termLine); len(f) < 2 || f[len(f)-2] != "-" || f[len(f)-1] != "1/0/0/0" {
		t.Errorf("term exit row %q in:\n%s", termLine, text)
	}
	for _, want := range []string{"18.6 stock: 4 trials, status file no", "18.6 patched: 4 trials, status file yes, runs/p"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}

	html := CompareHTML(c)
	for _, want := range []string{">n/a</td>", ">-</td>", `colspan="4">18.6 patched</th>`, `<b style="color:#c62828">1</b>`} {
		if !strings.Contains(html, want) {
			t.Errorf("no %q in the HTML:\n%s", want, html)
		}
	}
}

func TestCompareNotesDifferentScenarios(t *testing.T) {
	bs := compareBuilds()
	bs[1].Records[3].Scenario = "other"
	c := Compare(bs)
	if len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "18.6 patched: other, s") {
		t.Errorf("notes %v", c.Notes)
	}
	var b strings.Builder
	WriteComparison(&b, c)
	if !strings.Contains(b.String(), "NOTE: the builds ran different scenarios") {
		t.Errorf("no note in:\n%s", b.String())
	}
}

func saveRecords(t *testing.T, dir string, recs []*trial.Record) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "trials"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.ReplaceAll(r.ID, "/", "-") + ".json"
		if err := os.WriteFile(filepath.Join(dir, "trials", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadRun(t *testing.T) {
	bs := compareBuilds()
	root := t.TempDir()
	withInfo, without := filepath.Join(root, "18-patched"), filepath.Join(root, "20260101-000000-18-stock")
	saveRecords(t, withInfo, bs[1].Records)
	saveRecords(t, without, bs[0].Records)
	info := RunInfo{Version: "18.6", Major: 18, Variant: "patched", Backend: "native", Seed: 42,
		Scenarios: []string{"scenarios/smoke"}, Started: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := SaveRunInfo(withInfo, info); err != nil {
		t.Fatal(err)
	}

	r, err := LoadRun(withInfo)
	if err != nil {
		t.Fatal(err)
	}
	if r.Info == nil || !reflect.DeepEqual(*r.Info, info) {
		t.Errorf("run info %+v, want %+v", r.Info, info)
	}
	if len(r.Records) != 4 || r.Label() != "18.6 patched" || !strings.Contains(r.Detail(), "seed 42, native backend") {
		t.Errorf("run %+v: label %q, detail %q", r, r.Label(), r.Detail())
	}
	old, err := LoadRun(without)
	if err != nil {
		t.Fatal(err)
	}
	if old.Info != nil || old.Label() != "stock (20260101-000000-18-stock)" || old.Detail() != "" {
		t.Errorf("run without run.json: info %v, label %q", old.Info, old.Label())
	}
	// What was saved compares as what was built.
	loaded := Compare([]Build{{Label: "18.6 stock", Records: old.Records}, {Label: "18.6 patched", Source: "runs/p", Records: r.Records}})
	if want := Compare(bs); !reflect.DeepEqual(loaded, want) {
		t.Errorf("loaded records compare differently:\n%+v\nwant\n%+v", loaded, want)
	}

	// The same build twice: the labels get the directory.
	twice := BuildsOf([]Run{r, r})
	if twice[0].Label == twice[1].Label || !strings.Contains(twice[0].Label, withInfo) {
		t.Errorf("labels %q, %q", twice[0].Label, twice[1].Label)
	}
}

func TestLoadRunErrors(t *testing.T) {
	root := t.TempDir()
	empty := filepath.Join(root, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "trials"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRun(empty); !errors.Is(err, ErrNoTrials) || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty run: %v", err)
	}
	if _, err := LoadRun(filepath.Join(root, "missing")); err == nil || errors.Is(err, ErrNoTrials) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing run: %v", err)
	}

	bad := filepath.Join(root, "bad")
	saveRecords(t, bad, compareBuilds()[0].Records)
	badFile := filepath.Join(bad, "trials", "s-9.json")
	if err := os.WriteFile(badFile, []byte(`{"id": "s/9", "plan": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRecords(bad); err == nil || !strings.Contains(err.Error(), badFile) {
		t.Errorf("bad JSON: %v", err)
	}
	if err := os.WriteFile(badFile, []byte(`{"rows": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRecords(bad); err == nil || !strings.Contains(err.Error(), badFile) || !strings.Contains(err.Error(), "not a trial record") {
		t.Errorf("not a record: %v", err)
	}
	os.Remove(badFile)
	if err := os.WriteFile(filepath.Join(bad, RunInfoFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRun(bad); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, RunInfoFile)) {
		t.Errorf("bad run.json: %v", err)
	}
}

func TestSaveComparison(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	c := Compare(compareBuilds())
	if err := SaveComparison(dir, c, "pgbb <compare>"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "comparison.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Comparison
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("comparison.json round trip:\n%+v\nwant\n%+v", back, c)
	}
	if !strings.Contains(string(data), `"missing": "no status file"`) {
		t.Errorf("comparison.json does not say why the stock status cells are empty:\n%s", data)
	}
	html, err := os.ReadFile(filepath.Join(dir, "comparison.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "<h1>pgbb &lt;compare&gt;</h1>") || !strings.Contains(string(html), "<table") {
		t.Errorf("comparison.html:\n%s", html)
	}
}

// TestCompareProcesses: per plan and build, the trials, those whose run
// left a process alive after the one started, and those whose clean-up
// removed a live run: a stock orphan that neither exited 0 nor left
// backup_manifest is removed by rm -rf; a build with a status file
// removed one only when --remove-if-dead did not refuse while the run
// lived. A plan whose fault differs between builds is marked and
// explained.
func TestCompareProcesses(t *testing.T) {
	refused, removable := status.ExitRefused, status.ExitRemoved
	orphan := func(r *trial.Record, exit *int) *trial.Record {
		r.Orphans = trial.Orphans{Alive: true, PIDs: []int{9}, RemoveExit: exit}
		return r
	}
	yes := true
	stockRecs := stock(
		rec("w/0", "kill", -1, "", false, nil, "receiving"),
		rec("w/1", "kill", -1, "", false, nil, "receiving"),
		// Killed after the manifest rename: taken, so not removed.
		rec("w/2", "kill-backup", -1, "", true, &yes, "rename"),
		rec("w/3", "kill-group", -1, "", false, nil, "receiving"),
	)
	orphan(stockRecs[0], nil)
	orphan(stockRecs[2], nil)
	wrapped := []*trial.Record{
		orphan(rec("w/0", "kill", -1, "in progress", false, nil, "receiving"), &refused),
		orphan(rec("w/1", "kill", -1, "in progress", false, nil, "receiving"), &removable),
		orphan(rec("w/2", "kill-backup", -1, "in progress", false, nil, "receiving"), nil),
		rec("w/3", "kill-group", -1, "in progress", false, nil, "receiving"),
	}
	for _, r := range wrapped {
		r.Wrapped, r.Variant = true, "wrapper"
	}
	c := Compare([]Build{{Label: "18.6 stock", Records: stockRecs}, {Label: "18.6 wrapper", Records: wrapped}})
	want := map[string][2]ProcessCell{
		"all":         {{Trials: 4, Orphaned: 2, LiveRemoved: 1}, {Trials: 4, Orphaned: 3, LiveRemoved: 1}},
		"kill":        {{Trials: 2, Orphaned: 1, LiveRemoved: 1}, {Trials: 2, Orphaned: 2, LiveRemoved: 1}},
		"kill-backup": {{Trials: 1, Orphaned: 1}, {Trials: 1, Orphaned: 1}},
		"kill-group":  {{Trials: 1}, {Trials: 1}},
	}
	if len(c.Processes) != len(want) {
		t.Fatalf("process rows %+v", c.Processes)
	}
	for _, r := range c.Processes {
		for i, cell := range r.Cells {
			w := want[r.Plan][i]
			w.Build = c.Builds[i].Label
			if cell != w {
				t.Errorf("%s / %s: %+v, want %+v", r.Plan, w.Build, cell, w)
			}
		}
	}
	if _, ok := c.Scoped["kill-backup"]; !ok || len(c.Scoped) != 1 {
		t.Errorf("scoped plans %v, want kill-backup alone", c.Scoped)
	}

	var b strings.Builder
	WriteComparison(&b, c)
	text := b.String()
	for _, want := range []string{"trials/orphaned/live runs removed", "kill-backup*", "kill-backup* SIGKILL to pg_basebackup alone"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	var killLine string
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "kill" {
			killLine = l
		}
	}
	if f := strings.Fields(killLine); len(f) != 3 || f[1] != "2/1/1" || f[2] != "2/2/1" {
		t.Errorf("kill process row %q in:\n%s", killLine, text)
	}
	html := CompareHTML(c)
	for _, want := range []string{"live runs removed</th>", "kill-backup*</td>", `colspan="3">18.6 wrapper</th>`} {
		if !strings.Contains(html, want) {
			t.Errorf("no %q in the HTML:\n%s", want, html)
		}
	}
}

// TestLiveRemovedStock: a stock operator removes, once the process
// started exited, what neither exited 0 nor left backup_manifest; that
// removes a live run when an orphan lived.
func TestLiveRemovedStock(t *testing.T) {
	yes := true
	for _, c := range []struct {
		name string
		rec  *trial.Record
		want bool
	}{
		{"killed, orphan", rec("s/0", "kill", -1, "", false, nil, "receiving"), true},
		{"exit 0, orphan", rec("s/1", "kill", 0, "", true, &yes, "sync"), false},
		{"killed, manifest, orphan", rec("s/2", "kill", -1, "", true, &yes, "rename"), false},
	} {
		r := stock(c.rec)[0]
		r.Orphans.Alive = true
		if got := LiveRemoved(r); got != c.want {
			t.Errorf("%s: %t, want %t", c.name, got, c.want)
		}
		r.Orphans.Alive = false
		if LiveRemoved(r) {
			t.Errorf("%s without an orphan: removed a live run", c.name)
		}
	}
}
