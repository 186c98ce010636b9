// Package scenario reads crash scenarios: what pg_basebackup is run with,
// against how much data, under which fault plans, how many times. Scenarios
// are data (JSON files under scenarios/), validated strictly before a
// campaign starts: an unknown key or a bad value is an error naming the file
// and the line.
package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Fault plan names (see harness/fault).
const (
	// PlanKill is SIGKILL of pg_basebackup at a random time over a
	// calibrated clean run, weighted towards the finishing phase.
	PlanKill = "kill"
	// PlanSyscallKill is SIGKILL at the Nth file-system call of the
	// process tree (ptrace).
	PlanSyscallKill = "kill-syscall"
	// PlanTerm is SIGTERM of pg_basebackup at a random time.
	PlanTerm = "term"
	// PlanInt is SIGINT of pg_basebackup at a random time.
	PlanInt = "int"
	// PlanKillBackup and PlanTermBackup are SIGKILL and SIGTERM of the
	// pg_basebackup process alone at a random time: with a wrapper
	// (pgbb-run), its pg_basebackup child, else the same as PlanKill and
	// PlanTerm.
	PlanKillBackup = "kill-backup"
	PlanTermBackup = "term-backup"
	// PlanKillGroup and PlanTermGroup are SIGKILL and SIGTERM of the
	// run's whole process group at a random time (kill -- -PID).
	PlanKillGroup = "kill-group"
	PlanTermGroup = "term-group"
	// PlanKillWALChild is SIGKILL of the WAL streaming child only.
	PlanKillWALChild = "kill-wal-child"
	// PlanTerminateWalsender is pg_terminate_backend of the backup's
	// walsenders on the server.
	PlanTerminateWalsender = "terminate-walsender"
	// PlanServerStop is an immediate stop of the source server mid-backup.
	PlanServerStop = "server-stop"
	// PlanNone runs the backup without a fault: the control.
	PlanNone = "none"
)

// Plans lists every fault plan name a scenario may use.
func Plans() []string {
	return append([]string{PlanNone, PlanKill, PlanSyscallKill, PlanTerm, PlanInt, PlanKillBackup, PlanTermBackup, PlanKillGroup, PlanTermGroup,
		PlanKillWALChild, PlanTerminateWalsender, PlanServerStop},
		append(DiskPlans(), PlanStop, PlanStatusDirReadOnly)...)
}

// Scenario is one crash scenario. The JSON keys are the snake_case names
// given in the field comments.
type Scenario struct {
	// Name identifies the scenario in trial ids and reports ("name");
	// default: the file name without .json.
	Name string
	// Description is free text ("description").
	Description string
	// Format is pg_basebackup's --format: "plain" or "tar" ("format").
	Format string
	// WALMethod is --wal-method: "stream", "fetch" or "none" ("wal_method").
	WALMethod string
	// Compression is --compress, e.g. "client-gzip", "server-lz4:1", or
	// "none" ("compression"); tar format only.
	Compression string
	// Tablespaces is how many extra tablespaces the source cluster has,
	// each holding a table with data ("tablespaces", 0-4).
	Tablespaces int
	// Manifest is false for --no-manifest ("manifest", default true).
	Manifest bool
	// Sync is false for --no-sync ("sync", default true).
	Sync bool
	// NoClean passes --no-clean, so that an error exit leaves the
	// directory (and a "failed" status) behind ("no_clean", default false).
	NoClean bool
	// MaxRate is --max-rate, e.g. "20M"; empty for none ("max_rate").
	MaxRate string
	// Faults are the fault plans; trials cycle through them ("faults").
	Faults []string
	// Trials is the number of trials ("trials", 1-100000).
	Trials int
	// Budget bounds the scenario's wall time; trials not started when it
	// runs out are skipped and reported ("budget", e.g. "3m"; default none).
	Budget time.Duration
	// Scale is the pgbench scale of the source dataset ("scale", 1-1000;
	// 1 is about 15 MB).
	Scale int
	// Clients is the number of concurrent write connections besides the
	// canary writer ("clients", 0-32, default 2).
	Clients int
	// OracleSample is the fraction of trials the oracle checks although no
	// signal claimed completion ("oracle_sample", 0-1, default 0.25).
	OracleSample float64
	// Seed, when not zero, replaces the campaign seed for this scenario
	// ("seed").
	Seed int64
	// StaleStatus puts a valid "completed" backup_status (the control
	// run's) into the source data directory, as a source restored from
	// such a backup has: it must never travel into a new backup
	// ("stale_status", default false).
	StaleStatus bool
	// WALDir passes --waldir, a directory next to the target that
	// pg_basebackup creates; plain format, off the power-loss layer
	// ("waldir", default false).
	WALDir bool
	// Stdout passes -D -: pg_basebackup writes one tar archive to its
	// standard output, which the trial saves as base.tar in a directory
	// of its own. pg_basebackup syncs nothing it writes there, so a
	// completed status must say DURABLE: no. Format tar, WAL method fetch
	// or none, no tablespaces, no compression, process and server plans
	// only ("stdout", default false).
	Stdout bool
	// ReadOnlyFile puts a file of mode 0400, owned by the server's account,
	// into the source data directory (a plain file the server ignores).
	// pg_basebackup, run as that account, writes it into a plain backup
	// with that mode. The final sync of the pg18 series opens it
	// read-only and syncs it, so a completed status must say DURABLE:
	// yes; an earlier series (pg15's) cannot open it for writing and
	// skips it, so its completed status must say DURABLE: no (see
	// Synced). In a tar archive it is only bytes, and tar-format backups
	// stay durable ("readonly_file", default false).
	ReadOnlyFile bool
	// StatusInterval, when not zero, passes --status-file-refresh: the
	// seconds between progress rewrites of the status file while data
	// arrives ("status_interval", 1-60; default the program's).
	StatusInterval int
	// Progress passes -P (--progress), as orchestrators that show a
	// progress bar do: pg_basebackup then asks the server for the size of
	// the backup ("progress", default false).
	Progress bool

	// File and Line say where the scenario was read from.
	File string
	Line int
}

