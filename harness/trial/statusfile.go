package trial

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"strings"

	"github.com/pgbb/pgbb/harness/status"
)

// StatusFile is what a trial learns from a backup status file.
type StatusFile struct {
	// Present says the file exists.
	Present bool `json:"present"`
	// Valid says it parsed and its checksum matched.
	Valid bool `json:"valid"`
	// State is the STATUS value of a valid file.
	State string `json:"state,omitempty"`
	// Durable is the DURABLE value of a valid completed file.
	Durable string `json:"durable,omitempty"`
	// Reason is the REASON value of a valid failed file.
	Reason string `json:"reason,omitempty"`
	// Error says why the file is not valid.
	Error string `json:"error,omitempty"`
	// ClaimsCompleted says the raw text holds "STATUS: completed", valid
	// or not: an invalid file that does is a torn completion.
	ClaimsCompleted bool `json:"claims_completed,omitempty"`
	// TmpPresent says the temporary file (FILE.tmp) exists.
	TmpPresent bool `json:"tmp_present,omitempty"`
}

// StatusReader reads a status file.
type StatusReader interface {
	Read(path string) StatusFile
}

// DefaultStatusReader is the reader trials use: the project's status
// package (harness/status), the same code pgbb-status runs.
func DefaultStatusReader() StatusReader { return pkgStatusReader{} }

// LocalStatusReader is a small independent reader of the same format,
// kept as a cross-check of harness/status.
func LocalStatusReader() StatusReader { return localStatusReader{} }

// pkgStatusReader reads with harness/status.
type pkgStatusReader struct{}

func (pkgStatusReader) Read(path string) StatusFile {
	var sf StatusFile
	if _, err := os.Stat(path + ".tmp"); err == nil {
		sf.TmpPresent = true
	}
	data, rerr := os.ReadFile(path)
	if rerr != nil && os.IsNotExist(rerr) {
		return sf
	}
	sf.Present = true
	sf.ClaimsCompleted = bytes.Contains(data, []byte("\nSTATUS: completed\n"))
	st, err := status.ReadFile(path)
	if err != nil {
		sf.Error = err.Error()
		return sf
	}
	sf.Valid = true
	sf.State = st.State.String()
	if st.State == status.StateCompleted {
		sf.Durable = "no"
		if st.Durable {
			sf.Durable = "yes"
		}
	}
	sf.Reason = st.Reason
	return sf
}

// localStatusReader checks the format of the patch: "KEY: value" lines,
// BACKUP STATUS FORMAT first, CHECKSUM (CRC-32C of every preceding byte,
// 8 upper-case hex digits) last.
type localStatusReader struct{}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (localStatusReader) Read(path string) StatusFile {
	var sf StatusFile
	if _, err := os.Stat(path + ".tmp"); err == nil {
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
