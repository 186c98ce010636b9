package campaign

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/trial"
)

// Job is what the driver hands the agent (pgbb-agent) that runs a
// campaign inside a container: the same campaign code as the native
// backend, only elsewhere.
type Job struct {
	Scenarios []scenario.Scenario `json:"scenarios"`
	Seed      int64               `json:"seed"`
	Parallel  int                 `json:"parallel"`
	Replay    string              `json:"replay,omitempty"`
	Keep      bool                `json:"keep,omitempty"`
	Variant   string              `json:"variant"`
	// Prefix is the installation in the image; BuildTree its build tree
	// (for contrib/amcheck).
	Prefix    string `json:"prefix"`
	BuildTree string `json:"build_tree"`
	// KeepFailing is Config.KeepFailing.
	KeepFailing int `json:"keep_failing,omitempty"`
	// Shard is Config.Shard.
	Shard Shard `json:"shard,omitzero"`
	// Scratch, if set, is a directory of the host that RunContainer
	// bind-mounts at the same path: the agent's scratch, so that the
	// trials it keeps outlive the container, under the paths its records
	// name.
	Scratch string `json:"scratch,omitempty"`
	// ReaderBin, if set, is the built pgbb-status in the container
	// (RunContainer copies it in there): the agent passes it on as
	// Config.ReaderBin, with another OS user it makes as
	// Config.OtherUser, as the native backend does.
	ReaderBin string `json:"reader_bin,omitempty"`
}

// Agent protocol: the agent writes one line per record and a last line
// with the outcome on stdout; everything else it says goes to stderr.
const (
	recordPrefix = "PGBB-RECORD "
	donePrefix   = "PGBB-DONE "
)

// AgentDone is the agent's last line.
type AgentDone struct {
	Error   string         `json:"error,omitempty"`
	Skipped map[string]int `json:"skipped,omitempty"`
	Dropped int            `json:"dropped,omitempty"`
	Elapsed int64          `json:"elapsed_ns"`
}

// WriteRecord writes a record line.
func WriteRecord(w io.Writer, r *trial.Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", recordPrefix, data)
	return err
}

// WriteDone writes the last line.
func WriteDone(w io.Writer, d AgentDone) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", donePrefix, data)
	return err
}

// ReadAgent reads an agent's output: records go to onRecord, other lines
// to log; it returns the last line, or an error when there was none.
func ReadAgent(r io.Reader, onRecord func(*trial.Record), log io.Writer) (*AgentDone, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var done *AgentDone
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, recordPrefix):
			var rec trial.Record
			if err := json.Unmarshal([]byte(line[len(recordPrefix):]), &rec); err != nil {
				return nil, fmt.Errorf("agent record: %w", err)
			}
			onRecord(&rec)
		case strings.HasPrefix(line, donePrefix):
			done = &AgentDone{}
			if err := json.Unmarshal([]byte(line[len(donePrefix):]), done); err != nil {
				return nil, fmt.Errorf("agent result: %w", err)
			}
		default:
			if log != nil {
				fmt.Fprintln(log, line)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return done, err
	}
	if done == nil {
		return nil, fmt.Errorf("the agent ended without a result line")
	}
	return done, nil
}
