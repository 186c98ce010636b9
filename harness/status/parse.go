package status

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxSize is the largest status file Parse and ReadFile accept, in
// bytes. A real file is well under 2 KiB (a label is at most 1023 bytes).
const MaxSize = 64 << 10

// ParseError is a status file that is not well-formed: it says what is
// wrong, and where.
type ParseError struct {
	// Path is the file, when known.
	Path string
	// Line is the 1-based line number, 0 for the file as a whole.
	Line int
	// Msg says what is wrong.
	Msg string
	// Withheld says Msg leaves out what the file holds (see Withhold).
	Withheld bool
	// quiet is Msg without what the file holds.
	quiet string
}

// Withhold makes e say what is wrong, and on which line, without showing
// anything the file holds: no value, byte or checksum of it. A reader
// calls it before showing e to someone who could not read the file
// (ReadFile does, unless the file is the caller's own).
func (e *ParseError) Withhold() {
	if e.Withheld {
		return
	}
	e.Msg, e.Withheld = e.quiet, true
	if e.Msg == "" {
		e.Msg = "not a valid status file (what is wrong is not shown)"
	}
}

// Error formats e as "path:line: msg".
func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// lineErrorf is the ParseError of line, formatted by detailf: its shown
// arguments and the details among them are left out when it is withheld.
func lineErrorf(line int, format string, args ...any) *ParseError {
	d := detailf(format, args...)
	return &ParseError{Line: line, Msg: d.full, quiet: d.quiet}
}

// Parse parses the contents of a status file. It accepts exactly what
// pg_basebackup writes, and lines of keys it does not know: see the
// package documentation. Any error is a *ParseError. A Status with State
// StateCompleted is returned only for a file that ends in a correct
// checksum line and whose every line of a known key is in place and in
// canonical form; the keys of the other lines are in Status.UnknownKeys.
func Parse(data []byte) (*Status, error) {
	lines, err := splitText(data)
	if err != nil {
		return nil, err
	}
	spec, s, err := frame(data, lines)
	if err != nil {
		return nil, err
	}
	last := len(lines)
	at, err := parseBody(spec, s, lines[1:last-1])
	if err != nil {
		return nil, err
	}
	// Every key must be where its state wants it.
	for _, k := range spec.keys {
		line, present := at[k.key]
		switch need := k.need(s.State); {
		case need == required && !present:
			return nil, lineErrorf(missingAt(spec, at, k.key, last), "%s missing (required when %s)", k.key, stateWord(s.State))
		case need == forbidden && present:
			return nil, lineErrorf(line, "%s not allowed when %s", k.key, stateWord(s.State))
		}
	}
	if err := spec.check(s, at); err != nil {
		return nil, err
	}
	return s, nil
}

// splitText checks that data is a text file of whole lines, not too large,
// without control characters, and returns its lines.
func splitText(data []byte) ([]string, error) {
	if len(data) > MaxSize {
		return nil, lineErrorf(0, "file is %d bytes, more than the limit of %d", len(data), MaxSize)
	}
	if len(data) == 0 {
		return nil, lineErrorf(0, "file is empty")
	}
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return nil, lineErrorf(lineOf(data, i), "byte %s at offset %d is not UTF-8", shownf("0x%02X", data[i]), i)
	}
	if data[len(data)-1] != '\n' {
		return nil, lineErrorf(lineOf(data, len(data)-1),
			"last line does not end in a newline: the file was cut short (no CHECKSUM line)")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	for i, l := range lines {
		if j := strings.IndexFunc(l, IsControl); j >= 0 {
			r, _ := utf8.DecodeRuneInString(l[j:])
			return nil, lineErrorf(i+1, "control character %s in column %d", shown(describeControl(r)), j+1)
		}
	}
	return lines, nil
}

// frame reads the lines that frame the file: the first says the format
// version, and so how to read the rest; the last is the checksum of
// everything before it, without which the file was cut short. It returns
// the version's spec and a Status with the version and checksum.
func frame(data []byte, lines []string) (*formatSpec, *Status, error) {
	key, value, err := splitLine(lines[0])
	if err != nil {
		return nil, nil, lineErrorf(1, "%v", err)
	}
	if key != keyVersion {
		return nil, nil, lineErrorf(1, "first line is %s, want %q", quote(key), keyVersion+": N")
	}
	version, err := parseVersion(value)
	if err != nil {
		return nil, nil, lineErrorf(1, "%v", err)
	}
	spec, ok := specFor(version)
	if !ok {
		return nil, nil, lineErrorf(1, "unsupported format version %s (this reader knows %d)", shownf("%d", version), FormatVersion)
	}
	last := len(lines)
	sum, err := parseChecksumLine(lines[last-1])
	if err != nil || last == 1 {
		return nil, nil, lineErrorf(last, "file does not end with a CHECKSUM line: it was cut short or damaged")
	}
	body := data[:len(data)-len(lines[last-1])-1]
	if got := crc32c(body); got != sum {
		return nil, nil, lineErrorf(last, "checksum mismatch: the file says %s, its contents have %s", shownf("%08X", sum), shownf("%08X", got))
	}
	return spec, &Status{Version: version, Checksum: sum}, nil
}

