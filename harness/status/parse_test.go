package status

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// completedStatus is a valid completed status, like the one in the package
// documentation.
func completedStatus() *Status {
	return &Status{
		Version:        1,
		State:          StateCompleted,
		StartTime:      time.Date(2026, 11, 25, 9, 18, 0, 0, time.UTC),
		PID:            1234,
		Host:           "db1",
		Label:          "pg_basebackup base backup",
		ProgramVersion: "pg_basebackup (PostgreSQL) 18.6",
		Format:         "plain",
		WALMethod:      "stream",
		Sync:           true,
		Started:        true,
		StartLSN:       0x2000028,
		Timeline:       1,
		SystemID:       7441234567890123456,
		EndLSN:         0x2000100,
		EndTime:        time.Date(2026, 11, 25, 9, 20, 0, 0, time.UTC),
		Durable:        true,
	}
}

// withProgress adds the lines of patch 0003 to s: an update interval, two
// directories, and while in progress the phase and byte counts.
func withProgress(s *Status) *Status {
	s.Progress, s.UpdateInterval = true, 5
	s.Directories = []Directory{{Path: "/backups/b1", Created: true}, {Path: "/backups/b1 wal"}}
	if s.State == StateInProgress {
		s.Phase, s.UpdateTime = PhaseReceiving, s.StartTime.Add(10*time.Second)
		s.BytesReceived, s.BytesTotal = 8192, 37661696
	}
	return s
}

// inProgressStatus is a valid "in progress" status, before the server
// started the backup when started is false.
func inProgressStatus(started bool) *Status {
	s := completedStatus()
	s.State = StateInProgress
	s.EndLSN, s.EndTime, s.Durable = 0, time.Time{}, false
	if !started {
		s.Started, s.StartLSN, s.Timeline, s.SystemID = false, 0, 0, 0
	}
	return s
}

// failedStatus is a valid failed status.
func failedStatus(started bool) *Status {
	s := inProgressStatus(started)
	s.State = StateFailed
	s.EndTime = time.Date(2026, 11, 25, 9, 19, 0, 0, time.UTC)
	s.Reason = "error while receiving the backup"
	return s
}

// seal appends the checksum line to body.
func seal(body string) []byte {
	return fmt.Appendf([]byte(body), "CHECKSUM: %08X\n", crc32c([]byte(body)))
}

// bodyLines returns the lines of a sealed file without the checksum line.
func bodyLines(file []byte) []string {
	lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
	return lines[:len(lines)-1]
}

// join makes a sealed file of lines.
func join(lines []string) []byte { return seal(strings.Join(lines, "\n") + "\n") }

const docExample = `BACKUP STATUS FORMAT: 1
STATUS: completed
START TIME: 2026-11-25 09:18:00 UTC
PID: 1234
HOST: db1
LABEL: pg_basebackup base backup
PROGRAM VERSION: pg_basebackup (PostgreSQL) 18.6
FORMAT: plain
WAL METHOD: stream
SYNC: on
START WAL LOCATION: 0/2000028
START TIMELINE: 1
SYSTEM IDENTIFIER: 7441234567890123456
END WAL LOCATION: 0/2000100
END TIME: 2026-11-25 09:20:00 UTC
DURABLE: yes
`

func TestEncodeMatchesDocumentedFormat(t *testing.T) {
	got := completedStatus().Encode()
	if want := seal(docExample); !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n%s\nwant:\n%s", got, want)
	}
}

