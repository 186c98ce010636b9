package status

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TempSuffix ends the name of every temporary file of the status file,
// to which pg_basebackup writes each version before renaming it into
// place. A temporary file's presence alone means nothing.
const TempSuffix = ".tmp"

// TempPath is the temporary file that the pg_basebackup of process pid
// writes each version of the status file at path to: path.PID.tmp, PID
// being the pid its PID line records. Two runs given the same status
// file thus never share one, and a file left behind by a run killed while
// it wrote one stands in no later run's way.
func TempPath(path string, pid int) string {
	return path + "." + strconv.Itoa(pid) + TempSuffix
}

// LegacyTempPath is the temporary file of the status file at path that
// earlier writers used whatever their pid: path.tmp. A reader takes it
// for a temporary file of the run that wrote the status file, as it was
// for those writers.
func LegacyTempPath(path string) string { return path + TempSuffix }

// ParseTempPath says whether p is a temporary file of the status file at
// path, TempPath(path, pid) for some pid (returned) or LegacyTempPath(path)
// (pid 0). path and p are compared as given, as strings: both paths, or
// both base names.
func ParseTempPath(path, p string) (pid int, ok bool) {
	rest, found := strings.CutPrefix(p, path)
	if !found {
		return 0, false
	}
	if rest == TempSuffix {
		return 0, true
	}
	digits, found := strings.CutPrefix(rest, ".")
	if !found {
		return 0, false
	}
	digits, found = strings.CutSuffix(digits, TempSuffix)
	if !found || digits == "" || digits[0] == '0' || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 0, false
	}
	return n, true
}

// TempFiles lists the temporary files of the status file at path that
// exist, of any writer (see ParseTempPath), in name order; an unreadable
// directory is an error.
func TempFiles(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if _, ok := ParseTempPath(base, e.Name()); ok {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// WarnCompleteUnsaid is the warning pg_basebackup prints when the backup
// is complete but the final version of the status file, the one that
// would say completed, could not be written (patch 0004 of the pg18
// series). It then keeps the backup, removes the status file (or, if it
// cannot, leaves the previous version, which does not say completed) and
// exits 0. A reader of the status file then finds none, or one that does
// not say completed, and must not use the backup on the strength of the
// file; a caller that reads the exit status and this warning may.
const WarnCompleteUnsaid = "the backup is complete, but the status file could not say so"

// FileName was the name of the status file that pg_basebackup wrote into
// the target directory by default.
//
// Deprecated: pg_basebackup writes a status file only where
// --status-file=FILE says, outside every directory the backup writes;
// give that path. FileName remains as a name a caller may choose.
const FileName = "backup_status"

// TempFileName is the temporary file that earlier writers used for a
// status file named FileName (LegacyTempPath).
//
// Deprecated: use TempPath, with the writer's pid, or LegacyTempPath.
const TempFileName = FileName + TempSuffix

// FormatVersion is the newest format version this package reads.
const FormatVersion = 1

// TimeLayout is the layout of START TIME and END TIME (always UTC).
const TimeLayout = "2006-01-02 15:04:05 UTC"

// unknownTime is what the writer puts in a time field when it cannot format
// the time.
const unknownTime = "unknown"

// State is the STATUS line of a status file.
type State int

const (
	// StateUnknown is the zero State; Parse never returns it.
	StateUnknown State = iota
	// StateInProgress says the backup was running when the file was written.
	// A killed run leaves it behind too.
	StateInProgress
	// StateCompleted says every file of the backup was written (and, if
	// Status.Durable, synced) before the file was.
	StateCompleted
	// StateFailed says pg_basebackup exited with an error; Status.Reason
	// names the step.
	StateFailed
)

// String returns the STATUS value of s, as written in the file.
func (s State) String() string {
	switch s {
	case StateInProgress:
		return "in progress"
	case StateCompleted:
		return "completed"
	case StateFailed:
		return "failed"
	}
	return "unknown"
}

// MarshalText encodes s as its STATUS value.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// parseState returns the State of a STATUS value.
func parseState(v string) (State, bool) {
	for _, s := range []State{StateInProgress, StateCompleted, StateFailed} {
		if v == s.String() {
			return s, true
		}
	}
	return StateUnknown, false
}

// LSN is a write-ahead log location, written as two upper-case hexadecimal
// numbers without leading zeros, "0/2000028", as PostgreSQL 18 and earlier
// print them, or with the second padded to eight digits, "0/02000028", as
// later releases do.
type LSN uint64

// String formats l as PostgreSQL does, "%X/%X".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// MarshalText encodes l as its String.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// parseLSN accepts the forms String and PaddedString produce. A file
// writes all its WAL locations in one form: the first padded one sets
// s.LSNPadded, and an unpadded one in a file that has a padded one is an
// error. (A second part of eight digits without a leading zero is both.)
func (s *Status) parseLSN(v string) (LSN, error) {
	bad := detailf("%s is not a WAL location (want upper-case HEX/HEX without leading zeros, or with the second part of eight digits)", quote(v))
	hi, lo, ok := strings.Cut(v, "/")
	if !ok {
		return 0, detailf("%s is not a WAL location (want HEX/HEX)", quote(v))
	}
	h, err := parseHex32(hi)
	if err != nil {
		return 0, bad
	}
	padded := len(lo) == 8 && lo[0] == '0'
	if padded {
		if lo = strings.TrimLeft(lo, "0"); lo == "" {
			lo = "0"
		}
	}
	l, err := parseHex32(lo)
	if err != nil {
		return 0, bad
	}
	// An earlier location below 0x10000000 was written in one form
	// or the other, not both.
	unpaddedBefore := s.Started && !s.LSNPadded && uint32(s.StartLSN) < 1<<28
	switch {
	case padded && unpaddedBefore, len(lo) < 8 && !padded && s.LSNPadded:
		return 0, detailf("%s: WAL locations written both with and without zero padding", quote(v))
	case padded:
		s.LSNPadded = true
	}
	return LSN(uint64(h)<<32 | uint64(l)), nil
}

// PaddedString formats l as PostgreSQL 19 and later do, "%X/%08X".
func (l LSN) PaddedString() string { return fmt.Sprintf("%X/%08X", uint32(l>>32), uint32(l)) }

// parseHex32 accepts 1 to 8 upper-case hexadecimal digits without leading
// zeros.
func parseHex32(s string) (uint32, error) {
	if s == "" || len(s) > 8 || (len(s) > 1 && s[0] == '0') {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return 0, strconv.ErrSyntax
		}
	}
	n, err := strconv.ParseUint(s, 16, 32)
	return uint32(n), err
}

// parseDecimal accepts a decimal number without sign or leading zeros that
// fits in bits.
func parseDecimal(s string, bits int) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseUint(s, 10, bits)
}

