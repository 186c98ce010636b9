package status

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeProcesses is a machine with a host name and a table of processes.
type fakeProcesses struct {
	host    string
	hostErr error
	procs   map[int]ProcessInfo
	procErr error
}

var _ Processes = fakeProcesses{}

func (f fakeProcesses) Hostname() (string, error) { return f.host, f.hostErr }

func (f fakeProcesses) Process(pid int) (ProcessInfo, error) {
	if f.procErr != nil {
		return ProcessInfo{}, f.procErr
	}
	return f.procs[pid], nil
}

// machine returns a fake db1 running process 1234 with the given name,
// started at offset from the START TIME of inProgressStatus.
func machine(name string, offset time.Duration) fakeProcesses {
	start := inProgressStatus(true).StartTime
	return fakeProcesses{host: "db1", procs: map[int]ProcessInfo{
		1234: {Exists: true, Name: name, StartTime: start.Add(offset)},
	}}
}

// withTicks is s with START TICKS ticks.
func withTicks(s *Status, ticks uint64) *Status {
	s.StartTicks = ticks
	return s
}

// ticked gives process 1234 of m its start in ticks, as it saw them
// itself if own.
func ticked(m fakeProcesses, ticks uint64, own bool) fakeProcesses {
	p := m.procs[1234]
	p.StartTicks, p.TicksAsOwn = ticks, own
	m.procs[1234] = p
	return m
}

func TestDecide(t *testing.T) {
	nosync := completedStatus()
	nosync.Sync, nosync.Durable = false, false
	unknownStart := inProgressStatus(true)
	unknownStart.StartTime = time.Time{}
	zombie := machine(WriterName, -time.Second)
	zombie.procs[1234] = ProcessInfo{Exists: true, Zombie: true, Name: WriterName, StartTime: zombie.procs[1234].StartTime}

	tests := []struct {
		name    string
		status  *Status
		procs   fakeProcesses
		verdict Verdict
		exit    int
		final   bool
		reason  string // in Liveness.Reason
	}{
		{"completed", completedStatus(), fakeProcesses{}, Completed, 0, true, ""},
		{"completed, no sync", nosync, fakeProcesses{}, CompletedNotDurable, 4, true, ""},
		{"failed", failedStatus(true), fakeProcesses{}, Failed, 2, true, ""},
		{"completed, its process still there", completedStatus(), machine(WriterName, 0), Completed, 0, true, ""},
		{"running", inProgressStatus(true), machine(WriterName, -time.Second), Running, 3, false, "started at"},
		{"running, not started on the server", inProgressStatus(false), machine(WriterName, -time.Second), Running, 3, false, ""},
		{"running, started within the slack", inProgressStatus(true), machine(WriterName, 2*time.Second), Running, 3, false, ""},
		// Later by the wall clock: the clock may have been set forward.
		{"pid of a later pg_basebackup", inProgressStatus(true), machine(WriterName, 3*time.Second), NotComplete, 1, false, "set forward"},
		{"pid reused, START TICKS tell", withTicks(inProgressStatus(true), 5000), ticked(machine(WriterName, -time.Second), 5001, true), NotComplete, 1, true, "pid was reused"},
		{"START TICKS match, later by the clock", withTicks(inProgressStatus(true), 5000), ticked(machine(WriterName, time.Hour), 5000, true), Running, 3, false, "as START TICKS records"},
		{"START TICKS of another time namespace", withTicks(inProgressStatus(true), 5000), ticked(machine(WriterName, -time.Second), 9000, false), Running, 3, false, "started at"},
		{"START TICKS of another time namespace, later by the clock", withTicks(inProgressStatus(true), 5000), ticked(machine(WriterName, time.Hour), 9000, false), NotComplete, 1, false, "another time namespace"},
		{"START TICKS, no start time", withTicks(unknownStart, 5000), ticked(machine(WriterName, 0), 5000, true), Running, 3, false, "as START TICKS records"},
		{"pid reused by another program", inProgressStatus(true), machine("postgres", -time.Second), NotComplete, 1, true, `now "postgres"`},
		{"pid gone", inProgressStatus(true), fakeProcesses{host: "db1"}, NotComplete, 1, true, "is gone"},
		{"zombie", inProgressStatus(true), zombie, NotComplete, 1, true, "zombie"},
		{"another host", inProgressStatus(true), fakeProcesses{host: "db2", procs: machine(WriterName, 0).procs}, NotComplete, 1, false, `written on host "db1", this is "db2"`},
		{"host name unknown", inProgressStatus(true), fakeProcesses{hostErr: errors.New("boom")}, NotComplete, 1, false, "host name: boom"},
		{"process table unreadable", inProgressStatus(true), fakeProcesses{host: "db1", procErr: errors.New("hidepid")}, NotComplete, 1, false, "hidepid"},
		{"start time unknown", unknownStart, machine(WriterName, 0), NotComplete, 1, false, "no start time"},
		{"start time unknown, pid gone", unknownStart, fakeProcesses{host: "db1"}, NotComplete, 1, true, "is gone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, final, l := Decide(tc.status, tc.procs, DefaultStartSlack)
			if v != tc.verdict || v.ExitCode() != tc.exit || final != tc.final {
				t.Errorf("verdict %v exit %d final %v, want %v exit %d final %v", v, v.ExitCode(), final, tc.verdict, tc.exit, tc.final)
			}
			if tc.status.State != StateInProgress {
				if l != nil {
					t.Errorf("liveness checked for a %v file", tc.status.State)
				}
				return
			}
			if l == nil || !strings.Contains(l.Reason, tc.reason) {
				t.Errorf("liveness %+v, want a reason containing %q", l, tc.reason)
			}
			if l != nil && l.Alive != (v == Running) {
				t.Errorf("alive %v with verdict %v", l.Alive, v)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	want := map[Verdict]int{Completed: 0, NotComplete: 1, Failed: 2, Running: 3, CompletedNotDurable: 4, Stalled: 5, CompletedUnconfirmed: 6}
	for v, code := range want {
		if v.ExitCode() != code {
			t.Errorf("%v: exit %d, want %d", v, v.ExitCode(), code)
		}
	}
	if Verdict(0) != NotComplete || Verdict(99).ExitCode() != 1 {
		t.Error("the zero or an unknown verdict must be NotComplete, exit 1")
	}
}

func TestCheckFile(t *testing.T) {
	procs := WithProcesses(machine(WriterName, 0))
	for name, tc := range map[string]struct {
		data    []byte
		verdict Verdict
	}{
		"completed":   {completedStatus().Encode(), Completed},
		"failed":      {failedStatus(true).Encode(), Failed},
		"running":     {inProgressStatus(true).Encode(), Running},
		"torn":        {completedStatus().Encode()[:100], NotComplete},
		"version 2":   {[]byte(strings.Replace(string(completedStatus().Encode()), "FORMAT: 1", "FORMAT: 2", 1)), NotComplete},
		"empty":       {nil, NotComplete},
		"not durable": {func() []byte { s := completedStatus(); s.Sync, s.Durable = false, false; return s.Encode() }(), CompletedNotDurable},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), statusName, tc.data)
			r := Check(path, procs)
			if r.Verdict != tc.verdict || r.ExitCode != tc.verdict.ExitCode() {
				t.Errorf("%v exit %d (%s), want %v", r.Verdict, r.ExitCode, r.Summary, tc.verdict)
			}
			if r.StatusFile != path || r.Path != path {
				t.Errorf("status file %q, path %q, want %q", r.StatusFile, r.Path, path)
			}
			if (r.Err != nil) != (tc.verdict == NotComplete) || (r.Err != nil) != (r.Status == nil) {
				t.Errorf("err %v, status %v", r.Err, r.Status)
			}
		})
	}
}

