package status

import (
	"bytes"
	"strings"
	"testing"
)

// minimalCompleted is a completed file of the minimal form, as the master
// form of the patch (patches/threads/status-file, v1-0001) writes it: no
// LABEL, PROGRAM VERSION, FORMAT or TARGET, WAL METHOD, nor start lines;
// the end location padded as PostgreSQL 19 and later print it.
const minimalCompleted = `BACKUP STATUS FORMAT: 1
STATUS: completed
START TIME: 2026-12-06 17:30:00 UTC
PID: 4242
HOST: db1
SYNC: on
END WAL LOCATION: 0/02000120
END TIME: 2026-12-06 17:30:02 UTC
DURABLE: yes
`

// minimalForms are minimal files of every state, with the lines that the
// follow-up patches of the series add (progress, DIRECTORY, the /proc
// identity), and the verdict each supports.
var minimalForms = []struct {
	name    string
	body    string
	state   State
	verdict Verdict
}{
	{"completed", minimalCompleted, StateCompleted, Completed},
	{"completed not durable", strings.Replace(strings.Replace(minimalCompleted, "SYNC: on", "SYNC: off", 1), "DURABLE: yes", "DURABLE: no", 1), StateCompleted, CompletedNotDurable},
	{"completed unpadded", strings.Replace(minimalCompleted, "0/02000120", "0/2000120", 1), StateCompleted, Completed},
	{"failed", `BACKUP STATUS FORMAT: 1
STATUS: failed
START TIME: 2026-12-06 17:30:00 UTC
PID: 4243
HOST: db1
SYNC: on
END TIME: 2026-12-06 17:30:01 UTC
REASON: error while starting
`, StateFailed, Failed},
	{"in progress", `BACKUP STATUS FORMAT: 1
STATUS: in progress
START TIME: 2026-12-06 17:30:00 UTC
PID: 4244
HOST: db1
SYNC: off
`, StateInProgress, NotComplete},
	{"in progress, progress", `BACKUP STATUS FORMAT: 1
STATUS: in progress
START TIME: 2026-12-06 17:30:00 UTC
PID: 4244
HOST: db1
SYNC: on
UPDATE INTERVAL: 1
PHASE: receiving data
UPDATE TIME: 2026-12-06 17:30:05 UTC
BYTES RECEIVED: 163840
BYTES TOTAL: 23456768
`, StateInProgress, NotComplete},
	{"completed, progress, directories, identity", `BACKUP STATUS FORMAT: 1
STATUS: completed
START TIME: 2026-12-06 17:30:00 UTC
PID: 4242
HOST: db1
BOOT ID: 6c1b3f0e-0d6c-4c1e-9a52-4e0f3b0c2a11
PID NAMESPACE: pid:[4026531836]
START TICKS: 81234
SYNC: on
UPDATE INTERVAL: 5
DIRECTORY: created /backups/b1
END WAL LOCATION: 0/02000120
END TIME: 2026-12-06 17:30:02 UTC
DURABLE: yes
`, StateCompleted, Completed},
}

// TestMinimalForm: the minimal files parse, say what they know, leave the
// rest unknown (empty), encode back to themselves, and lead to the
// verdicts their states support. An "in progress" file of a process that
// is gone is NotComplete and final.
func TestMinimalForm(t *testing.T) {
	for _, tc := range minimalForms {
		t.Run(tc.name, func(t *testing.T) {
			data := seal(tc.body)
			s, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if s.State != tc.state {
				t.Errorf("state %v, want %v", s.State, tc.state)
			}
			if s.Described() || s.Label != "" || s.ProgramVersion != "" || s.Format != "" || s.WALMethod != "" || s.Started {
				t.Errorf("a minimal file says what it does not know: %+v", s)
			}
			if len(s.UnknownKeys) > 0 {
				t.Errorf("unknown keys %q", s.UnknownKeys)
			}
			if got := s.Encode(); !bytes.Equal(got, data) {
				t.Errorf("encodes to\n%s\nnot\n%s", got, data)
			}
			p := fakeGone{host: "db1"}
			v, final, _ := Decide(s, p, DefaultStartSlack)
			if v != tc.verdict || !final {
				t.Errorf("verdict %v (final %v), want %v (final)", v, final, tc.verdict)
			}
		})
	}
}

// TestMinimalFormInvalid: a file either describes the run completely or
// not at all, and a completed file that describes it was started.
func TestMinimalFormInvalid(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"format alone", strings.Replace(minimalCompleted, "SYNC: on\n", "FORMAT: plain\nSYNC: on\n", 1), "FORMAT or TARGET in a file without LABEL"},
		{"label alone", strings.Replace(minimalCompleted, "SYNC: on\n", "LABEL: x\nSYNC: on\n", 1), "PROGRAM VERSION missing"},
		{"described, not started", strings.Replace(minimalCompleted, "SYNC: on\n", "LABEL: x\nPROGRAM VERSION: pg_basebackup (PostgreSQL) 20devel\nFORMAT: plain\nWAL METHOD: stream\nSYNC: on\n", 1), "START WAL LOCATION missing (required when completed)"},
		{"described without format", strings.Replace(minimalCompleted, "SYNC: on\n", "LABEL: x\nPROGRAM VERSION: pg_basebackup (PostgreSQL) 20devel\nWAL METHOD: stream\nSYNC: on\n", 1), "neither FORMAT nor TARGET"},
		{"completed without end location", strings.Replace(minimalCompleted, "END WAL LOCATION: 0/02000120\n", "", 1), "END WAL LOCATION missing"},
		{"completed without durable", strings.Replace(minimalCompleted, "DURABLE: yes\n", "", 1), "DURABLE missing"},
		{"failed without reason", strings.Replace(minimalForms[3].body, "REASON: error while starting\n", "", 1), "REASON missing"},
		{"end location padded to seven", strings.Replace(minimalCompleted, "0/02000120", "0/0200012", 1), "not a WAL location"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(seal(tc.body))
			if err == nil {
				t.Fatalf("parsed as %v", s.State)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

// fakeGone is a machine named host on which no process runs.
type fakeGone struct{ host string }

func (f fakeGone) Hostname() (string, error)        { return f.host, nil }
func (f fakeGone) Process(int) (ProcessInfo, error) { return ProcessInfo{}, nil }
