package trial

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
)

// A second, independent reader of the status file format, which the
// invariant tests run beside harness/status, so that a mistake in that
// package does not hide one in the patch.

// LocalStatusReader is a small independent reader of the same format,
// kept as a cross-check of harness/status.
func LocalStatusReader() StatusReader { return localStatusReader{} }

// localStatusReader checks the format of the patch: "KEY: value" lines,
// BACKUP STATUS FORMAT first, CHECKSUM (CRC-32C of every preceding byte,
// 8 upper-case hex digits) last.
type localStatusReader struct{}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (localStatusReader) Read(path string) StatusFile {
	var sf StatusFile
	// A temporary file: path.PID.tmp of any pid, or the legacy path.tmp.
	if tmps, _ := filepath.Glob(globQuote(path) + ".*tmp"); len(tmps) > 0 {
		sf.TmpPresent = true
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !os.IsNotExist(err) {
			sf.Present = true
			sf.Error = err.Error()
		}
		return sf
	}
	sf.Present = true
	sf.ClaimsCompleted = bytes.Contains(data, []byte("\nSTATUS: completed\n"))
	fields, err := parseStatus(data)
	if err != nil {
		sf.Error = err.Error()
		return sf
	}
	sf.Valid = true
	sf.State = fields["STATUS"]
	sf.Durable = fields["DURABLE"]
	sf.Reason = fields["REASON"]
	return sf
}

// globQuote escapes the characters filepath.Match treats as special.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteRune('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// parseStatus checks a status file's framing and returns its fields.
func parseStatus(data []byte) (map[string]string, error) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("status file does not end in a newline (torn)")
	}
	body := data[:len(data)-1]
	i := bytes.LastIndexByte(body, '\n')
	if i < 0 {
		return nil, fmt.Errorf("status file has a single line")
	}
	last := string(body[i+1:])
	sum, ok := strings.CutPrefix(last, "CHECKSUM: ")
	if !ok {
		return nil, fmt.Errorf("last line is %q, not CHECKSUM", last)
	}
	want := fmt.Sprintf("%08X", crc32.Checksum(data[:i+1], castagnoli))
	if sum != want {
		return nil, fmt.Errorf("checksum %s does not match the contents (%s)", sum, want)
	}
	fields := map[string]string{}
	for n, line := range strings.Split(string(data[:i]), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not KEY: value", n+1, line)
		}
		if n == 0 && (k != "BACKUP STATUS FORMAT" || v != "1") {
			return nil, fmt.Errorf("line 1: %q, want BACKUP STATUS FORMAT: 1", line)
		}
		fields[k] = v
	}
	switch fields["STATUS"] {
	case "in progress", "completed", "failed":
	default:
		return nil, fmt.Errorf("STATUS %q is not in progress, completed or failed", fields["STATUS"])
	}
	return fields, nil
}