// TestRealFiles reads files written by the patched pg_basebackup 18.6 (see
// testdata/README): each parses, and encodes back to the same bytes.
func TestRealFiles(t *testing.T) {
	want := map[string]State{
		"0002/completed_plain":                      StateCompleted,
		"0002/completed_nosync_tar":                 StateCompleted,
		"0002/completed_fetch_label":                StateCompleted,
		"0002/completed_stdout":                     StateCompleted,
		"0002/completed_target":                     StateCompleted,
		"0002/failed_receiving":                     StateFailed,
		"0002/in_progress_killed":                   StateInProgress,
		"0003/completed_plain_tablespace_waldir":    StateCompleted,
		"0003/completed_nosync_tar_nointerval":      StateCompleted,
		"0003/completed_existing_label":             StateCompleted,
		"0003/completed_stdout":                     StateCompleted,
		"0003/failed_receiving":                     StateFailed,
		"0003/in_progress_killed":                   StateInProgress,
		"0003-pg15/completed_plain":                 StateCompleted,
		"0003-pg15/completed_nosync_tar_fetch":      StateCompleted,
		"0003-signals/completed_stdout_sync":        StateCompleted,
		"0003-signals/completed_target_sync":        StateCompleted,
		"0003-signals/completed_readonly_file":      StateCompleted,
		"0003-signals/failed_sigterm":               StateFailed,
		"master-v1-0001/completed_plain":            StateCompleted,
		"master-v1-0001/completed_nosync_tar":       StateCompleted,
		"master-v1-0001/failed_not_empty":           StateFailed,
		"master-v1-0001/in_progress_killed":         StateInProgress,
		"master-v1-0001-srv20/completed_plain":      StateCompleted,
		"master-v1-0001-srv20/completed_nosync_tar": StateCompleted,
		"master-v1-0001-srv20/failed_not_empty":     StateFailed,
		"master-v1-0001-srv20/in_progress_killed":   StateInProgress,
		"master-v1-series/completed_plain_waldir":   StateCompleted,
		"master-v1-series/failed_receiving":         StateFailed,
		"master-v1-series/in_progress_killed":       StateInProgress,
	}
	files, _ := filepath.Glob("testdata/real/*/*")
	if len(files) != len(want) {
		t.Errorf("%d files in testdata/real, %d in the test", len(files), len(want))
	}
	for name, state := range want {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "real", name)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if s.State != state {
				t.Errorf("state %v, want %v", s.State, state)
			}
			if got := s.Encode(); !bytes.Equal(got, data) {
				t.Errorf("Encode does not give back the file:\n%s\nwant:\n%s", got, data)
			}
		})
	}
	s, err := ReadFile("testdata/real/0002/completed_fetch_label")
	if err != nil {
		t.Fatal(err)
	}
	if s.Label != "héllo?tab" || s.WALMethod != "fetch" || s.Sync || s.Durable {
		t.Errorf("completed_fetch_label: %+v", s)
	}
	s, err = ReadFile("testdata/real/0002/completed_target")
	if err != nil {
		t.Fatal(err)
	}
	if s.Target != "server:/tmp/pgbbF/out/target" || s.Format != "" {
		t.Errorf("completed_target: target %q format %q", s.Target, s.Format)
	}
	s, err = ReadFile("testdata/real/0003/completed_plain_tablespace_waldir")
	if err != nil {
		t.Fatal(err)
	}
	wantDirs := []Directory{
		{Path: "/tmp/pgbbF/out3/plain", Created: true},
		{Path: "/tmp/pgbbF/out3/plain_wal", Created: true},
		{Path: "/tmp/pgbbF/out3/plain_ts", Created: true},
	}
	if diff := cmp.Diff(wantDirs, s.Directories); diff != "" || !s.Progress || s.UpdateInterval != 5 {
		t.Errorf("completed_plain_tablespace_waldir: interval %d, directories (-want +got):\n%s", s.UpdateInterval, diff)
	}
	s, err = ReadFile("testdata/real/0003/in_progress_killed")
	if err != nil {
		t.Fatal(err)
	}
	if s.Phase != PhaseReceiving || s.BytesReceived != 73728 || s.BytesTotal != 37661696 || s.UpdateTime.IsZero() || s.UpdateInterval != 1 {
		t.Errorf("in_progress_killed: %+v", s)
	}
	for _, name := range []string{"completed_stdout_sync", "completed_target_sync", "completed_readonly_file"} {
		s, err = ReadFile("testdata/real/0003-signals/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Sync || s.Durable {
			t.Errorf("%s: sync %t, durable %t; want synced but not durable", name, s.Sync, s.Durable)
		}
	}
	s, err = ReadFile("testdata/real/0003-signals/failed_sigterm")
	if err != nil {
		t.Fatal(err)
	}
	if s.Reason != "terminated by signal SIGTERM while receiving data" {
		t.Errorf("failed_sigterm: reason %q", s.Reason)
	}
	s, err = ReadFile("testdata/real/0003/completed_existing_label")
	if err != nil {
		t.Fatal(err)
	}
	if s.Label != "label: with colon  " || len(s.Directories) != 1 || s.Directories[0].Created {
		t.Errorf("completed_existing_label: label %q, directories %+v", s.Label, s.Directories)
	}
}

