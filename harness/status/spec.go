package status

// The keys of format version 1, in file order.
const (
	keyVersion        = "BACKUP STATUS FORMAT"
	keyStatus         = "STATUS"
	keyStartTime      = "START TIME"
	keyPID            = "PID"
	keyHost           = "HOST"
	keyBootID         = "BOOT ID"
	keyPIDNamespace   = "PID NAMESPACE"
	keyStartTicks     = "START TICKS"
	keyLabel          = "LABEL"
	keyProgramVersion = "PROGRAM VERSION"
	keyFormat         = "FORMAT"
	keyTarget         = "TARGET"
	keyWALMethod      = "WAL METHOD"
	keySync           = "SYNC"
	keyUpdateInterval = "UPDATE INTERVAL"
	keyDirectory      = "DIRECTORY"
	keyStartLSN       = "START WAL LOCATION"
	keyTimeline       = "START TIMELINE"
	keySystemID       = "SYSTEM IDENTIFIER"
	keyPhase          = "PHASE"
	keyUpdateTime     = "UPDATE TIME"
	keyBytesReceived  = "BYTES RECEIVED"
	keyBytesTotal     = "BYTES TOTAL"
	keyEndLSN         = "END WAL LOCATION"
	keyEndTime        = "END TIME"
	keyDurable        = "DURABLE"
	keyReason         = "REASON"
	keyChecksum       = "CHECKSUM"
)

// presence says whether a key must, may or must not appear.
type presence int

const (
	forbidden presence = iota
	optional
	required
)

func (p presence) String() string {
	return [...]string{"not allowed", "optional", "required"}[p]
}

// keySpec describes one key of a format version.
type keySpec struct {
	key string
	// need says, given the STATUS (always known before any key that
	// depends on it), whether the key must appear.
	need func(State) presence
	// set checks that value is in its canonical form and stores it.
	set func(s *Status, value string) error
}

// formatSpec is everything Parse knows about one format version: its keys in
// file order (the CHECKSUM line is not among them; it frames every version)
// and the rules that involve more than one key.
type formatSpec struct {
	version int
	keys    []keySpec
	// repeated are the keys that may appear on several lines in a row.
	repeated map[string]bool
	// check runs after every line was parsed; at holds the line number of
	// the first line of each key present.
	check func(s *Status, at map[string]int) error
}

// specFor returns the key table of a format version.
func specFor(version int) (*formatSpec, bool) {
	switch version {
	case 1:
		return specV1(), true
	}
	return nil, false
}

func always(State) presence { return required }
func maybe(State) presence  { return optional }

// startNeed is the need of the three start lines: optional in every
// state here, since a minimal file (see checkV1) has none; checkV1 requires
// them in a completed file that describes the run, since a completed
// backup was started.
func startNeed(State) presence { return optional }

// inProgress is the need of the progress lines: optional while in progress
// (checkV1 requires them when UPDATE INTERVAL is there), never otherwise.
func inProgress(s State) presence {
	if s == StateInProgress {
		return optional
	}
	return forbidden
}

// only returns a need that requires the key in the given states and forbids
// it in all others.
func only(states ...State) func(State) presence {
	return func(s State) presence {
		for _, t := range states {
			if s == t {
				return required
			}
		}
		return forbidden
	}
}

