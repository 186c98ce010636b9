package fault

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
)

func TestScheduleWeightsTheFinishingPhase(t *testing.T) {
	cal := Timeline{"start": 0, "checkpoint": 10 * time.Millisecond, "receiving": 200 * time.Millisecond,
		"end-of-data": 1800 * time.Millisecond, "sync": 1900 * time.Millisecond, "exited": 2 * time.Second}
	rng := rand.New(rand.NewPCG(1, 2))
	late := 0
	const n = 3000
	for i := 0; i < n; i++ {
		anchor, off, fin := schedule(rng, cal, PhaseStart)
		at, _ := cal.At(anchor)
		if fin != (anchor == PhaseEndOfData) {
			t.Fatalf("finishing %t with anchor %s", fin, anchor)
		}
		if at+off >= 1800*time.Millisecond {
			late++
		}
		if at+off > 2*time.Second {
			t.Fatalf("scheduled at %s, past the run", at+off)
		}
	}
	if late < n/3 {
		t.Fatalf("%d of %d faults after the last data file; want at least a third", late, n)
	}
	for i := 0; i < n; i++ {
		anchor, off, _ := scheduleWindow(rng, cal, PhaseReceiving, PhaseSync)
		at, _ := cal.At(anchor)
		if at+off < 200*time.Millisecond || at+off > 1900*time.Millisecond {
			t.Fatalf("window receiving-sync: scheduled at %s", at+off)
		}
	}
}

func TestTracker(t *testing.T) {
	tr := NewTracker(time.Now())
	done := make(chan struct{})
	go func() {
		tr.Line("pg_basebackup: initiating base backup, waiting for checkpoint to complete")
		tr.Line("pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1")
		tr.Line("pg_basebackup: syncing data to disk ...")
	}()
	if !tr.Wait(context.Background(), PhaseReceiving, done) {
		t.Fatal("receiving not seen")
	}
	if tr.Wait(context.Background(), PhaseWALWait, done) {
		// wal-wait was skipped (sync came first): Wait says it was not reached.
		t.Fatal("wal-wait reported as reached")
	}
	if tr.Current() != PhaseSync {
		t.Fatalf("current %s", tr.Current())
	}
	close(done)
	if tr.Wait(context.Background(), PhaseCompleted, done) {
		t.Fatal("completed reported after exit")
	}
	tl := tr.Timeline()
	if _, ok := tl.At(PhaseCheckpoint); !ok {
		t.Fatalf("timeline %v", tl)
	}
}

// TestEveryPlanRegistered: each plan a scenario may name has its fault
// under that name, and no fault is registered under a name scenarios do
// not know.
func TestEveryPlanRegistered(t *testing.T) {
	for _, name := range scenario.Plans() {
		f, err := ByName(name)
		if err != nil {
			t.Errorf("plan %s: %v", name, err)
			continue
		}
		if f.Name() != name {
			t.Errorf("plan %s: the fault says its name is %s", name, f.Name())
		}
	}
	if len(plans) != len(scenario.Plans()) {
		t.Errorf("%d faults registered, scenarios know %d plans", len(plans), len(scenario.Plans()))
	}
	if _, err := ByName("no-such-plan"); err == nil {
		t.Error("an unknown plan was found")
	}
}
