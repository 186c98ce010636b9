package trial

import (
	"bytes"
	"os"

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
	// TmpPresent says a temporary file of the status file exists:
	// FILE.PID.tmp of any writer's pid, or the legacy FILE.tmp
	// (status.TempFiles).
	TmpPresent bool `json:"tmp_present,omitempty"`
}

// StatusReader reads a status file.
type StatusReader interface {
	Read(path string) StatusFile
}

// DefaultStatusReader is the reader trials use: the project's status
// package (harness/status), the same code pgbb-status runs.
func DefaultStatusReader() StatusReader { return pkgStatusReader{} }

// pkgStatusReader reads with harness/status.
type pkgStatusReader struct{}

func (pkgStatusReader) Read(path string) StatusFile {
	var sf StatusFile
	if tmps, err := status.TempFiles(path); err == nil && len(tmps) > 0 {
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