// specV1 is format version 1, as written by write_backup_status in
// patches/pg18/0005. It is long because it is the format's one table: a
// key per entry, in file order, each with when it must appear and how its
// value is read; split, the order of the keys would be lost to the reader.
func specV1() *formatSpec {
	return &formatSpec{
		version: 1,
		keys: []keySpec{
			{keyStatus, always, func(s *Status, v string) error {
				st, ok := parseState(v)
				if !ok {
					return detailf("unknown status %s (want in progress, completed or failed)", quote(v))
				}
				s.State = st
				return nil
			}},
			{keyStartTime, always, func(s *Status, v string) (err error) {
				s.StartTime, err = parseTime(v)
				return err
			}},
			{keyPID, always, func(s *Status, v string) error {
				n, err := parseDecimal(v, 31)
				if err != nil || n == 0 {
					return detailf("%s is not a process id", quote(v))
				}
				s.PID = int(n)
				return nil
			}},
			{keyHost, always, text(func(s *Status) *string { return &s.Host }, true)},
			// Where the writer can tell them (Linux): what its PID
			// is relative to.
			{keyBootID, maybe, text(func(s *Status) *string { return &s.BootID }, false)},
			{keyPIDNamespace, maybe, func(s *Status, v string) error {
				if _, err := parsePIDNamespace(v); err != nil {
					return detailf("%s is not a PID namespace (pid:[INODE])", quote(v))
				}
				s.PIDNamespace = v
				return nil
			}},
			// Patch 0004, on Linux: when the writer started, in clock
			// ticks since boot (field 22 of /proc/self/stat), which a
			// wall clock set forward or back does not move.
			{keyStartTicks, maybe, func(s *Status, v string) error {
				n, err := parseDecimal(v, 64)
				if err != nil || n == 0 {
					return detailf("%s is not a start time in clock ticks since boot", quote(v))
				}
				s.StartTicks = n
				return nil
			}},
			// The lines that describe the run: all of them (with
			// FORMAT or TARGET) or, in a minimal file, none.
			{keyLabel, maybe, text(func(s *Status) *string { return &s.Label }, true)},
			{keyProgramVersion, maybe, text(func(s *Status) *string { return &s.ProgramVersion }, false)},
			{keyFormat, maybe, oneOf(func(s *Status) *string { return &s.Format }, "plain", "tar")},
			{keyTarget, maybe, text(func(s *Status) *string { return &s.Target }, false)},
			{keyWALMethod, maybe, oneOf(func(s *Status) *string { return &s.WALMethod }, "stream", "fetch", "none")},
			{keySync, always, flag(func(s *Status) *bool { return &s.Sync }, "on", "off")},
			// Patch 0003: progress and directories. Optional as a
			// group (see checkV1), so that files of the first version
			// of the patch still read.
			{keyUpdateInterval, maybe, func(s *Status, v string) error {
				n, err := parseDecimal(v, 31)
				if err != nil {
					return detailf("%s is not a number of seconds", quote(v))
				}
				s.Progress, s.UpdateInterval = true, int(n)
				return nil
			}},
			{keyDirectory, maybe, func(s *Status, v string) error {
				d, err := parseDirectory(v)
				s.Directories = append(s.Directories, d)
				return err
			}},
			{keyStartLSN, startNeed, func(s *Status, v string) (err error) {
				s.StartLSN, err = s.parseLSN(v)
				s.Started = true
				return err
			}},
			{keyTimeline, startNeed, func(s *Status, v string) error {
				n, err := parseDecimal(v, 32)
				if err != nil || n == 0 {
					return detailf("%s is not a timeline", quote(v))
				}
				s.Timeline = uint32(n)
				return nil
			}},
			{keySystemID, startNeed, func(s *Status, v string) error {
				n, err := parseDecimal(v, 64)
				if err != nil {
					return detailf("%s is not a system identifier", quote(v))
				}
				s.SystemID = n
				return nil
			}},
			{keyPhase, inProgress, func(s *Status, v string) error {
				if Phase(v).Order() == 0 {
					return detailf("unknown phase %s (want one of %q)", quote(v), phases())
				}
				s.Phase = Phase(v)
				return nil
			}},
			{keyUpdateTime, inProgress, func(s *Status, v string) (err error) {
				s.UpdateTime, err = parseTime(v)
				return err
			}},
			{keyBytesReceived, inProgress, func(s *Status, v string) (err error) {
				s.BytesReceived, err = parseDecimal(v, 64)
				if err != nil {
					return detailf("%s is not a number of bytes", quote(v))
				}
				return nil
			}},
			{keyBytesTotal, inProgress, func(s *Status, v string) (err error) {
				s.BytesTotal, err = parseDecimal(v, 64)
				if err != nil || s.BytesTotal == 0 {
					return detailf("%s is not a positive number of bytes", quote(v))
				}
				return nil
			}},
			{keyEndLSN, only(StateCompleted), func(s *Status, v string) (err error) {
				s.EndLSN, err = s.parseLSN(v)
				return err
			}},
			{keyEndTime, only(StateCompleted, StateFailed), func(s *Status, v string) (err error) {
				s.EndTime, err = parseTime(v)
				return err
			}},
			{keyDurable, only(StateCompleted), flag(func(s *Status) *bool { return &s.Durable }, "yes", "no")},
			{keyReason, only(StateFailed), text(func(s *Status) *string { return &s.Reason }, false)},
		},
		repeated: map[string]bool{keyDirectory: true},
		check:    checkV1,
	}
}