// TestValid parses well-formed files of every state and checks round trips.
func TestValid(t *testing.T) {
	target := completedStatus()
	target.Format, target.Target = "", "server:/srv/backup"
	nosync := completedStatus()
	nosync.Sync, nosync.Durable = false, false
	// Synced, but not every file: -D -, --target, a file skipped by the sync.
	notDurable := completedStatus()
	notDurable.Durable = false
	signaled := failedStatus(true)
	signaled.Reason = "terminated by signal SIGTERM while receiving data"
	empty := inProgressStatus(false)
	empty.Label, empty.Host = "", ""
	unknownTimes := failedStatus(true)
	unknownTimes.StartTime, unknownTimes.EndTime = time.Time{}, time.Time{}
	big := completedStatus()
	big.SystemID, big.StartLSN, big.EndLSN, big.Timeline, big.PID = 1<<64-1, 0xFFFFFFFF00000000, 0xFFFFFFFFFFFFFFFF, 1<<32-1, 1<<31-1
	progressStarting := withProgress(inProgressStatus(false))
	progressStarting.Phase, progressStarting.BytesReceived, progressStarting.BytesTotal = PhaseStarting, 0, 0
	progressNoDirs := withProgress(completedStatus())
	progressNoDirs.Directories, progressNoDirs.UpdateInterval = nil, 0
	progressOdd := withProgress(failedStatus(true))
	progressOdd.Directories = []Directory{{Unprintable: true}, {Path: "/", Created: true}, {Path: "/x/created y"}}
	progressUnknownTime := withProgress(inProgressStatus(true))
	progressUnknownTime.UpdateTime, progressUnknownTime.BytesTotal = time.Time{}, 0
	identity := withProgress(inProgressStatus(true))
	identity.BootID, identity.PIDNamespace, identity.StartTicks = "6c1b3f0e-1111-4a5b-9c1d-0123456789ab", "pid:[4026531836]", 1<<64-1
	ticksOnly := completedStatus()
	ticksOnly.StartTicks = 1
	for name, s := range map[string]*Status{
		"boot, namespace, start ticks":    identity,
		"start ticks alone":               ticksOnly,
		"progress completed":              withProgress(completedStatus()),
		"progress in progress":            withProgress(inProgressStatus(true)),
		"progress starting":               progressStarting,
		"progress failed":                 withProgress(failedStatus(false)),
		"progress no directories":         progressNoDirs,
		"progress odd directories":        progressOdd,
		"progress unknown time, no total": progressUnknownTime,
		"completed":                       completedStatus(),
		"completed target":                target,
		"completed not durable":           nosync,
		"completed synced, not durable":   notDurable,
		"failed by a signal":              signaled,
		"in progress":                     inProgressStatus(true),
		"in progress not started":         inProgressStatus(false),
		"empty label and host":            empty,
		"failed":                          failedStatus(true),
		"failed not started":              failedStatus(false),
		"unknown times":                   unknownTimes,
		"largest numbers":                 big,
	} {
		t.Run(name, func(t *testing.T) {
			data := s.Encode()
			got, err := Parse(data)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if diff := cmp.Diff(s, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			if again := got.Encode(); !bytes.Equal(again, data) {
				t.Errorf("round trip:\n%s\nwant\n%s", again, data)
			}
		})
	}
}

// TestInvalid: each file is rejected, with an error naming the line.
func TestInvalid(t *testing.T) {
	valid := string(completedStatus().Encode())
	body := docExample
	replace := func(old, new string) []byte {
		if !strings.Contains(body, old) {
			t.Fatalf("test bug: %q not in the example", old)
		}
		return seal(strings.Replace(body, old, new, 1))
	}
	tests := []struct {
		name string
		data []byte
		line int
		msg  string
	}{
		{"empty", nil, 0, "empty"},
		{"only newline", []byte("\n"), 1, "empty line"},
		{"no final newline", []byte(strings.TrimSuffix(valid, "\n")), 17, "does not end in a newline"},
		{"no checksum line", []byte(body), 16, "does not end with a CHECKSUM line"},
		{"checksum only", []byte("BACKUP STATUS FORMAT: 1\n"), 1, "CHECKSUM"},
		{"wrong checksum", []byte(valid[:len(valid)-9] + "00000000\n"), 17, "checksum mismatch: the file says 00000000"},
		{"lower-case checksum", []byte(body + "CHECKSUM: " + strings.ToLower(fmt.Sprintf("%08X", crc32c([]byte(body))|0xA0000000)) + "\n"), 17, "CHECKSUM line"},
		{"checksum too short", []byte(valid[:len(valid)-2] + "\n"), 17, "CHECKSUM line"},
		{"checksum with space", []byte(valid[:len(valid)-1] + " \n"), 17, "CHECKSUM line"},
		{"data after checksum", []byte(valid + "X: y\n"), 18, "CHECKSUM line"},
		{"two checksum lines", seal(valid), 17, "CHECKSUM line before the end"},
		{"version 2", replace("FORMAT: 1", "FORMAT: 2"), 1, "unsupported format version 2"},
		{"version 0", replace("FORMAT: 1", "FORMAT: 0"), 1, "unsupported format version 0"},
		{"version 01", replace("FORMAT: 1", "FORMAT: 01"), 1, "not a format version"},
		{"version word", replace("FORMAT: 1", "FORMAT: one"), 1, "not a format version"},
		{"version not first", seal(strings.Replace(body, "BACKUP STATUS FORMAT: 1\nSTATUS: completed\n", "STATUS: completed\nBACKUP STATUS FORMAT: 1\n", 1)), 1, "first line"},
		{"CRLF", seal(strings.ReplaceAll(body, "\n", "\r\n")), 1, "control character 0x0D"},
		{"NUL in label", replace("base backup", "base\x00backup"), 6, "control character 0x00"},
		{"tab in label", replace("base backup", "base\tbackup"), 6, "control character 0x09"},
		{"DEL in host", replace("HOST: db1", "HOST: db\x7f"), 5, "control character 0x7F"},
		{"latin-1 label", replace("base backup", "base b\xe4ckup"), 6, "not UTF-8"},
		// Unicode control characters, which the writer does not replace:
		// C1 controls and bidirectional controls, which terminals obey.
		{"NEL (C1) in label", replace("base backup", "base\u0085backup"), 6, "control character U+0085 in column 26"},
		{"CSI (C1) in label", replace("base backup", "base\u009b2Jbackup"), 6, "control character U+009B"},
		{"right-to-left override in label", replace("base backup", "base \u202epukcab"), 6, "control character U+202E"},
		{"left-to-right embedding in host", replace("HOST: db1", "HOST: db\u202a1"), 5, "control character U+202A"},
		{"left-to-right isolate in label", replace("base backup", "base \u2066backup"), 6, "control character U+2066"},
		{"pop directional isolate in label", replace("base backup", "base\u2069 backup"), 6, "control character U+2069"},
		{"right-to-left mark in label", replace("base backup", "base\u200fbackup"), 6, "control character U+200F"},
		{"left-to-right mark in program version", replace("18.6", "18.6\u200e"), 7, "control character U+200E"},
		{"Arabic letter mark in label", replace("base backup", "base\u061cbackup"), 6, "control character U+061C"},
		{"line separator in label", replace("base backup", "base\u2028backup"), 6, "control character U+2028"},
		{"start ticks zero", replace("HOST: db1\n", "HOST: db1\nSTART TICKS: 0\n"), 6, "not a start time in clock ticks"},
		{"start ticks leading zero", replace("HOST: db1\n", "HOST: db1\nSTART TICKS: 012\n"), 6, "not a start time in clock ticks"},
		{"start ticks too large", replace("HOST: db1\n", "HOST: db1\nSTART TICKS: 18446744073709551616\n"), 6, "not a start time in clock ticks"},
		{"start ticks after label", replace("LABEL: pg_basebackup base backup\n", "LABEL: pg_basebackup base backup\nSTART TICKS: 5\n"), 7, "START TICKS out of place"},
		{"C1 in the line of an unknown key", replace("SYNC: on\n", "SYNC: on\nNEW KEY: a\u0085b\n"), 11, "control character U+0085"},
		{"empty line", replace("HOST: db1\n", "HOST: db1\n\n"), 6, "empty line"},
		{"no space after colon", replace("PID: 1234", "PID:1234"), 4, "not a KEY: value line"},
		{"lower-case key", replace("PID: 1234", "pid: 1234"), 4, `"pid" is not a key`},
		{"key with trailing space", replace("PID: 1234", "PID : 1234"), 4, `"PID " is not a key`},
		{"unknown key in lower case", replace("SYNC: on\n", "SYNC: on\ncompression: none\n"), 11, `"compression" is not a key`},
		{"unknown key with a digit", replace("SYNC: on\n", "SYNC: on\nCRC32C: none\n"), 11, `"CRC32C" is not a key`},
		{"unknown key with two spaces", replace("SYNC: on\n", "SYNC: on\nNEW  KEY: x\n"), 11, `"NEW  KEY" is not a key`},
		{"unknown key with a leading space", replace("SYNC: on\n", "SYNC: on\n NEW: x\n"), 11, `" NEW" is not a key`},
		{"unknown key without a value separator", replace("SYNC: on\n", "SYNC: on\nNEW KEY:\n"), 11, "not a KEY: value line"},
		{"unknown key, duplicate known key after it", replace("SYNC: on\n", "SYNC: on\nNEW: x\nSYNC: on\n"), 12, "duplicate SYNC (first on line 10)"},
		{"unknown key, known key out of place after it", replace("HOST: db1\nLABEL: pg_basebackup base backup\n", "LABEL: pg_basebackup base backup\nNEW: x\nHOST: db1\n"), 7, "HOST out of place: it comes before LABEL (line 5)"},
		{"unknown key in an unknown version", replace("FORMAT: 1\nSTATUS: completed\n", "FORMAT: 2\nSTATUS: completed\nNEW: x\n"), 1, "unsupported format version 2"},
		{"duplicate status", replace("STATUS: completed\n", "STATUS: completed\nSTATUS: completed\n"), 3, "duplicate STATUS (first on line 2)"},
		{"duplicate version", replace("STATUS: completed\n", "STATUS: completed\nBACKUP STATUS FORMAT: 1\n"), 3, "duplicate BACKUP STATUS FORMAT"},
		{"out of order", replace("HOST: db1\nLABEL: pg_basebackup base backup\n", "LABEL: pg_basebackup base backup\nHOST: db1\n"), 6, "HOST out of place: it comes before LABEL (line 5)"},
		{"status missing", replace("STATUS: completed\n", ""), 2, "START TIME before STATUS"},
		{"status unknown", replace("STATUS: completed", "STATUS: complete"), 2, `unknown status "complete"`},
		{"status upper case", replace("STATUS: completed", "STATUS: COMPLETED"), 2, "unknown status"},
		{"start time local", replace("09:18:00 UTC", "09:18:00 CET"), 3, "not a time"},
		{"start time unpadded", replace("09:18:00 UTC", "9:18:00 UTC"), 3, "not a time"},
		{"start time leap second", replace("09:18:00 UTC", "09:18:60 UTC"), 3, "not a time"},
		{"start time empty", replace("START TIME: 2026-11-25 09:18:00 UTC", "START TIME: "), 3, "not a time"},
		{"pid zero", replace("PID: 1234", "PID: 0"), 4, "not a process id"},
		{"pid negative", replace("PID: 1234", "PID: -1"), 4, "not a process id"},
		{"pid plus", replace("PID: 1234", "PID: +1234"), 4, "not a process id"},
		{"pid leading zero", replace("PID: 1234", "PID: 01234"), 4, "not a process id"},
		{"pid too large", replace("PID: 1234", "PID: 2147483648"), 4, "not a process id"},
		{"pid space", replace("PID: 1234", "PID: 1234 "), 4, "not a process id"},
		{"program version empty", replace("PROGRAM VERSION: pg_basebackup (PostgreSQL) 18.6", "PROGRAM VERSION: "), 7, "empty value"},
		{"format zip", replace("FORMAT: plain", "FORMAT: zip"), 8, "not one of"},
		{"format and target", replace("FORMAT: plain\n", "FORMAT: plain\nTARGET: server:/x\n"), 9, "both FORMAT (line 8) and TARGET"},
		{"target before format", replace("FORMAT: plain\n", "TARGET: server:/x\nFORMAT: plain\n"), 9, "FORMAT out of place"},
		{"neither format nor target", replace("FORMAT: plain\n", ""), 8, "neither FORMAT nor TARGET"},
		{"empty target", replace("FORMAT: plain", "TARGET: "), 8, "empty value"},
		{"wal method", replace("WAL METHOD: stream", "WAL METHOD: Stream"), 9, "not one of"},
		{"sync yes", replace("SYNC: on", "SYNC: yes"), 10, "neither on nor off"},
		{"lsn lower case", replace("0/2000028", "0/2000a28"), 11, "not a WAL location"},
		{"lsn leading zero", replace("0/2000028", "0/0200028"), 11, "not a WAL location"},
		{"lsn high part leading zero", replace("0/2000028", "00/2000028"), 11, "not a WAL location"},
		{"lsn padded and unpadded", replace("0/2000028", "0/02000028"), 14, "both with and without zero padding"},
		{"lsn unpadded and padded", replace("0/2000100", "0/02000100"), 14, "both with and without zero padding"},
		{"lsn too long", replace("0/2000028", "0/100000000"), 11, "not a WAL location"},
		{"lsn no slash", replace("0/2000028", "02000028"), 11, "not a WAL location"},
		{"timeline zero", replace("START TIMELINE: 1", "START TIMELINE: 0"), 12, "not a timeline"},
		{"timeline too large", replace("START TIMELINE: 1", "START TIMELINE: 4294967296"), 12, "not a timeline"},
		{"system identifier hex", replace("7441234567890123456", "0x67436B2C1E0E1C40"), 13, "not a system identifier"},
		{"system identifier too large", replace("7441234567890123456", "18446744073709551616"), 13, "not a system identifier"},
		{"end before start", replace("END WAL LOCATION: 0/2000100", "END WAL LOCATION: 0/2000000"), 14, "before START WAL LOCATION"},
		{"durable maybe", replace("DURABLE: yes", "DURABLE: maybe"), 16, "neither yes nor no"},
		{"durable but no sync", replace("SYNC: on", "SYNC: off"), 16, "DURABLE: yes contradicts SYNC: off"},
		{"reason in completed", replace("DURABLE: yes\n", "DURABLE: yes\nREASON: x\n"), 17, "REASON not allowed when completed"},
		{"failed without reason", join(bodyLines(failedStatus(true).Encode())[:14]), 15, "REASON missing (required when failed)"},
		{"failed with durable", join(append(bodyLines(failedStatus(true).Encode())[:14], "DURABLE: yes", "REASON: x")), 15, "DURABLE not allowed when failed"},
		{"in progress with end time", join(append(bodyLines(inProgressStatus(true).Encode()), "END TIME: 2026-11-25 09:20:00 UTC")), 14, "END TIME not allowed when in progress"},
		{"in progress with end lsn", join(append(bodyLines(inProgressStatus(true).Encode()), "END WAL LOCATION: 0/3000000")), 14, "END WAL LOCATION not allowed when in progress"},
		{"in progress partial start", join(bodyLines(inProgressStatus(true).Encode())[:11]), 11, "START TIMELINE missing: START WAL LOCATION, START TIMELINE and SYSTEM IDENTIFIER come together"},
		{"in progress only timeline", join(append(bodyLines(inProgressStatus(false).Encode()), "START TIMELINE: 1")), 11, "START WAL LOCATION missing"},
		{"completed not started", completedNotStarted(), 11, "START WAL LOCATION missing (required when completed)"},
		{"over the size limit", bigFile(), 0, "more than the limit"},
		{"directory without interval", progressWithout(completedStatus(), keyUpdateInterval), 11, "DIRECTORY without UPDATE INTERVAL"},
		{"phase without interval", progressWithout(inProgressStatus(true), keyUpdateInterval), 11, "DIRECTORY without UPDATE INTERVAL"},
		{"progress without phase", progressWithout(inProgressStatus(true), keyPhase), 20, "PHASE missing (required when in progress with UPDATE INTERVAL)"},
		{"progress without update time", progressWithout(inProgressStatus(true), keyUpdateTime), 20, "UPDATE TIME missing"},
		{"progress without bytes received", progressWithout(inProgressStatus(true), keyBytesReceived), 20, "BYTES RECEIVED missing"},
		{"phase in completed", progressWith(completedStatus(), "END WAL LOCATION", "PHASE: finishing"), 17, "PHASE not allowed when completed"},
		{"bytes in failed", progressWith(failedStatus(true), "END TIME", "BYTES RECEIVED: 5"), 17, "BYTES RECEIVED not allowed when failed"},
		{"unknown phase", progressReplace(inProgressStatus(true), "PHASE: receiving data", "PHASE: Receiving data"), 17, "unknown phase"},
		{"bytes total zero", progressReplace(inProgressStatus(true), "BYTES TOTAL: 37661696", "BYTES TOTAL: 0"), 20, "not a positive number"},
		{"bytes received negative", progressReplace(inProgressStatus(true), "BYTES RECEIVED: 8192", "BYTES RECEIVED: -1"), 19, "not a number of bytes"},
		{"interval negative", progressReplace(completedStatus(), "UPDATE INTERVAL: 5", "UPDATE INTERVAL: -5"), 11, "not a number of seconds"},
		{"directory relative", progressReplace(completedStatus(), "DIRECTORY: created /backups/b1\n", "DIRECTORY: created backups/b1\n"), 12, "is not \"created PATH\""},
		{"directory how", progressReplace(completedStatus(), "DIRECTORY: created /backups/b1\n", "DIRECTORY: made /backups/b1\n"), 12, "is not \"created PATH\""},
		{"directory empty", progressReplace(completedStatus(), "DIRECTORY: created /backups/b1\n", "DIRECTORY: \n"), 12, "is not"},
		{"directory split", progressReplace(completedStatus(), "DIRECTORY: existing /backups/b1 wal\n", "START WAL LOCATION: 0/2000028\nDIRECTORY: existing /backups/b1 wal\n"), 14, "DIRECTORY out of place: it comes before START WAL LOCATION (line 13)"},
		{"directory after start", progressReplace(completedStatus(), "DIRECTORY: existing /backups/b1 wal\nSTART WAL LOCATION: 0/2000028\n", "START WAL LOCATION: 0/2000028\nDIRECTORY: existing /backups/b1 wal\n"), 14, "DIRECTORY out of place"},
		{"interval after directory", progressReplace(completedStatus(), "UPDATE INTERVAL: 5\nDIRECTORY: created /backups/b1\n", "DIRECTORY: created /backups/b1\nUPDATE INTERVAL: 5\n"), 12, "UPDATE INTERVAL out of place"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.data)
			if err == nil {
				t.Fatalf("parsed as %v:\n%s", s.State, tc.data)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v, want *ParseError", err, err)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("error %q (line %d), want line %d containing %q", err, pe.Line, tc.line, tc.msg)
			}
		})
	}
}

