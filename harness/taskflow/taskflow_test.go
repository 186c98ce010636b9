package taskflow

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/proc"
	"github.com/pgbb/pgbb/harness/status"
)

// TestLoadScenarios: the repository's task-flow scenarios load, and each
// leaves a patched run left alone enough attempts to finish a backup that
// lasts longer than one deadline.
func TestLoadScenarios(t *testing.T) {
	scs, err := Load(filepath.Join("..", "..", "scenarios", "taskflow"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 2 {
		t.Fatalf("%d scenarios, want seed and short", len(scs))
	}
	for _, sc := range scs {
		if len(sc.Flows()) < 2*len(sc.Policies) {
			t.Errorf("%s: %d flows for %d policies", sc.Name, len(sc.Flows()), len(sc.Policies))
		}
	}
}

// TestLoadRejects: bad values and unknown keys are errors naming the file
// and what is wrong.
func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ json, want string }{
		"unknown":  {`{"deadline": "5s", "max_rate": "1M", "timeout": "5s"}`, `unknown field "timeout"`},
		"deadline": {`{"max_rate": "1M"}`, "deadline: required"},
		"policy":   {`{"deadline": "5s", "max_rate": "1M", "policies": ["nohup"]}`, `policy "nohup"`},
		"attempts": {`{"deadline": "5s", "max_rate": "1M", "attempts": 1}`, "attempts 1"},
		"stall":    {`{"deadline": "5s", "max_rate": "1M", "refresh": 5, "stall": "10s"}`, "stall 10s"},
		"rate":     {`{"deadline": "5s"}`, "max_rate: required"},
		"duration": {`{"deadline": 5, "max_rate": "1M"}`, "want a duration"},
	} {
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, []byte(tc.json), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s and %q", name, err, path, tc.want)
		}
	}
}