// parseTime accepts TimeLayout exactly (zero-padded, UTC), or "unknown",
// which the writer uses when it cannot format the time; that gives the zero
// time.
func parseTime(v string) (time.Time, error) {
	if v == unknownTime {
		return time.Time{}, nil
	}
	t, err := time.Parse(TimeLayout, v)
	if err != nil || t.Format(TimeLayout) != v {
		return time.Time{}, detailf("%s is not a time of the form %q", quote(v), TimeLayout)
	}
	return t, nil
}

// formatTime is the inverse of parseTime.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return unknownTime
	}
	return t.UTC().Format(TimeLayout)
}

// Phase is the PHASE of an "in progress" file with progress lines. The
// writer moves through the phases in the order of the constants.
type Phase string

// The phases, in order.
const (
	PhaseStarting      Phase = "starting"
	PhaseReceiving     Phase = "receiving data"
	PhaseWaitingForWAL Phase = "waiting for WAL"
	PhaseSyncing       Phase = "syncing"
	PhaseFinishing     Phase = "finishing"
)

// phases lists the phases in order.
func phases() []Phase {
	return []Phase{PhaseStarting, PhaseReceiving, PhaseWaitingForWAL, PhaseSyncing, PhaseFinishing}
}

// Order returns the position of p among the phases, counting from 1, or 0
// for an unknown phase (as is the empty Phase of a file without one).
func (p Phase) Order() int {
	for i, q := range phases() {
		if p == q {
			return i + 1
		}
	}
	return 0
}

// Directory is a DIRECTORY line: a directory the run created or filled.
type Directory struct {
	// Path is the absolute path; empty if Unprintable.
	Path string `json:"path,omitempty"`
	// Created says the run created the directory (remove it to clean
	// up); otherwise it existed, empty, before the run (empty it).
	Created bool `json:"created"`
	// Unprintable says the path has a control character and was not
	// recorded: the reader cannot clean up after the run by itself.
	Unprintable bool `json:"unprintable,omitempty"`
}

// String returns the DIRECTORY value of d.
func (d Directory) String() string {
	switch {
	case d.Unprintable:
		return unprintable
	case d.Created:
		return "created " + d.Path
	}
	return "existing " + d.Path
}

const unprintable = "unprintable"

