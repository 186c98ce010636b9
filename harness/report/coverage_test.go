package report

import (
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/trial"
)

// TestCoverage: the summary counts what the trials exercised and prints it.
func TestCoverage(t *testing.T) {
	recs := []*trial.Record{
		{ID: "a/0", Plan: "kill", TZ: "Asia/Kathmandu", Args: []string{"--tablespace-mapping=/a=/b", "--waldir=/w"},
			Cleanup: &trial.Cleanup{RetryExit: 0}, ProgressJudged: 3},
		{ID: "a/1", Plan: "stop", TZ: "UTC", Fault: fault.Injection{Stop: &fault.StopObservation{OtherUser: &fault.UserReader{},
			OtherNamespace: &fault.NamespaceReader{}}}},
		{ID: "a/3", Plan: "stop", TZ: "UTC", Fault: fault.Injection{Stop: &fault.StopObservation{
			OtherNamespace: &fault.NamespaceReader{Error: "unshare: operation not permitted"}}}},
		{ID: "a/2", Plan: "kill", TZ: "Asia/Kathmandu", Cleanup: &trial.Cleanup{Exit: 1, Refused: "alive", RetryExit: -1}},
		{ID: "a/4", Plan: "stop", TZ: "UTC", Fault: fault.Injection{Stop: &fault.StopObservation{
			NotRun: &fault.ReaderGaps{OtherUser: fault.NoOtherUser, OtherNamespace: "unshare: operation not permitted"}}}},
		{ID: "a/5", Plan: "stop", TZ: "UTC", Fault: fault.Injection{Stop: &fault.StopObservation{OtherNamespace: &fault.NamespaceReader{},
			NotRun: &fault.ReaderGaps{OtherUser: fault.NoOtherUser}}}},
	}
	c := Summarize(recs).Coverage
	want := Coverage{Tablespaces: 1, WALDir: 1, Removed: 1, Retried: 1, OtherUser: 1, Progress: 1, ProgressVersions: 3,
		Zones: map[string]int{"Asia/Kathmandu": 2, "UTC": 1}}
	if c.Tablespaces != want.Tablespaces || c.WALDir != want.WALDir || c.Removed != want.Removed || c.Retried != want.Retried ||
		c.OtherUser != want.OtherUser || c.Progress != want.Progress || c.ProgressVersions != want.ProgressVersions ||
		c.OtherNamespace != 2 || c.NamespaceErrors != 1 || len(c.Zones) != 2 || c.Zones["Asia/Kathmandu"] != 2 ||
		len(c.NotCovered) != 2 || c.NotCovered["as another OS user: "+fault.NoOtherUser] != 2 ||
		c.NotCovered["from another PID namespace: unshare: operation not permitted"] != 1 {
		t.Fatalf("coverage %+v, want %+v", c, want)
	}
	var b strings.Builder
	WriteCoverage(&b, c)
	for _, s := range []string{"1 trials with tablespaces", "Asia/Kathmandu 2, UTC 4", "2 also from another PID namespace (1 could not be)",
		"1 with progress lines judged against the server (3 versions)",
		"\nnot covered in 2 trials: pgbb-status as another OS user: " + fault.NoOtherUser + "\n",
		"\nnot covered in 1 trials: pgbb-status from another PID namespace: unshare: operation not permitted\n"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("coverage lines %q lack %q", b.String(), s)
		}
	}
}