// TestJudge: each broken promise of a patched or wrapper flow is a
// violation; the same numbers in a stock flow are not (they are what the
// table shows); a flow that could not run is an error.
func TestJudge(t *testing.T) {
	sc := Scenario{Name: "t", Refresh: 2, Stall: Duration(10 * time.Second)}
	good := func(f Flow) Outcome {
		return Outcome{Flow: f, Converged: true, Oracle: &oracle.Verdict{Complete: true}}
	}
	cases := []struct {
		name   string
		modify func(o *Outcome)
		want   string
	}{
		{"kept", func(*Outcome) {}, ""},
		{"incomplete taken", func(o *Outcome) { o.TakenIncomplete, o.Oracle = true, &oracle.Verdict{Reason: "verifybackup: missing"} }, "incomplete backup"},
		{"live removed", func(o *Outcome) { o.LiveRemoved = 1 }, "live run"},
		{"false stall", func(o *Outcome) { o.FalseStalls, o.StallNotes = 2, []string{"+30s: alive but stalled"} }, "healthy run stalled"},
		{"cadence", func(o *Outcome) { o.MaxUpdateGap = 9 * time.Second }, "UPDATE TIME advanced by 9s"},
		{"not converged", func(o *Outcome) { o.Converged = false }, "did not converge"},
		{"exit 0 not completed", func(o *Outcome) { o.Problems = []string{"exit 0, but pgbb-status says failed"} }, "exit 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range Variants() {
				o := good(Flow{Variant: v, Policy: Leave})
				tc.modify(&o)
				res := &Result{Scenario: sc, Flows: []Outcome{o}}
				res.Judge()
				got := strings.Join(res.Violations, "; ")
				want := tc.want
				if v == Stock {
					want = ""
				}
				if (want == "") != (got == "") || !strings.Contains(got, want) {
					t.Errorf("%s: violations %q, want %q", v, got, want)
				}
			}
		})
	}
	stall := good(Flow{Variant: Patched, Policy: Leave, Stall: true})
	wrapperStall := good(Flow{Variant: Wrapper, Policy: Leave, Stall: true})
	wrapperStall.StallSeenAfter = 30 * time.Second
	res := &Result{Scenario: sc, Flows: []Outcome{stall, wrapperStall, {Flow: Flow{Variant: Stock, Policy: Kill}, Err: "start pg_basebackup: no such file"}}}
	res.Judge()
	if len(res.Violations) != 2 || !strings.Contains(res.Violations[0], "stall seen after 0s") ||
		!strings.HasPrefix(res.Violations[1], "wrapper-stall: stall seen after 30s") {
		t.Errorf("an unseen stall and a late one: %q", res.Violations)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "stock-kill") {
		t.Errorf("errors %q, want the stock-kill flow's", res.Errors)
	}
	var b strings.Builder
	res.WriteTable(&b)
	for _, want := range []string{"patched-stall", "wrapper-stall", "VIOLATION", "ERROR stock-kill", "wrapper: 1 of 1 flows ended with a complete backup"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestJudgeExit0: after a patched run that exited 0 the backup is taken
// when pgbb-status says completed, or when the run warned that the backup
// is complete but the status file could not say so (the file is then gone
// or does not say completed); anything else is a broken promise.
func TestJudgeExit0(t *testing.T) {
	warned := "pg_basebackup: warning: " + status.WarnCompleteUnsaid + "\n"
	for _, c := range []struct {
		verdict, out string
		converged    bool
	}{
		{verdictCompleted, "", true},
		{verdictNotDurable, "", true},
		{verdictNot, warned, true},
		{verdictNot, "", false},
		{verdictFailed, "", false},
		{verdictNot, "pg_basebackup: warning: could not create file \"s.1.tmp\": Permission denied\n", false},
	} {
		converged, problem := judgeExit0(Reading{Verdict: c.verdict, Summary: "s"}, c.out)
		if converged != c.converged || (problem == "") != c.converged {
			t.Errorf("%s after %q: converged %t, problem %q; want converged %t", c.verdict, c.out, converged, problem, c.converged)
		}
	}
}

// TestMain runs the test binary as a fake pg_basebackup when it is
// started under that name (see fakeBasebackup).
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "pg_basebackup" {
		os.Exit(fakeBasebackup(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeBasebackup is a pg_basebackup for the fresh flows' tests: what
// attempt N (its -D is .../b-N/target) does is line "N action" of the
// file plan next to it:
//
//	complete  write the target with backup_manifest and a completed
//	          status file of its own pid, exit 0
//	hang      write part of the target and an "in progress" status file,
//	          then run until killed
//	late      as hang, then complete once a later run has written its
//	          own status file
//	fail      exit 1 on the status file's temporary file, as a writer
//	          that a dead run's leftovers block does
//
// The status files are the templates completed and in_progress next to
// it, with its pid and target.
func fakeBasebackup(args []string) int {
	var target, statusFile string
	for i, a := range args {
		if a == "-D" && i+1 < len(args) {
			target = args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--status-file="); ok {
			statusFile = v
		}
	}
	bin := filepath.Dir(os.Args[0])
	plan, _ := os.ReadFile(filepath.Join(bin, "plan"))
	attempt := strings.TrimPrefix(filepath.Base(filepath.Dir(target)), "b-")
	action := ""
	for line := range strings.SplitSeq(string(plan), "\n") {
		if n, act, ok := strings.Cut(line, " "); ok && n == attempt {
			action = act
		}
	}
	write := func(name string, state status.State) {
		if statusFile == "" {
			return
		}
		data, _ := os.ReadFile(filepath.Join(bin, name))
		s, err := status.Parse(data)
		if err != nil {
			panic(err)
		}
		s.PID, s.Directories = os.Getpid(), []status.Directory{{Path: target, Created: true}}
		tmp := status.TempPath(statusFile, os.Getpid())
		os.WriteFile(tmp, s.Encode(), 0o600)
		os.Rename(tmp, statusFile)
	}
	complete := func() int {
		os.MkdirAll(target, 0o700)
		os.WriteFile(filepath.Join(target, "backup_manifest"), []byte("{}"), 0o600)
		write("completed", status.StateCompleted)
		return 0
	}
	switch action {
	case "complete":
		return complete()
	case "hang", "late":
		write("in_progress", status.StateInProgress)
		os.MkdirAll(target, 0o700)
		os.WriteFile(filepath.Join(target, "base.dat"), make([]byte, 1000), 0o600)
		for action == "late" {
			time.Sleep(20 * time.Millisecond)
			if s, err := status.ReadFile(statusFile); err == nil && s.PID != os.Getpid() {
				return complete()
			}
		}
		time.Sleep(time.Hour)
	case "fail":
		fmt.Fprintf(os.Stderr, "pg_basebackup: error: could not create file %q: File exists\n", status.TempPath(statusFile, 1))
	}
	return 1
}

// freshRun sets up a fresh flow of variant v and policy p whose runs are
// fakeBasebackup following plan, with deadlines of 1 s.
func freshRun(t *testing.T, v Variant, p Policy, attempts int, plan string) *flowRun {
	t.Helper()
	bin, dir := t.TempDir(), t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "pg_basebackup")); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"completed": "completed_plain_tablespace_waldir", "in_progress": "in_progress_killed"} {
		data, err := os.ReadFile(filepath.Join("..", "status", "testdata", "real", "0003", src))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(bin, name), data, 0o600)
	}
	os.WriteFile(filepath.Join(bin, "plan"), []byte(plan), 0o600)
	sc := Scenario{Name: "t", Deadline: Duration(time.Second), Attempts: attempts, MaxRate: "1M", Refresh: 1}
	env := &Env{Server: &cluster.Cluster{TCP: true, Port: 1}, BinDirs: map[Variant]string{v: bin}, Dir: dir}
	f := Flow{Variant: v, Policy: p, Fresh: true}
	r := &flowRun{env: env, sc: sc, flow: f, dir: filepath.Join(dir, f.ID()), start: time.Now(), out: Outcome{Flow: f}}
	r.base = r.dir
	if err := r.prepare(); err != nil {
		t.Fatal(err)
	}
	return r
}