// ID returns the scenario name.
func (s Scenario) ID() string { return s.Name }

// Args returns pg_basebackup's options for the scenario (without -D, the
// connection and the status file options: StatusArgs).
func (s Scenario) Args() []string {
	args := []string{"--format=" + s.Format, "--wal-method=" + s.WALMethod, "--checkpoint=fast", "--verbose"}
	if s.Compression != "" && s.Compression != "none" {
		args = append(args, "--compress="+s.Compression)
	}
	if !s.Manifest {
		args = append(args, "--no-manifest")
	}
	if !s.Sync {
		args = append(args, "--no-sync")
	}
	if s.NoClean {
		args = append(args, "--no-clean")
	}
	if s.MaxRate != "" {
		args = append(args, "--max-rate="+s.MaxRate)
	}
	if s.Progress {
		args = append(args, "--progress")
	}
	return args
}

// DefaultUpdateInterval is the patch's UPDATE INTERVAL, in seconds, when
// --status-file-refresh is not given.
const DefaultUpdateInterval = 5

// UpdateInterval is the interval at which a run of the scenario rewrites
// its status file while data arrives.
func (s Scenario) UpdateInterval() time.Duration {
	if s.StatusInterval > 0 {
		return time.Duration(s.StatusInterval) * time.Second
	}
	return DefaultUpdateInterval * time.Second
}

// StatusArgs returns the options that make pg_basebackup write its status
// file at path (for builds that write one).
func (s Scenario) StatusArgs(path string) []string {
	args := []string{"--status-file=" + path}
	if s.StatusInterval > 0 {
		args = append(args, fmt.Sprintf("--status-file-refresh=%d", s.StatusInterval))
	}
	return args
}

// Synced says whether a completed run of the scenario has synced every
// file of the backup, so that its status must say DURABLE: yes, and if
// not, why not. A file of mode 0400 in a plain backup is synced too: the
// sync opens a file it cannot open for writing read-only.
func (s Scenario) Synced() (bool, string) {
	switch {
	case !s.Sync:
		return false, "--no-sync"
	case s.Stdout:
		return false, "-D -: nothing written to standard output is synced"
	}
	return true, ""
}

// Error is a validation error at a place in a scenario file.
type Error struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Key, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Files lists the scenario files of paths: a file as given, a directory's
// *.json files in name order; a directory without any is an error. what
// names the scenarios in errors.
func Files(what string, paths ...string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.json"))
		if err != nil {
			return nil, fmt.Errorf("%s in %s: %w", what, p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: no *.json files in %s", what, p)
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	return files, nil
}

// LoadPaths loads scenarios from files and directories (every *.json in a
// directory, in name order). Names must be unique across all of them.
func LoadPaths(paths ...string) ([]Scenario, error) {
	files, err := Files("scenarios", paths...)
	if err != nil {
		return nil, err
	}
	var all []Scenario
	seen := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("scenarios: %w", err)
		}
		s, err := Parse(f, data)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[s.Name]; ok {
			return nil, &Error{File: f, Line: s.Line, Key: "name", Err: fmt.Errorf("scenario %q is also defined in %s", s.Name, prev)}
		}
		seen[s.Name] = f
		all = append(all, s)
	}
	return all, nil
}