// TestCheckDirectory: a directory, even one holding a file named as the
// status file once was, is no status file: exit 64, final, whatever is
// in it; Wait stops at once.
func TestCheckDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, FileName, completedStatus().Encode())
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, link} {
		r := Check(path, WithProcesses(fakeProcesses{}))
		if r.Verdict != NotComplete || r.ExitCode != 1 || !r.Final || r.Status != nil || !errors.Is(r.Err, ErrIsDirectory) {
			t.Errorf("%s: %v exit %d final %v status %v err %v", path, r.Verdict, r.ExitCode, r.Final, r.Status, r.Err)
		}
		if want := path + " is a directory: give the status file that pg_basebackup wrote with --status-file"; r.Summary != want {
			t.Errorf("%s: summary %q, want %q", path, r.Summary, want)
		}
		start := time.Now()
		if r := Wait(context.Background(), path, time.Hour, WithProcesses(fakeProcesses{})); r.ExitCode != 1 || !r.Final || r.TimedOut || time.Since(start) > time.Minute {
			t.Errorf("%s: Wait: exit %d timed out %v", path, r.ExitCode, r.TimedOut)
		}
	}
}

// TestCheckMissing: a missing status file is not complete and not final
// (the run may not have written it yet), also when its temporary file or
// a backup directory's files are there.
func TestCheckMissing(t *testing.T) {
	dir := t.TempDir()
	for name, files := range map[string][]string{
		"nothing":                        nil,
		"only its temporary file":        {filepath.Base(TempPath(statusName, 1234))},
		"only its legacy temporary file": {filepath.Base(LegacyTempPath(statusName))},
		"next to a finished manifest":    {"backup_manifest", "PG_VERSION"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			for _, f := range files {
				writeFile(t, dir, f, completedStatus().Encode())
			}
			r := Check(filepath.Join(dir, statusName), WithProcesses(fakeProcesses{}))
			if r.Verdict != NotComplete || r.ExitCode != 1 || r.Final || !errors.Is(r.Err, fs.ErrNotExist) {
				t.Errorf("%v exit %d final %v err %v, want not-complete, 1, not final, not found", r.Verdict, r.ExitCode, r.Final, r.Err)
			}
			if !strings.HasPrefix(r.Summary, "no status file") {
				t.Errorf("summary %q", r.Summary)
			}
		})
	}
	// Its directory missing too.
	r := Check(filepath.Join(dir, "nonexistent", statusName))
	if r.Verdict != NotComplete || r.ExitCode != 1 || r.Final || !strings.HasPrefix(r.Summary, "no status file") {
		t.Errorf("%+v", r)
	}
}