// runFresh runs r's attempts, measures what they left and stops every
// run, as Run does without the oracle.
func runFresh(t *testing.T, r *flowRun) *FreshOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.attempts(ctx)
	r.measureLeft()
	for _, b := range r.runs {
		proc.KillGroup(b.pid(), 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range r.out.Attempts {
		t.Logf("attempt %d: %s%s", a.N, a.Action, describeEnd(a))
	}
	return r.out.FreshResult
}

// TestFreshLeaveEarlierCompleted: a scheduler that leaves its runs going
// shares the status file between them; when an earlier run finishes
// meanwhile, the file says completed with that run's PID. The script
// checks the PID line against the run it started, as the README says, so
// it does not take its own attempt's directory on another run's
// completed: no false completion (a script that grepped STATUS alone
// would have taken b-2, see TestFreshJudgements).
func TestFreshLeaveEarlierCompleted(t *testing.T) {
	r := freshRun(t, Patched, Leave, 3, "1 late\n2 hang\n3 hang\n")
	r.sc.Deadline = Duration(3 * time.Second) // room for a slow start of attempt 2
	f := runFresh(t, r)
	if r.out.Converged || f.Taken != 0 || f.FalseCompletions != 0 {
		t.Fatalf("converged %t, taken %d, false completions %d %q; want nothing taken on attempt 1's completed", r.out.Converged, f.Taken, f.FalseCompletions, f.FalseNotes)
	}
	res := &Result{Scenario: r.sc, Flows: []Outcome{r.out}}
	res.Judge()
	for _, v := range res.Violations {
		if strings.Contains(v, "false completion") {
			t.Errorf("violation %q", v)
		}
	}
}

// TestFreshKillStaleTemp: after a SIGKILL the harness leaves the killed
// run's temporary status file, as a kill during a rewrite does; the next
// run completes, and its own completed is taken, no false completion.
func TestFreshKillStaleTemp(t *testing.T) {
	r := freshRun(t, Patched, Kill, 3, "1 hang\n2 complete\n")
	f := runFresh(t, r)
	if f.Taken != 2 || f.FalseCompletions != 0 || f.Blocked != 0 {
		t.Fatalf("taken %d, false completions %d %q, blocked %d; want b-2, none", f.Taken, f.FalseCompletions, f.FalseNotes, f.Blocked)
	}
	if f.Planted != 1 || f.StaleTemps != 1 || f.DeadAttempts != 1 || f.LeftBytes < 1000 {
		t.Errorf("planted %d, stale temps %d, dead attempts %d, left %d bytes; want one temporary file and b-1 left", f.Planted, f.StaleTemps, f.DeadAttempts, f.LeftBytes)
	}
	res := &Result{Scenario: r.sc, Flows: []Outcome{r.out}}
	res.Judge()
	if len(res.Violations) != 0 {
		t.Errorf("violations %q", res.Violations)
	}
}

// TestFreshBlocked: a run that fails on the status file is a retry
// blocked by a dead run's leftovers, a broken promise of the patched
// flow.
func TestFreshBlocked(t *testing.T) {
	r := freshRun(t, Patched, TermGroup, 3, "1 fail\n2 complete\n")
	f := runFresh(t, r)
	if f.Blocked != 1 || f.Taken != 2 {
		t.Fatalf("blocked %d, taken %d; want 1, b-2", f.Blocked, f.Taken)
	}
	res := &Result{Scenario: r.sc, Flows: []Outcome{r.out}}
	res.Judge()
	if len(res.Violations) != 1 || !strings.Contains(res.Violations[0], "leftovers") {
		t.Errorf("violations %q, want the blocked retry", res.Violations)
	}
}

// TestFreshStock: a stock scheduler takes exit 0; the run it left going
// is an orphan still writing, and its directory is left.
func TestFreshStock(t *testing.T) {
	r := freshRun(t, Stock, Leave, 3, "1 hang\n2 complete\n")
	f := runFresh(t, r)
	if f.Taken != 2 || f.DeadAttempts != 1 || f.Orphans != 1 || f.LeftBytes != 1000 {
		t.Fatalf("taken %d, dead attempts %d, orphans %d, left %d bytes; want b-2 taken, b-1 (1000 bytes) left with its run alive", f.Taken, f.DeadAttempts, f.Orphans, f.LeftBytes)
	}
}

// TestFreshJudgements: the shell script's tests and the checks of what
// it took.
func TestFreshJudgements(t *testing.T) {
	zero, one := 0, 1
	for _, c := range []struct {
		exit     *int
		manifest bool
		want     bool
	}{{&zero, false, true}, {&one, false, false}, {nil, false, false}, {nil, true, true}, {&one, true, true}} {
		if got := stockTakes(c.exit, c.manifest); got != c.want {
			t.Errorf("stockTakes(%v, %t) = %t", c.exit, c.manifest, got)
		}
	}
	for data, want := range map[string]bool{
		"":                             false,
		"STATUS: in progress\n":        false,
		"X: 1\nSTATUS: completed\n":    true,
		"STATUS: completed-ish\n":      true, // what grep matches
		"LABEL: x STATUS: completed\n": false,
		"BACKUP STATUS FORMAT: 1\nSTATUS: failed\n": false,
	} {
		if got := grepCompleted([]byte(data)); got != want {
			t.Errorf("grepCompleted(%q) = %t", data, got)
		}
	}
	for data, want := range map[string]bool{
		"STATUS: completed\nPID: 42\n":  true,
		"STATUS: completed\nPID: 420\n": false,
		"STATUS: completed\nPID: 7\n":   false,
		"STATUS: failed\nPID: 42\n":     false,
	} {
		if got := grepCompletedBy([]byte(data), 42); got != want {
			t.Errorf("grepCompletedBy(%q, 42) = %t", data, got)
		}
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "status", "testdata", "real", "0003", "completed_plain_tablespace_waldir"))
	if err != nil {
		t.Fatal(err)
	}
	file := func(pid int, target string) []byte {
		s, err := status.Parse(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		s.PID, s.Directories = pid, []status.Directory{{Path: target, Created: true}}
		return s.Encode()
	}
	pids := []int{101, 102, 103}
	for _, c := range []struct {
		data []byte
		n    int
		want string
	}{
		{file(102, "/b-2/target"), 2, ""},
		{file(101, "/b-1/target"), 2, "attempt 1's (pid 101), not attempt 2's"},
		{file(999, "/b-2/target"), 2, "pid 999's, no run"},
		{file(102, "/b-1/target"), 2, "records DIRECTORY /b-1/target"},
		{file(102, "/b-2/target")[:200], 2, "does not parse"},
		{file(102, "/b-2/target"), 4, "started no run"},
	} {
		got := foreignCompletion(c.data, pids, c.n, "/b-2/target")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("foreignCompletion: %q, want %q", got, c.want)
		}
	}
	path := "/s/backup_status"
	for out, want := range map[string]bool{
		`pg_basebackup: error: could not create file "/s/backup_status.7.tmp": File exists`: true,
		`pg_basebackup: error: could not connect to server`:                                 false,
		`pg_basebackup: warning: could not write file "/s/backup_status.7.tmp"`:             false,
		`pg_basebackup: error: directory "/b-1/target" exists but is not empty`:             false,
	} {
		if got := blockedByStatusFile(out, path); got != want {
			t.Errorf("blockedByStatusFile(%q) = %t", out, got)
		}
	}
}