// Defaults returns a scenario with every default set: plain format, WAL
// streamed, manifest and sync on, the kill plan, 10 trials, scale 1.
func Defaults() Scenario {
	return Scenario{
		Format: "plain", WALMethod: "stream", Compression: "none", Manifest: true, Sync: true,
		Faults: []string{PlanKill}, Trials: 10, Scale: 1, Clients: 2, OracleSample: 0.25,
	}
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	maxRateRE = regexp.MustCompile(`^[1-9][0-9]*[kM]?$`)
	compRE    = regexp.MustCompile(`^(none|((client|server)-)?(gzip|lz4|zstd)(:[0-9a-z=,]+)?)$`)
)

// Parse reads one scenario, a JSON object, from data (file names the
// source in errors). Unknown keys, duplicate keys, values of the wrong
// type or out of range, and impossible combinations are errors with the
// file and line.
func Parse(file string, data []byte) (Scenario, error) {
	s := Defaults()
	s.File = file
	s.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	lineAt := func(off int64) int {
		if off > int64(len(data)) {
			off = int64(len(data))
		}
		return 1 + bytes.Count(data[:off], []byte("\n"))
	}
	errAt := func(off int64, key string, err error) error {
		return &Error{File: file, Line: lineAt(off), Key: key, Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return s, errAt(dec.InputOffset(), "", fmt.Errorf("not a JSON object: %w", err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return s, errAt(dec.InputOffset(), "", errors.New("a scenario file holds one JSON object"))
	}
	s.Line = lineAt(dec.InputOffset())
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return s, errAt(dec.InputOffset(), "", err)
		}
		key, _ := tok.(string)
		off := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return s, errAt(off, key, fmt.Errorf("bad value: %w", err))
		}
		if seen[key] {
			return s, errAt(off, key, errors.New("duplicate key"))
		}
		seen[key] = true
		if err := s.set(key, raw); err != nil {
			return s, errAt(off, key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return s, errAt(dec.InputOffset(), "", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return s, errAt(dec.InputOffset(), "", errors.New("trailing data after the scenario object"))
	}
	if err := s.Check(); err != nil {
		return s, &Error{File: file, Line: s.Line, Err: err}
	}
	return s, nil
}

// set assigns one key. It is long because it is the scenario format's one
// list of keys, a case each with its type and range, which Keys mirrors.
func (s *Scenario) set(key string, raw json.RawMessage) error {
	str := func(dst *string, allowed ...string) error {
		var v string
		if err := strict(raw, &v); err != nil {
			return err
		}
		if len(allowed) > 0 && !contains(allowed, v) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
		}
		*dst = v
		return nil
	}
	intIn := func(dst *int, lo, hi int) error {
		var v int
		if err := strict(raw, &v); err != nil {
			return err
		}
		if v < lo || v > hi {
			return fmt.Errorf("%d is out of range %d-%d", v, lo, hi)
		}
		*dst = v
		return nil
	}
	switch key {
	case "name":
		if err := str(&s.Name); err != nil {
			return err
		}
		if !nameRE.MatchString(s.Name) {
			return fmt.Errorf("%q: names are lower case letters, digits, '-', '_', '.'", s.Name)
		}
	case "description":
		return str(&s.Description)
	case "format":
		return str(&s.Format, "plain", "tar")
	case "wal_method":
		return str(&s.WALMethod, "stream", "fetch", "none")
	case "compression":
		if err := str(&s.Compression); err != nil {
			return err
		}
		if !compRE.MatchString(s.Compression) {
			return fmt.Errorf("%q is not a compression: none, or [client-|server-]gzip|lz4|zstd[:level]", s.Compression)
		}
	case "tablespaces":
		return intIn(&s.Tablespaces, 0, 4)
	case "manifest":
		return strict(raw, &s.Manifest)
	case "sync":
		return strict(raw, &s.Sync)
	case "no_clean":
		return strict(raw, &s.NoClean)
	case "max_rate":
		if err := str(&s.MaxRate); err != nil {
			return err
		}
		if s.MaxRate != "" && !maxRateRE.MatchString(s.MaxRate) {
			return fmt.Errorf("%q is not a rate like 32768, 500k or 20M", s.MaxRate)
		}
	case "faults":
		var v []string
		if err := strict(raw, &v); err != nil {
			return err
		}
		if len(v) == 0 {
			return errors.New("at least one fault plan is needed")
		}
		for _, p := range v {
			if !contains(Plans(), p) {
				return fmt.Errorf("unknown fault plan %q: plans are %s", p, strings.Join(Plans(), ", "))
			}
		}
		s.Faults = v
	case "trials":
		return intIn(&s.Trials, 1, 100000)
	case "budget":
		var v string
		if err := strict(raw, &v); err != nil {
			return err
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration like 90s or 5m", v)
		}
		s.Budget = d
	case "scale":
		return intIn(&s.Scale, 1, 1000)
	case "clients":
		return intIn(&s.Clients, 0, 32)
	case "oracle_sample":
		var v float64
		if err := strict(raw, &v); err != nil {
			return err
		}
		if v < 0 || v > 1 {
			return fmt.Errorf("%v is out of range 0-1", v)
		}
		s.OracleSample = v
	case "stale_status":
		return strict(raw, &s.StaleStatus)
	case "waldir":
		return strict(raw, &s.WALDir)
	case "stdout":
		return strict(raw, &s.Stdout)
	case "readonly_file":
		return strict(raw, &s.ReadOnlyFile)
	case "status_interval":
		return intIn(&s.StatusInterval, 1, 60)
	case "progress":
		return strict(raw, &s.Progress)
	case "seed":
		var v int64
		if err := strict(raw, &v); err != nil {
			return err
		}
		s.Seed = v
	default:
		return fmt.Errorf("unknown key; known keys are %s", strings.Join(Keys(), ", "))
	}
	return nil
}

// Keys lists the keys a scenario file may have.
func Keys() []string {
	return []string{"name", "description", "format", "wal_method", "compression", "tablespaces", "manifest",
		"sync", "no_clean", "max_rate", "faults", "trials", "budget", "scale", "clients", "oracle_sample", "seed", "stale_status", "waldir",
		"stdout", "readonly_file", "status_interval", "progress"}
}

// Check rejects impossible combinations: what pg_basebackup's options
// allow together, and what each fault plan needs of them (the plans
// themselves check only the machine, fault.Fault.Available). Parse calls
// it; so does a campaign, for scenarios made in code.
func (s *Scenario) Check() error {
	if s.Compression != "none" && s.Format != "tar" && !strings.HasPrefix(s.Compression, "server-") {
		return fmt.Errorf("compression %q needs format tar (plain format takes only server- compression)", s.Compression)
	}
	for _, p := range s.Faults {
		if p == PlanKillWALChild && s.WALMethod != "stream" {
			return fmt.Errorf("fault plan %s needs wal_method stream, not %s", p, s.WALMethod)
		}
		if IsDiskPlan(p) && !s.Sync && !NoSyncPlan(p) {
			return fmt.Errorf("fault plan %s needs sync on: without it nothing of the backup is ever durable (with sync off, only %s)", p, strings.Join(noSyncPlans, ", "))
		}
		if IsDiskPlan(p) && s.WALDir {
			return fmt.Errorf("fault plan %s does not put a --waldir on the power-loss layer: use waldir with process and server plans", p)
		}
	}
	if s.WALDir && s.Format != "plain" {
		return fmt.Errorf("waldir needs format plain (pg_basebackup takes --waldir only then)")
	}
	if s.Stdout {
		switch {
		case s.Format != "tar":
			return fmt.Errorf("stdout needs format tar (pg_basebackup writes only a tar archive to standard output)")
		case s.WALMethod == "stream":
			return fmt.Errorf("stdout needs wal_method fetch or none (pg_basebackup cannot stream WAL to standard output)")
		case s.Tablespaces > 0:
			return fmt.Errorf("stdout needs tablespaces 0 (pg_basebackup writes a single tablespace to standard output)")
		case s.Compression != "none":
			return fmt.Errorf("stdout needs compression none")
		case s.StaleStatus:
			return fmt.Errorf("stdout does not go with stale_status (no directory of the backup to find it in)")
		}
	}
	for _, p := range s.Faults {
		if IsDiskPlan(p) && (s.Stdout || s.ReadOnlyFile) {
			return fmt.Errorf("fault plan %s does not go with stdout or readonly_file: a backup not synced whole cannot survive a power loss", p)
		}
		if p == PlanStatusDirReadOnly && s.StatusInterval == 0 {
			return fmt.Errorf("fault plan %s needs status_interval, so that progress rewrites happen while data arrives", p)
		}
	}
	return nil
}

// strict decodes one JSON value into v, rejecting a value of another type
// (including numbers with a fraction for integers).
func strict(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("bad value %s: want %s", strings.TrimSpace(string(raw)), te.Type)
		}
		return fmt.Errorf("bad value %s: %w", strings.TrimSpace(string(raw)), err)
	}
	if string(bytes.TrimSpace(raw)) == "null" {
		return errors.New("null is not a value here")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
