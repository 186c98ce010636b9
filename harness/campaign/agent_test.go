package campaign

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/trial"
)

func TestAgentProtocol(t *testing.T) {
	var out bytes.Buffer
	out.WriteString("a log line from the agent\n")
	if err := WriteRecord(&out, &trial.Record{ID: "s/1", Plan: "kill", Violations: []trial.Violation{{Invariant: trial.InvNotTorn, Message: "m"}}}); err != nil {
		t.Fatal(err)
	}
	WriteRecord(&out, &trial.Record{ID: "s/2"})
	WriteDone(&out, AgentDone{Skipped: map[string]int{"s": 3}})
	var got []string
	var log strings.Builder
	done, err := ReadAgent(&out, func(r *trial.Record) { got = append(got, r.ID) }, &log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "s/1,s/2" || done.Skipped["s"] != 3 || !strings.Contains(log.String(), "a log line") {
		t.Fatalf("records %v, done %+v, log %q", got, done, log.String())
	}
	if _, err := ReadAgent(strings.NewReader("PGBB-RECORD {}\n"), func(*trial.Record) {}, nil); err == nil {
		t.Fatal("an agent that ends without a result line must be an error")
	}
}

func TestParseID(t *testing.T) {
	if s, i, err := ParseID("plain-stream/7"); err != nil || s != "plain-stream" || i != 7 {
		t.Fatalf("%q %d %v", s, i, err)
	}
	for _, bad := range []string{"plain-stream", "x/-1", "x/y"} {
		if _, _, err := ParseID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if TrialSeed(1, "a", 1) == TrialSeed(1, "a", 2) || TrialSeed(1, "a", 1) != TrialSeed(1, "a", 1) {
		t.Fatal("trial seeds must be distinct per index and stable")
	}
}