// parseBody sets s from the lines between the first and the last (line 2
// on), each key in its place, and returns the line of each key's first
// line.
func parseBody(spec *formatSpec, s *Status, body []string) (map[string]int, error) {
	at := map[string]int{keyVersion: 1}
	next := 0 // index in spec.keys of the next key allowed
	for i, l := range body {
		n := i + 2
		key, value, err := splitLine(l)
		if err != nil {
			return nil, lineErrorf(n, "%v", err)
		}
		j := indexKey(spec, key)
		switch {
		case key == keyChecksum:
			return nil, lineErrorf(n, "CHECKSUM line before the end of the file")
		case key == keyVersion:
			return nil, lineErrorf(n, "duplicate %s (first on line 1)", key)
		case j < 0:
			// A key a later writer added without changing the
			// version: ignored, but recorded.
			if !slices.Contains(s.UnknownKeys, key) {
				s.UnknownKeys = append(s.UnknownKeys, key)
			}
			continue
		case at[key] != 0 && spec.repeated[key] && j == next-1:
			// another line of a repeated key, right after the last
		case at[key] != 0 && !spec.repeated[key]:
			return nil, lineErrorf(n, "duplicate %s (first on line %d)", key, at[key])
		case j < next:
			return nil, lineErrorf(n, "%s out of place: it comes before %s", key, previousKey(spec, at, j))
		}
		if j > 0 && s.State == StateUnknown {
			return nil, lineErrorf(n, "%s before STATUS", key)
		}
		if err := spec.keys[j].set(s, value); err != nil {
			return nil, lineErrorf(n, "%s: %v", key, err)
		}
		if at[key] == 0 {
			at[key] = n
		}
		next = j + 1
	}
	return at, nil
}

// stateWord names a state for error messages, also when STATUS is missing.
func stateWord(s State) string {
	if s == StateUnknown {
		return "STATUS is missing"
	}
	return s.String()
}

// IsControl says whether r is a control character, which no value of a
// status file may hold (Parse refuses it; a writer replaces it): C0 (the writer replaces those with '?'), DEL, C1,
// the bidirectional controls (which reorder how a terminal shows the text
// around them) and the line and paragraph separators.
func IsControl(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, 0x80 <= r && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
		return true
	}
	return r == 0x2028 || r == 0x2029
}

// describeControl names the control character r for an error message.
func describeControl(r rune) string {
	if r < utf8.RuneSelf {
		return fmt.Sprintf("0x%02X", r)
	}
	return fmt.Sprintf("U+%04X", r)
}

// splitLine splits "KEY: value".
func splitLine(l string) (key, value string, err error) {
	key, value, ok := strings.Cut(l, ": ")
	if !ok {
		if l == "" {
			return "", "", detailf("empty line")
		}
		return "", "", detailf("%s is not a KEY: value line", quote(l))
	}
	if key == "" {
		return "", "", detailf("line has no key")
	}
	if !validKey(key) {
		return "", "", detailf("%s is not a key (upper-case words A-Z separated by single spaces)", quote(key))
	}
	return key, value, nil
}

// validKey says whether key has the form of every key, known or not: words
// of the letters A to Z, separated by single spaces.
func validKey(key string) bool {
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'A' <= c && c <= 'Z':
		case c == ' ' && i > 0 && i < len(key)-1 && key[i-1] != ' ':
		default:
			return false
		}
	}
	return key != ""
}

// parseChecksumLine reads "CHECKSUM: XXXXXXXX", eight upper-case hex digits.
func parseChecksumLine(l string) (uint32, error) {
	v, ok := strings.CutPrefix(l, keyChecksum+": ")
	if !ok || len(v) != 8 {
		return 0, fmt.Errorf("not a checksum line")
	}
	var sum uint32
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case '0' <= c && c <= '9':
			sum = sum<<4 | uint32(c-'0')
		case 'A' <= c && c <= 'F':
			sum = sum<<4 | uint32(c-'A'+10)
		default:
			return 0, fmt.Errorf("not a checksum line")
		}
	}
	return sum, nil
}

func indexKey(spec *formatSpec, key string) int {
	for i, k := range spec.keys {
		if k.key == key {
			return i
		}
	}
	return -1
}

// previousKey names the key present in the file that should have come after
// the key with index j.
func previousKey(spec *formatSpec, at map[string]int, j int) string {
	for _, k := range spec.keys[j+1:] {
		if at[k.key] != 0 {
			return fmt.Sprintf("%s (line %d)", k.key, at[k.key])
		}
	}
	return "the keys before it"
}

// missingAt is the line where a missing key should have been: that of the
// next key present after it, or the checksum line.
func missingAt(spec *formatSpec, at map[string]int, key string, checksumLine int) int {
	j := indexKey(spec, key)
	for _, k := range spec.keys[j+1:] {
		if at[k.key] != 0 {
			return at[k.key]
		}
	}
	return checksumLine
}

// lineOf is the 1-based line number of the byte at offset i.
func lineOf(data []byte, i int) int { return bytes.Count(data[:i], []byte("\n")) + 1 }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
