package status

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// bitwiseCRC32C is CRC-32C computed bit by bit, as the TAP test does,
// independently of hash/crc32.
func bitwiseCRC32C(data []byte) uint32 {
	crc := ^uint32(0)
	for _, b := range data {
		crc ^= uint32(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82F63B78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// framed matches a whole file of "KEY: value" lines ending in a checksum
// line, with nothing else around it.
var framed = regexp.MustCompile(`\A(?:[A-Z][A-Z ]*: [^\x00-\x1f\x7f]*\n)+CHECKSUM: ([0-9A-F]{8})\n\z`)

// unicodeControl matches the control characters beyond ASCII that no
// file may hold: C1, the bidirectional controls, the line and paragraph
// separators.
var unicodeControl = regexp.MustCompile(`[\x{80}-\x{9f}\x{61c}\x{200e}\x{200f}\x{202a}-\x{202e}\x{2066}-\x{2069}\x{2028}\x{2029}]`)

// checkAccepted fails t unless data, which Parse accepted as s, is
// byte for byte a well-formed file with a correct checksum.
func checkAccepted(t *testing.T, data []byte, s *Status) {
	t.Helper()
	m := framed.FindSubmatch(data)
	if m == nil {
		t.Fatalf("accepted (%v) a file that is not framed as KEY: value lines and a checksum line:\n%q", s.State, data)
	}
	body := data[:len(data)-len("CHECKSUM: 12345678\n")]
	if want := fmt.Sprintf("%08X", bitwiseCRC32C(body)); string(m[1]) != want {
		t.Fatalf("accepted (%v) a file whose checksum %s is not %s:\n%q", s.State, m[1], want, data)
	}
	// The lines of unknown keys aside, it is what the writer writes.
	known := data
	if len(s.UnknownKeys) > 0 {
		var kept []string
		for _, l := range bodyLines(data) {
			k, _, _ := strings.Cut(l, ": ")
			switch {
			case !validKey(k):
				t.Fatalf("accepted (%v) a line whose key %q is not a key:\n%q", s.State, k, data)
			case indexKey(specV1(), k) >= 0 || k == keyVersion || k == keyChecksum:
				if slices.Contains(s.UnknownKeys, k) {
					t.Fatalf("the known key %q is among the unknown keys %q", k, s.UnknownKeys)
				}
				kept = append(kept, l)
			case !slices.Contains(s.UnknownKeys, k):
				t.Fatalf("the unknown key %q is not among the unknown keys %q", k, s.UnknownKeys)
			}
		}
		known = join(kept)
	}
	if loc := unicodeControl.FindIndex(data); loc != nil {
		t.Fatalf("accepted (%v) a file with the control character %q at offset %d:\n%q", s.State, data[loc[0]:loc[1]], loc[0], data)
	}
	if again := s.Encode(); !bytes.Equal(again, known) {
		t.Fatalf("accepted (%v) a file whose known lines do not encode back to themselves:\n%q\nencodes as\n%q", s.State, known, again)
	}
	// A minimal file (not Described) does not record the start.
	if s.State == StateCompleted && ((s.Described() && !s.Started) || (s.Started && s.EndLSN < s.StartLSN) || (s.Durable && !s.Sync)) {
		t.Fatalf("accepted an inconsistent completed file:\n%q", data)
	}
}

// FuzzParse holds the reader's promise: nothing that is not byte for byte
// a well-formed file with a correct checksum parses, so nothing else parses
// as completed; and whatever parses encodes back to the same bytes, once
// the lines of unknown keys (which must still be well-formed) are left
// out. The
// seed corpus holds every prefix of real files, which must all be rejected.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/real/*/*")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files in testdata/real: %v", err)
	}
	// Every prefix of a few files (TestTruncated cuts more of them at
	// every byte without fuzzing); the others whole. More prefixes only
	// make gathering the baseline coverage take longer.
	prefixes := map[string]bool{
		"testdata/real/0002/completed_plain":                   true,
		"testdata/real/0003/completed_plain_tablespace_waldir": true,
		"testdata/real/0003/in_progress_killed":                true,
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if !prefixes[filepath.ToSlash(path)] {
			f.Add(data)
			continue
		}
		for n := 0; n <= len(data); n++ {
			f.Add(data[:n])
		}
	}
	for _, s := range []*Status{completedStatus(), inProgressStatus(false), failedStatus(true),
		withProgress(completedStatus()), withProgress(inProgressStatus(true)), withProgress(failedStatus(false))} {
		f.Add(s.Encode())
		// With a line of a key this reader does not know.
		lines := bodyLines(s.Encode())
		f.Add(join(append(lines[:3:3], append([]string{"NEW KEY: value"}, lines[3:]...)...)))
	}
	// Unicode control characters in a free-text value and in a line of
	// an unknown key, each sealed with a correct checksum: all refused.
	for _, c := range []string{"\u0085", "\u009b", "\u202e", "\u2066", "\u2069", "\u200e", "\u200f", "\u2028"} {
		s := failedStatus(true)
		s.Reason = "error while " + c + "receiving"
		f.Add(s.Encode())
		s = completedStatus()
		s.Label = "nightly" + c
		f.Add(s.Encode())
		lines := bodyLines(completedStatus().Encode())
		f.Add(join(append(lines[:3:3], append([]string{"NEW KEY: " + c}, lines[3:]...)...)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// As is: random bytes almost never carry a correct checksum, so
		// this mostly exercises the framing.
		parseAndCheck(t, data)
		// Sealed: data as the body, with a correct checksum line
		// appended, as a writer that computed the checksum of garbage
		// would produce. This exercises the line grammar.
		parseAndCheck(t, seal(string(data)))
	})
}

// parseAndCheck parses data and checks the property on what it accepts.
func parseAndCheck(t *testing.T, data []byte) {
	t.Helper()
	s, err := Parse(data)
	if err != nil {
		if s != nil {
			t.Fatalf("Parse returned a status and an error %v", err)
		}
		if _, ok := err.(*ParseError); !ok {
			t.Fatalf("error %T %v, want *ParseError", err, err)
		}
		return
	}
	checkAccepted(t, data, s)
}

// TestPrefixesOfCompleted is the seed property without fuzzing: every
// proper prefix of a completed file is rejected.
func TestPrefixesOfCompleted(t *testing.T) {
	data := completedStatus().Encode()
	for n := range len(data) {
		if s, err := Parse(data[:n]); err == nil {
			t.Fatalf("prefix of %d bytes parses as %v", n, s.State)
		}
	}
	s, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, data, s)
}