// checkV1 holds the rules of version 1 that involve more than one key. The
// start lines are optional while in progress or failed (the server may not
// have started the backup yet), but all three or none.
//
// A file either describes the run (LABEL, PROGRAM VERSION, FORMAT or
// TARGET, WAL METHOD, and when completed the start lines, as the first
// writer, patches/pg18, always writes them) or is minimal (none of those
// lines, as the master form of the patch, patches/threads/status-file,
// writes: STATUS, the times, PID, HOST, SYNC and, when completed, END WAL
// LOCATION and DURABLE). What a minimal file does not say is not known;
// the verdicts need none of it.
func checkV1(s *Status, at map[string]int) error {
	_, hasFormat := at[keyFormat]
	_, hasTarget := at[keyTarget]
	described := 0
	for _, k := range []string{keyLabel, keyProgramVersion, keyWALMethod} {
		if _, ok := at[k]; ok {
			described++
		}
	}
	switch {
	case hasFormat && hasTarget:
		return lineErrorf(at[keyTarget], "both FORMAT (line %d) and TARGET", at[keyFormat])
	case described == 0 && (hasFormat || hasTarget):
		return lineErrorf(max(at[keyFormat], at[keyTarget]), "FORMAT or TARGET in a file without LABEL, PROGRAM VERSION and WAL METHOD")
	case described > 0 && described < 3:
		for _, k := range []string{keyLabel, keyProgramVersion, keyWALMethod} {
			if _, ok := at[k]; !ok {
				return lineErrorf(missingAt(specV1(), at, k, lastLine(at)+1), "%s missing: LABEL, PROGRAM VERSION, FORMAT or TARGET and WAL METHOD come together", k)
			}
		}
	case described > 0 && !hasFormat && !hasTarget:
		return lineErrorf(at[keyWALMethod], "neither FORMAT nor TARGET before WAL METHOD")
	}
	if described > 0 && s.State == StateCompleted {
		if _, ok := at[keyStartLSN]; !ok {
			return lineErrorf(missingAt(specV1(), at, keyStartLSN, lastLine(at)+1), "%s missing (required when completed)", keyStartLSN)
		}
	}
	// The lines of patch 0003 come with UPDATE INTERVAL, and while in
	// progress, PHASE, UPDATE TIME and BYTES RECEIVED always do.
	for _, k := range []string{keyDirectory, keyPhase, keyUpdateTime, keyBytesReceived, keyBytesTotal} {
		if line, ok := at[k]; ok && !s.Progress {
			return lineErrorf(line, "%s without UPDATE INTERVAL", k)
		}
	}
	if s.Progress && s.State == StateInProgress {
		for _, k := range []string{keyPhase, keyUpdateTime, keyBytesReceived} {
			if _, ok := at[k]; !ok {
				return lineErrorf(lastLine(at)+1, "%s missing (required when in progress with UPDATE INTERVAL)", k)
			}
		}
	}
	start := []string{keyStartLSN, keyTimeline, keySystemID}
	n := 0
	for _, k := range start {
		if _, ok := at[k]; ok {
			n++
		}
	}
	if n != 0 && n != len(start) {
		for _, k := range start {
			if _, ok := at[k]; !ok {
				return lineErrorf(lastLine(at), "%s missing: START WAL LOCATION, START TIMELINE and SYSTEM IDENTIFIER come together", k)
			}
		}
	}
	if s.State == StateCompleted {
		if s.Started && s.EndLSN < s.StartLSN {
			return lineErrorf(at[keyEndLSN], "END WAL LOCATION %s is before START WAL LOCATION %s", shown(s.EndLSN.String()), shown(s.StartLSN.String()))
		}
		// DURABLE: no with SYNC: on is a backup pg_basebackup could not
		// sync all of (-D -, --target, a file it could not open for the
		// sync); DURABLE: yes without syncing is impossible.
		if s.Durable && !s.Sync {
			return lineErrorf(at[keyDurable], "DURABLE: %s contradicts SYNC: %s", shown(yesNo(s.Durable)), shown(onOff(s.Sync)))
		}
	}
	return nil
}

// lastLine is the highest line number in at.
func lastLine(at map[string]int) int {
	m := 0
	for _, l := range at {
		m = max(m, l)
	}
	return m
}

// text stores a free-text value; control characters were rejected already.
func text(field func(*Status) *string, mayBeEmpty bool) func(*Status, string) error {
	return func(s *Status, v string) error {
		if v == "" && !mayBeEmpty {
			return detailf("empty value")
		}
		*field(s) = v
		return nil
	}
}

// oneOf stores a value that must be one of values.
func oneOf(field func(*Status) *string, values ...string) func(*Status, string) error {
	return func(s *Status, v string) error {
		for _, w := range values {
			if v == w {
				*field(s) = v
				return nil
			}
		}
		return detailf("%s is not one of %q", quote(v), values)
	}
}

// flag stores a boolean written as yes or no.
func flag(field func(*Status) *bool, yes, no string) func(*Status, string) error {
	return func(s *Status, v string) error {
		switch v {
		case yes:
			*field(s) = true
		case no:
			*field(s) = false
		default:
			return detailf("%s is neither %s nor %s", quote(v), yes, no)
		}
		return nil
	}
}

// parseVersion reads the value of the first line.
func parseVersion(v string) (int, error) {
	n, err := parseDecimal(v, 31)
	if err != nil {
		return 0, detailf("%s is not a format version", quote(v))
	}
	return int(n), nil
}