// TestUnknownKeys: lines of keys this reader does not know are ignored
// wherever they are after the first line, and recorded; the file parses as
// it would without them, the checksum still covers them, and Encode gives
// the file without them.
func TestUnknownKeys(t *testing.T) {
	insert := func(s *Status, before, line string) string {
		var out []string
		done := false
		for _, l := range bodyLines(s.Encode()) {
			if !done && strings.HasPrefix(l, before+": ") {
				out, done = append(out, line), true
			}
			out = append(out, l)
		}
		if !done {
			panic("test bug: no " + before + " line")
		}
		return strings.Join(out, "\n") + "\n"
	}
	twoDirs := withProgress(inProgressStatus(true))
	for _, tc := range []struct {
		name string
		s    *Status
		body string
		keys []string
	}{
		{"completed, after SYNC", completedStatus(), insert(completedStatus(), keySync, "COMPRESSION: gzip"), []string{"COMPRESSION"}},
		{"completed, before STATUS", completedStatus(), insert(completedStatus(), keyStatus, "WRITER: pg_basebackup"), []string{"WRITER"}},
		{"completed, last before the checksum", completedStatus(), strings.Join(append(bodyLines(completedStatus().Encode()), "NEW KEY WITH WORDS: "), "\n") + "\n", []string{"NEW KEY WITH WORDS"}},
		{"failed, with a colon in the value", failedStatus(true), insert(failedStatus(true), keyReason, "DETAIL: could not read: no such file"), []string{"DETAIL"}},
		{"in progress, between DIRECTORY lines", twoDirs, strings.Replace(strings.Join(bodyLines(twoDirs.Encode()), "\n")+"\n", "\nDIRECTORY: existing", "\nNEW: x\nDIRECTORY: existing", 1), []string{"NEW"}},
		{"in progress, two keys, one twice", inProgressStatus(true),
			insert(inProgressStatus(true), keyHost, "B: 1\nA: 2\nB: 3"), []string{"B", "A"}},
		{"a key that looks like a checksum", completedStatus(), insert(completedStatus(), keyDurable, "CHECKSUMS: 1A2B3C4D"), []string{"CHECKSUMS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := seal(tc.body)
			got, err := Parse(data)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			want := *tc.s
			want.Encode()
			want.Checksum, want.UnknownKeys = got.Checksum, tc.keys
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			if !bytes.Equal(got.Encode(), tc.s.Encode()) {
				t.Errorf("Encode:\n%s\nwant the file without the unknown lines:\n%s", got.Encode(), tc.s.Encode())
			}
			// The checksum covers the unknown lines too.
			changed := bytes.Replace(data, []byte(tc.keys[0]+": "), []byte(tc.keys[0]+": x"), 1)
			if _, err := Parse(changed); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
				t.Errorf("an unknown line changed without its checksum: %v", err)
			}
		})
	}
	// The version still decides: the same file in a version this reader
	// does not know is refused.
	v2 := seal(strings.Replace(insert(completedStatus(), keySync, "COMPRESSION: gzip"), "FORMAT: 1", "FORMAT: 2", 1))
	if _, err := Parse(v2); err == nil || !strings.Contains(err.Error(), "unsupported format version 2") {
		t.Errorf("version 2: %v", err)
	}
}