// parseDirectory accepts what Directory.String produces, with an absolute
// path.
func parseDirectory(v string) (Directory, error) {
	if v == unprintable {
		return Directory{Unprintable: true}, nil
	}
	how, path, _ := strings.Cut(v, " ")
	if (how != "created" && how != "existing") || !strings.HasPrefix(path, "/") {
		return Directory{}, detailf("%s is not \"created PATH\", \"existing PATH\" (absolute) or \"unprintable\"", quote(v))
	}
	return Directory{Path: path, Created: how == "created"}, nil
}

// Status is the parsed content of a status file. Fields that the file does
// not have in its state are zero; see the package documentation for which
// lines appear when.
type Status struct {
	// Version is the BACKUP STATUS FORMAT.
	Version int `json:"format_version"`
	// State is the STATUS.
	State State `json:"state"`
	// StartTime is the START TIME, when pg_basebackup wrote the first
	// version of the file, at second resolution. Zero if the writer wrote
	// "unknown".
	StartTime time.Time `json:"start_time,omitzero"`
	// PID is the process id of pg_basebackup on Host.
	PID int `json:"pid"`
	// Host is the host name of the machine pg_basebackup ran on.
	Host string `json:"host"`
	// BootID is the boot of that machine PID belongs to (Linux's
	// /proc/sys/kernel/random/boot_id); empty if the writer could not
	// tell.
	BootID string `json:"boot_id,omitempty"`
	// PIDNamespace is the PID namespace PID is numbered in, as Linux's
	// /proc/self/ns/pid links to it: "pid:[INODE]"; empty if the writer
	// could not tell.
	PIDNamespace string `json:"pid_namespace,omitempty"`
	// StartTicks is the START TICKS, when process PID started, in clock
	// ticks since boot as it saw them itself (field 22 of
	// /proc/self/stat); 0 if the writer did not record it (not Linux,
	// or a writer before patch 0004). Unlike StartTime it does not move
	// when the wall clock is set.
	StartTicks uint64 `json:"start_ticks,omitzero"`
	// Label is the backup label, control characters replaced by '?'.
	Label string `json:"label"`
	// ProgramVersion is pg_basebackup's version string.
	ProgramVersion string `json:"program_version"`
	// Format is "plain" or "tar"; empty when Target is set.
	Format string `json:"format,omitempty"`
	// Target is the --target of a server-side backup; empty otherwise.
	Target string `json:"target,omitempty"`
	// WALMethod is "stream", "fetch" or "none".
	WALMethod string `json:"wal_method"`
	// Sync says whether pg_basebackup syncs what it writes (no --no-sync).
	Sync bool `json:"sync"`
	// Progress says the file has the progress and directory lines:
	// UPDATE INTERVAL, DIRECTORY, and while in progress PHASE, UPDATE
	// TIME, BYTES RECEIVED and BYTES TOTAL (patch 0003). Files of the
	// first version of the patch have none of them.
	Progress bool `json:"progress"`
	// UpdateInterval is the UPDATE INTERVAL, the seconds between
	// progress rewrites while data arrives; 0 if they are disabled.
	UpdateInterval int `json:"update_interval"`
	// Directories are the DIRECTORY lines, in file order: the target,
	// the --waldir directory, the tablespace directories.
	Directories []Directory `json:"directories,omitempty"`
	// Started says the server started the backup: StartLSN, Timeline and
	// SystemID are set. Always true for a completed backup.
	Started bool `json:"started"`
	// StartLSN is the START WAL LOCATION.
	StartLSN LSN `json:"start_lsn,omitzero"`
	// Timeline is the START TIMELINE.
	Timeline uint32 `json:"timeline,omitzero"`
	// SystemID is the SYSTEM IDENTIFIER of the backed-up cluster (a string
	// in JSON: it does not fit in a float64).
	SystemID uint64 `json:"system_identifier,omitzero,string"`
	// Phase is the PHASE (in progress with Progress only).
	Phase Phase `json:"phase,omitempty"`
	// UpdateTime is the UPDATE TIME, when this version of the file was
	// written (in progress with Progress only).
	UpdateTime time.Time `json:"update_time,omitzero"`
	// BytesReceived is the BYTES RECEIVED so far (in progress with
	// Progress only).
	BytesReceived uint64 `json:"bytes_received,omitzero"`
	// BytesTotal is the BYTES TOTAL, the server's estimate of the size of
	// the backup; 0 if it gave none (in progress with Progress only).
	BytesTotal uint64 `json:"bytes_total,omitzero"`
	// EndLSN is the END WAL LOCATION (completed only).
	EndLSN LSN `json:"end_lsn,omitzero"`
	// EndTime is the END TIME (completed and failed). Zero if not present
	// or if the writer wrote "unknown".
	EndTime time.Time `json:"end_time,omitzero"`
	// Durable is DURABLE: yes (completed only): everything was synced.
	Durable bool `json:"durable"`
	// Reason is the REASON of a failed backup, naming the step that failed
	// ("error while receiving data") or the signal that ended the run
	// ("terminated by signal SIGTERM while receiving data").
	Reason string `json:"reason,omitempty"`
	// LSNPadded says the file writes its WAL locations with the second
	// part padded to eight digits, "0/02000028", as PostgreSQL 19 and
	// later print them; earlier writers do not pad, "0/2000028".
	LSNPadded bool `json:"-"`
	// Checksum is the CRC-32C of the file up to the CHECKSUM line.
	Checksum uint32 `json:"checksum"`
	// UnknownKeys are the keys of lines this reader does not know, in
	// the order they first appear: a later writer added them without
	// changing the format version, which promises that a reader may
	// ignore them. Their lines are covered by the checksum, but not
	// parsed, and Encode does not write them.
	UnknownKeys []string `json:"unknown_keys,omitempty"`
}

