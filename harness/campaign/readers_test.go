package campaign

import (
	"context"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/scenario"
)

// TestCheckReaders: a campaign whose scenarios run the reader finds out
// whether a PID namespace can be made (here it cannot: no unshare) and says
// on its log what the stop plan's reader will not run as; a campaign
// without such a plan probes nothing.
func TestCheckReaders(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	stop, err := scenario.Parse("s.json", []byte(`{"name": "s", "faults": ["stop"], "trials": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	c := newCampaign(Config{Scenarios: []scenario.Scenario{stop}, ReaderBin: "/r", Log: &log})
	c.checkReaders(context.Background())
	if !strings.Contains(c.readerGaps.OtherNamespace, "unshare") || c.readerGaps.OtherUser != "" {
		t.Fatalf("gaps %+v, want the failed unshare only", c.readerGaps)
	}
	for _, s := range []string{"does not run as another OS user: " + fault.NoOtherUser, "does not run from another PID namespace: unshare"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("the log %q lacks %q", log.String(), s)
		}
	}

	kill, err := scenario.Parse("k.json", []byte(`{"name": "k", "faults": ["kill"], "trials": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	log.Reset()
	c = newCampaign(Config{Scenarios: []scenario.Scenario{kill}, ReaderBin: "/r", Log: &log})
	c.checkReaders(context.Background())
	if c.readerGaps.Any() || log.Len() > 0 {
		t.Fatalf("no plan runs the reader, yet gaps %+v, log %q", c.readerGaps, log.String())
	}
}