// progressWithout is s with progress lines, the line of key removed.
func progressWithout(s *Status, key string) []byte {
	var out []string
	for _, l := range bodyLines(withProgress(s).Encode()) {
		if !strings.HasPrefix(l, key+": ") {
			out = append(out, l)
		}
	}
	return join(out)
}

// progressWith is s with progress lines and line added before the line of
// key.
func progressWith(s *Status, key, line string) []byte {
	var out []string
	for _, l := range bodyLines(withProgress(s).Encode()) {
		if strings.HasPrefix(l, key+": ") {
			out = append(out, line)
		}
		out = append(out, l)
	}
	return join(out)
}

// progressReplace is s with progress lines, old replaced by new.
func progressReplace(s *Status, old, new string) []byte {
	body := strings.Join(bodyLines(withProgress(s).Encode()), "\n") + "\n"
	if !strings.Contains(body, old) {
		panic("test bug: " + old + " not in\n" + body)
	}
	return seal(strings.Replace(body, old, new, 1))
}

// completedNotStarted is a completed file without the three start lines.
func completedNotStarted() []byte {
	s := completedStatus()
	s.Started = false
	return s.Encode()
}

// bigFile is a valid in-progress file with a label that makes it exceed
// MaxSize.
func bigFile() []byte {
	s := inProgressStatus(true)
	s.Label = strings.Repeat("x", MaxSize)
	return s.Encode()
}