// TestTreeBytes: regular files count, symbolic links are not followed,
// a missing directory is 0.
func TestTreeBytes(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o700)
	os.WriteFile(filepath.Join(dir, "a", "b", "f"), make([]byte, 300), 0o600)
	os.WriteFile(filepath.Join(dir, "g"), make([]byte, 20), 0o600)
	os.WriteFile(filepath.Join(outside, "big"), make([]byte, 5000), 0o600)
	os.Symlink(outside, filepath.Join(dir, "pg_wal"))
	if n, err := treeBytes(dir); err != nil || n != 320 {
		t.Errorf("treeBytes = %d, %v; want 320", n, err)
	}
	if n, err := treeBytes(filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Errorf("missing: %d, %v", n, err)
	}
}

// TestFreshFlows: fresh_policies add a stock and a patched fresh flow
// each, also without classic policies; a bad one is refused.
func TestFreshFlows(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fresh.json")
	os.WriteFile(path, []byte(`{"deadline": "5s", "max_rate": "1M", "policies": [], "fresh_policies": ["leave", "kill"]}`), 0o644)
	scs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range scs[0].Flows() {
		ids = append(ids, f.ID())
	}
	if got := strings.Join(ids, " "); got != "stock-fresh-leave patched-fresh-leave stock-fresh-kill patched-fresh-kill" {
		t.Errorf("flows %s", got)
	}
	for name, js := range map[string]string{
		"none":  `{"deadline": "5s", "max_rate": "1M", "policies": []}`,
		"nohup": `{"deadline": "5s", "max_rate": "1M", "fresh_policies": ["nohup"]}`,
	} {
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, []byte(js), 0o644)
		if _, err := Load(p); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

// TestFreshJudge: a patched fresh flow's false completion and blocked
// retry are violations, a stock one's are not; a patched fresh flow left
// alone need not converge (it judges at the deadline); the table shows
// the fresh flows apart.
func TestFreshJudge(t *testing.T) {
	sc := Scenario{Name: "t", Refresh: 2}
	mk := func(v Variant, f FreshOutcome) Outcome {
		return Outcome{Flow: Flow{Variant: v, Policy: Leave, Fresh: true}, FreshResult: &f}
	}
	bad := FreshOutcome{FalseCompletions: 1, FalseNotes: []string{"attempt 3 took b-3 on attempt 1's"}, Blocked: 1, BlockedNotes: []string{"attempt 2: tmp"}, DeadAttempts: 2, LeftBytes: 3e9}
	res := &Result{Scenario: sc, Flows: []Outcome{mk(Stock, bad), mk(Patched, FreshOutcome{DeadAttempts: 4, LeftBytes: 8e8, Orphans: 2})}}
	res.Judge()
	if len(res.Violations) != 0 {
		t.Errorf("violations %q, want none", res.Violations)
	}
	res.Flows = append(res.Flows, mk(Patched, bad))
	res.Judge()
	got := strings.Join(res.Violations, "; ")
	if len(res.Violations) != 2 || !strings.Contains(got, "false completion: attempt 3") || !strings.Contains(got, "leftovers") {
		t.Errorf("violations %q, want the false completion and the blocked retry", got)
	}
	var b strings.Builder
	res.WriteTable(&b)
	for _, want := range []string{"fresh flows:", "patched-fresh-leave", "3.0 GB", "1.5 GB", "200.0 MB", "stock fresh: 0 of 1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestDecideLook: what a retry does with each verdict; a completed file
// whose directories do not bear it out is neither taken nor removed.
func TestDecideLook(t *testing.T) {
	rd := func(verdict string, final bool, pid int) Reading {
		r := Reading{Verdict: verdict, Final: final}
		r.Status.PID = pid
		return r
	}
	for _, c := range []struct {
		rd   Reading
		want look
	}{
		{rd(verdictCompleted, true, 7), lookTake},
		{rd(verdictNotDurable, true, 7), lookTake},
		{rd(verdictUnconfirmed, true, 7), lookRefuse},
		{rd(verdictFailed, true, 7), lookRemove},
		{rd(verdictNot, true, 7), lookRemove},
		{rd(verdictNot, false, 0), lookStart},
		{rd(verdictNot, false, 7), lookWait},
		{rd(verdictRunning, false, 7), lookWait},
		{rd(verdictStalled, false, 7), lookWait},
	} {
		if got := decideLook(c.rd); got != c.want {
			t.Errorf("%s final %t pid %d: %d, want %d", c.rd.Verdict, c.rd.Final, c.rd.Status.PID, got, c.want)
		}
	}
	if converged, problem := judgeExit0(rd(verdictUnconfirmed, true, 7), ""); converged || problem == "" {
		t.Errorf("exit 0 and completed-unconfirmed: converged %t, problem %q; want not taken, a problem", converged, problem)
	}
}

// TestCadenceCountsOnlyWhenDataFlowed: a gap between two UPDATE TIMEs
// counts against the refresh promise when the run wrote at least
// cadenceData meanwhile, or when that is not known; over less, a slow
// server on a loaded machine is no broken promise.
func TestCadenceCountsOnlyWhenDataFlowed(t *testing.T) {
	for _, tc := range []struct {
		written int64
		known   bool
		want    bool
	}{
		{cadenceData, true, true},
		{cadenceData - 1, true, false},
		{0, true, false},
		{0, false, true},
	} {
		if got := dataFlowed(tc.written, tc.known); got != tc.want {
			t.Errorf("dataFlowed(%d, %t) = %t, want %t", tc.written, tc.known, got, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "x"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if w, ok := procWritten(os.Getpid()); !ok || w < 4096 {
		t.Errorf("procWritten of this process: %d, %t", w, ok)
	}
}

// TestFlowsPerVariant: every policy runs as a stock, a patched and a
// wrapper flow, the stall as a patched and a wrapper flow, the fresh
// flows stock and patched only; no two flows share an ID (their
// directories).
func TestFlowsPerVariant(t *testing.T) {
	sc := Scenario{Policies: []Policy{Leave, Kill}, Stall: Duration(time.Minute), FreshPolicies: []Policy{Leave}}
	var ids []string
	seen := map[string]bool{}
	for _, f := range sc.Flows() {
		if seen[f.ID()] {
			t.Errorf("flow %s twice", f.ID())
		}
		seen[f.ID()] = true
		ids = append(ids, f.ID())
	}
	want := "stock-leave patched-leave wrapper-leave stock-kill patched-kill wrapper-kill patched-stall wrapper-stall stock-fresh-leave patched-fresh-leave"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("flows\n%s\nwant\n%s", got, want)
	}
}

// TestArgsPerVariant: a stock run gets no status file, a patched one
// --status-file, and a wrapper one is pgbb-run with the status file and
// -P, then "--" and the stock pg_basebackup, so that the scheduler's pid
// is pgbb-run's.
func TestArgsPerVariant(t *testing.T) {
	env := &Env{Server: &cluster.Cluster{TCP: true, Port: 5432}, Dir: "/flows", WrapperBin: "/tools/pgbb-run",
		BinDirs: map[Variant]string{Stock: "/stock/bin", Patched: "/patched/bin", Wrapper: "/stock/bin"}}
	sc := Scenario{MaxRate: "9M", Refresh: 5}
	for _, tc := range []struct {
		v      Variant
		prefix []string
		status bool
	}{
		{Stock, []string{"/stock/bin/pg_basebackup"}, false},
		{Patched, []string{"/patched/bin/pg_basebackup"}, true},
		{Wrapper, []string{"/tools/pgbb-run", "--status-file=/flows/wrapper-kill/status/backup_status", "--status-file-refresh=5", "--", "/stock/bin/pg_basebackup"}, true},
	} {
		f := Flow{Variant: tc.v, Policy: Kill}
		r := &flowRun{env: env, sc: sc, flow: f, dir: filepath.Join(env.Dir, f.ID())}
		r.base = r.dir
		args := r.args()
		if len(args) < len(tc.prefix) || strings.Join(args[:len(tc.prefix)], " ") != strings.Join(tc.prefix, " ") {
			t.Errorf("%s: %q, want it to start with %q", tc.v, args, tc.prefix)
			continue
		}
		rest := strings.Join(args[len(tc.prefix):], " ")
		if got := strings.Contains(rest, "--status-file="); got != (tc.v == Patched) {
			t.Errorf("%s: pg_basebackup's own --status-file %t: %q", tc.v, got, rest)
		}
		if got := strings.HasSuffix(rest, " -P"); got != (tc.v == Wrapper) {
			t.Errorf("%s: -P %t: %q", tc.v, got, rest)
		}
		if tc.v.HasStatusFile() != tc.status {
			t.Errorf("%s: HasStatusFile %t", tc.v, tc.v.HasStatusFile())
		}
	}
}

// TestMonitorWriter: the cadence check counts what pg_basebackup wrote:
// the recorded pid itself, or under the wrapper that pid's child
// pg_basebackup, started from any of its threads (this test process
// stands for pgbb-run).
func TestMonitorWriter(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	name := filepath.Join(t.TempDir(), "pg_basebackup")
	if err := os.Symlink(sleep, name); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(name, "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	pid := os.Getpid()
	for _, tc := range []struct {
		v    Variant
		want int
	}{{Patched, pid}, {Wrapper, child.Process.Pid}} {
		m := newMonitor(&flowRun{flow: Flow{Variant: tc.v}})
		if got := m.writer(pid); got != tc.want {
			t.Errorf("%s: writer(%d) = %d, want %d", tc.v, pid, got, tc.want)
		}
	}
	m := newMonitor(&flowRun{flow: Flow{Variant: Wrapper}})
	if got := m.writer(child.Process.Pid); got != 0 {
		t.Errorf("wrapper without a pg_basebackup child: writer = %d, want 0", got)
	}
}

// TestCadenceLessCPUWait: the time the writer waited for a CPU does not
// count against the refresh promise (a loaded machine), but a gap is
// never counted as less than a second; procWaited reads this process's.
func TestCadenceLessCPUWait(t *testing.T) {
	for _, tc := range []struct{ gap, waited, want time.Duration }{
		{5 * time.Second, 3 * time.Second, 2 * time.Second},
		{5 * time.Second, 0, 5 * time.Second},
		{5 * time.Second, 9 * time.Second, time.Second},
		{0, 0, 0},
	} {
		if got := cpuGap(tc.gap, tc.waited); got != tc.want {
			t.Errorf("cpuGap(%s, %s) = %s, want %s", tc.gap, tc.waited, got, tc.want)
		}
	}
	if _, ok := procWaited(os.Getpid()); !ok {
		t.Errorf("procWaited of this process: not readable")
	}
}
