package trial

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// TestFieldTruth: a status file that says what the run was is accepted;
// each field that lies is named, a START TIME written in local time by a
// writer in Newfoundland among them.
func TestFieldTruth(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	boot, err := status.Procfs{}.BootID()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	started := time.Date(2026, 12, 1, 10, 0, 0, 400e6, time.UTC)
	ft := fieldTruth{target: "/b/target", dirs: []string{"/b/ts1"}, wal: "/b/waldir", pid: 4321,
		started: started, ended: started.Add(3 * time.Minute),
		scenario: scenario.Scenario{Format: "plain", WALMethod: "stream", Sync: true}}
	good := func() *status.Status {
		return &status.Status{
			Version: 1, State: status.StateCompleted, StartTime: started.Truncate(time.Second), PID: 4321, Host: host,
			BootID: boot, PIDNamespace: ns,
			Label: "t", ProgramVersion: "pg_basebackup (PostgreSQL) 18.6", Format: "plain", WALMethod: "stream", Sync: true,
			Started: true, StartLSN: 0x2000028, Timeline: 1, SystemID: 7441234567890123456,
			EndLSN: 0x2000100, EndTime: started.Add(2 * time.Minute), Durable: true,
			Progress: true, UpdateInterval: 5, Phase: status.PhaseFinishing, UpdateTime: started.Add(2 * time.Minute),
			Directories: []status.Directory{{Path: "/b/target", Created: true}, {Path: "/b/waldir", Created: true}, {Path: "/b/ts1", Created: true}},
		}
	}
	st, _ := time.LoadLocation("America/St_Johns")
	cases := []struct {
		name   string
		modify func(s *status.Status)
		want   string
	}{
		{"true", func(*status.Status) {}, ""},
		{"another pid", func(s *status.Status) { s.PID = 4322 }, "PID 4322"},
		{"another host", func(s *status.Status) { s.Host = "elsewhere" }, `HOST "elsewhere"`},
		{"no boot ID", func(s *status.Status) { s.BootID = "" }, `BOOT ID ""`},
		{"another PID namespace", func(s *status.Status) { s.PIDNamespace = "pid:[4026532999]" }, `PID NAMESPACE "pid:[4026532999]"`},
		{"local time as UTC", func(s *status.Status) {
			local := started.In(st)
			s.StartTime = time.Date(local.Year(), local.Month(), local.Day(), local.Hour(), local.Minute(), local.Second(), 0, time.UTC)
		}, "START TIME 2026-12-01 06:30:00"},
		{"format", func(s *status.Status) { s.Format = "tar"; s.Directories = s.Directories[:1] }, "FORMAT tar"},
		{"no sync", func(s *status.Status) { s.Sync, s.Durable = false, false }, "SYNC false"},
		{"a stranger directory", func(s *status.Status) { s.Directories[2].Path = "/etc" }, "DIRECTORY /etc was never given"},
		{"the waldir missing", func(s *status.Status) { s.Directories = s.Directories[:2:2]; s.Directories[1].Path = "/b/ts1" }, "DIRECTORY /b/waldir it filled is not recorded"},
		{"another target", func(s *status.Status) { s.Directories[0].Path = "/b/other" }, "first DIRECTORY /b/other"},
		{"another interval", func(s *status.Status) { s.UpdateInterval = 1 }, "UPDATE INTERVAL 1, but the run was given 5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.modify(s)
			path := filepath.Join(dir, status.FileName)
			if err := os.WriteFile(path, s.Encode(), 0o600); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(ft.check(path), "; ")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("wrong fields %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTrialTZ: the zone is seeded, and the zones are all used.
func TestTrialTZ(t *testing.T) {
	seen := map[string]bool{}
	for seed := range uint64(200) {
		if TrialTZ(seed) != TrialTZ(seed) {
			t.Fatal("not deterministic")
		}
		seen[TrialTZ(seed)] = true
	}
	if len(seen) != len(trialZones) {
		t.Fatalf("zones used: %v", seen)
	}
	for z := range seen {
		if _, err := time.LoadLocation(z); err != nil {
			t.Errorf("zone %s: %v", z, err)
		}
	}
}

// TestReaderTZ: the reader's zone is seeded and never the writer's.
func TestReaderTZ(t *testing.T) {
	for seed := range uint64(200) {
		if ReaderTZ(seed) == TrialTZ(seed) || ReaderTZ(seed) != ReaderTZ(seed) {
			t.Fatalf("seed %d: reader %s, writer %s", seed, ReaderTZ(seed), TrialTZ(seed))
		}
	}
}