// TestEveryLine changes each line of valid files of every state in the ways
// a damaged or forged file might, always with a correct checksum: removing
// it, duplicating it, swapping it with the next. None may parse, except
// where the result is itself a file a writer could have written: without a
// DIRECTORY or BYTES TOTAL line, or without UPDATE INTERVAL in a completed
// or failed file with no DIRECTORY lines (the first version of the patch),
// or with a DIRECTORY line twice. Those must parse as the same state and
// encode back to themselves.
func TestEveryLine(t *testing.T) {
	noDirs := func(s *Status) *Status { s.Directories = nil; return s }
	for name, s := range map[string]*Status{
		"completed":                   completedStatus(),
		"in progress":                 inProgressStatus(true),
		"in progress bare":            inProgressStatus(false),
		"failed":                      failedStatus(true),
		"failed not started":          failedStatus(false),
		"progress completed":          withProgress(completedStatus()),
		"progress in progress":        withProgress(inProgressStatus(true)),
		"progress in progress bare":   withProgress(inProgressStatus(false)),
		"progress failed":             withProgress(failedStatus(true)),
		"progress completed, no dirs": noDirs(withProgress(completedStatus())),
		"progress failed, no dirs":    noDirs(withProgress(failedStatus(false))),
	} {
		lines := bodyLines(s.Encode())
		key := func(l string) string { k, _, _ := strings.Cut(l, ": "); return k }
		try := func(what string, mutated []string, mayParse bool) {
			data := join(mutated)
			got, err := Parse(data)
			switch {
			case err != nil:
			case !mayParse:
				t.Errorf("%s: %s: parsed as %v:\n%s", name, what, got.State, data)
			case got.State != s.State:
				t.Errorf("%s: %s: parsed as %v, not %v", name, what, got.State, s.State)
			default:
				checkAccepted(t, data, got)
			}
		}
		for i := range lines {
			k := key(lines[i])
			removable := k == keyDirectory || k == keyBytesTotal ||
				(k == keyUpdateInterval && s.State != StateInProgress && len(s.Directories) == 0)
			removed := append(append([]string{}, lines[:i]...), lines[i+1:]...)
			try(fmt.Sprintf("without line %d %q", i+1, lines[i]), removed, removable)
			dup := append(append([]string{}, lines[:i+1]...), lines[i:]...)
			try(fmt.Sprintf("line %d %q twice", i+1, lines[i]), dup, k == keyDirectory)
			if i+1 < len(lines) {
				swapped := append([]string{}, lines...)
				swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
				try(fmt.Sprintf("lines %d and %d swapped", i+1, i+2), swapped, k == keyDirectory && key(lines[i+1]) == keyDirectory)
			}
		}
	}
}

// TestTruncated cuts every real file at every byte: no prefix parses at
// all, and so none as completed. It also flips every bit of each.
func TestTruncated(t *testing.T) {
	files, err := filepath.Glob("testdata/real/*/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(data); n++ {
			if s, err := Parse(data[:n]); err == nil {
				t.Errorf("%s cut to %d bytes parses as %v", path, n, s.State)
			}
		}
		for i := range data {
			for bit := 0; bit < 8; bit++ {
				flipped := bytes.Clone(data)
				flipped[i] ^= 1 << bit
				if s, err := Parse(flipped); err == nil {
					t.Errorf("%s with bit %d of byte %d flipped parses as %v", path, bit, i, s.State)
				}
			}
		}
	}
}

func TestParseErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		err  ParseError
		want string
	}{
		{ParseError{Path: "/b/backup_status", Line: 3, Msg: "bad"}, "/b/backup_status:3: bad"},
		{ParseError{Path: "/b/backup_status", Msg: "bad"}, "/b/backup_status: bad"},
		{ParseError{Line: 3, Msg: "bad"}, "3: bad"},
		{ParseError{Msg: "bad"}, "bad"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.err, got, tc.want)
		}
	}
}