// crc32c is the CRC-32C (Castagnoli) of b, as on the CHECKSUM line.
func crc32c(b []byte) uint32 {
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}

// sanitize replaces control characters byte by byte, as the writer does.
func sanitize(v string) string {
	b := []byte(v)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// Encode returns the file pg_basebackup writes for s, with its checksum
// line; it sets s.Checksum. It writes what the fields say, following the
// writer (write_backup_status in the patch) line by line, so that for every
// s that Parse returned without UnknownKeys, Encode gives back the parsed
// bytes (the lines of unknown keys are not written: for a file with them,
// Encode gives the file without those lines, with its own checksum). Encoding a
// Status that Parse would reject (for example a completed one that was not
// Started) gives a file that Parse rejects.
func (s *Status) Encode() []byte {
	var b strings.Builder
	line := func(key, value string) {
		b.WriteString(key)
		b.WriteString(": ")
		b.WriteString(sanitize(value))
		b.WriteByte('\n')
	}
	line(keyVersion, strconv.Itoa(s.Version))
	line(keyStatus, s.State.String())
	line(keyStartTime, formatTime(s.StartTime))
	line(keyPID, strconv.Itoa(s.PID))
	line(keyHost, s.Host)
	if s.BootID != "" {
		line(keyBootID, s.BootID)
	}
	if s.PIDNamespace != "" {
		line(keyPIDNamespace, s.PIDNamespace)
	}
	if s.StartTicks != 0 {
		line(keyStartTicks, strconv.FormatUint(s.StartTicks, 10))
	}
	if s.Described() {
		line(keyLabel, s.Label)
		line(keyProgramVersion, s.ProgramVersion)
		if s.Target != "" {
			line(keyTarget, s.Target)
		} else {
			line(keyFormat, s.Format)
		}
		line(keyWALMethod, s.WALMethod)
	}
	line(keySync, onOff(s.Sync))
	lsn := LSN.String
	if s.LSNPadded {
		lsn = LSN.PaddedString
	}
	if s.Progress {
		line(keyUpdateInterval, strconv.Itoa(s.UpdateInterval))
		for _, d := range s.Directories {
			line(keyDirectory, d.String())
		}
	}
	if s.Started {
		line(keyStartLSN, lsn(s.StartLSN))
		line(keyTimeline, strconv.FormatUint(uint64(s.Timeline), 10))
		line(keySystemID, strconv.FormatUint(s.SystemID, 10))
	}
	if s.Progress && s.State == StateInProgress {
		line(keyPhase, string(s.Phase))
		line(keyUpdateTime, formatTime(s.UpdateTime))
		line(keyBytesReceived, strconv.FormatUint(s.BytesReceived, 10))
		if s.BytesTotal > 0 {
			line(keyBytesTotal, strconv.FormatUint(s.BytesTotal, 10))
		}
	}
	if s.State == StateCompleted {
		line(keyEndLSN, lsn(s.EndLSN))
	}
	if s.State != StateInProgress {
		line(keyEndTime, formatTime(s.EndTime))
	}
	if s.State == StateCompleted {
		line(keyDurable, yesNo(s.Durable))
	}
	if s.State == StateFailed {
		line(keyReason, s.Reason)
	}
	body := []byte(b.String())
	s.Checksum = crc32c(body)
	return fmt.Appendf(body, "%s: %08X\n", keyChecksum, s.Checksum)
}

// Described says the file describes the run: it has LABEL, PROGRAM
// VERSION, FORMAT or TARGET and WAL METHOD, as the first writer's files
// always do. A minimal file, as the master form of the patch writes, has
// none of them (see the package documentation); its Label, ProgramVersion,
// Format, Target and WALMethod are empty, meaning not known.
func (s *Status) Described() bool { return s.WALMethod != "" }

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