func TestReportJSON(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, statusName, inProgressStatus(true).Encode())
	r := Check(filepath.Join(dir, statusName), WithProcesses(machine(WriterName, 0)))
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	st := got["status"].(map[string]any)
	for k, want := range map[string]any{
		"verdict": "running", "exit_code": 3.0, "final": false,
	} {
		if got[k] != want {
			t.Errorf("%s: %v, want %v", k, got[k], want)
		}
	}
	for k, want := range map[string]any{
		"state": "in progress", "start_lsn": "0/2000028", "start_time": "2026-11-25T09:18:00Z",
		"system_identifier": "7441234567890123456", "pid": 1234.0,
	} {
		if st[k] != want {
			t.Errorf("status.%s: %v, want %v", k, st[k], want)
		}
	}
	for _, k := range []string{"end_time", "end_lsn", "reason", "target"} {
		if _, ok := st[k]; ok {
			t.Errorf("status.%s present in an in-progress report", k)
		}
	}
}

// TestWait: a run that completes while waited for; one that stays running
// until the timeout, which keeps its verdict.
func TestWait(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, statusName, inProgressStatus(true).Encode())
	var checks atomic.Int32
	procs := countingProcesses{machine(WriterName, 0), &checks}
	go func() {
		for checks.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		// Replace it as pg_basebackup does: temporary file and rename.
		tmp := writeFile(t, dir, filepath.Base(TempPath(statusName, 1234)), completedStatus().Encode())
		if err := os.Rename(tmp, filepath.Join(dir, statusName)); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := Wait(ctx, filepath.Join(dir, statusName), 5*time.Millisecond, WithProcesses(procs))
	if r.Verdict != Completed || r.TimedOut {
		t.Fatalf("%v timed out %v: %s", r.Verdict, r.TimedOut, r.Summary)
	}

	writeFile(t, dir, statusName, inProgressStatus(true).Encode())
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r = Wait(ctx, filepath.Join(dir, statusName), 5*time.Millisecond, WithProcesses(procs))
	if r.Verdict != Running || r.ExitCode != 3 || !r.TimedOut {
		t.Fatalf("%v exit %d timed out %v", r.Verdict, r.ExitCode, r.TimedOut)
	}

	// A final state ends the wait at once.
	writeFile(t, dir, statusName, inProgressStatus(true).Encode())
	start := time.Now()
	r = Wait(context.Background(), filepath.Join(dir, statusName), time.Hour, WithProcesses(fakeProcesses{host: "db1"}))
	if r.Verdict != NotComplete || !r.Final || time.Since(start) > time.Minute {
		t.Fatalf("dead run: %v final %v", r.Verdict, r.Final)
	}
}

// countingProcesses counts the liveness checks.
type countingProcesses struct {
	fakeProcesses
	n *atomic.Int32
}

func (c countingProcesses) Process(pid int) (ProcessInfo, error) {
	c.n.Add(1)
	return c.fakeProcesses.Process(pid)
}

func TestStartSlackOption(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, statusName, inProgressStatus(true).Encode())
	procs := WithProcesses(machine(WriterName, 5*time.Second))
	if r := Check(filepath.Join(dir, statusName), procs); r.Verdict != NotComplete {
		t.Errorf("default slack: %v", r.Verdict)
	}
	if r := Check(filepath.Join(dir, statusName), procs, WithStartSlack(10*time.Second)); r.Verdict != Running {
		t.Errorf("slack 10s: %v", r.Verdict)
	}
}
