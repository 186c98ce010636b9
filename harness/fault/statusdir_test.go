package fault

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// TestStatusDirReadOnly: once the status file says "receiving data", the
// plan makes its directory read-only; an early plan makes it writable
// again once the log names a failed write of the run's temporary file
// (FILE.PID.tmp, or the legacy FILE.tmp), a late one only after the run
// ended.
func TestStatusDirReadOnly(t *testing.T) {
	for _, c := range []struct {
		seed   uint64
		legacy bool // the failed write names the legacy FILE.tmp
	}{{1, false}, {6, false}, {6, true}} { // a late plan, an early one
		seed := c.seed
		dir := filepath.Join(t.TempDir(), "status")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "backup_status")
		now := time.Now().UTC().Truncate(time.Second)
		st := &status.Status{Version: 1, State: status.StateInProgress, StartTime: now, PID: os.Getpid(), Host: "h",
			Label: "l", ProgramVersion: "pg_basebackup (PostgreSQL) 18.6", Format: "plain", WALMethod: "stream", Sync: true,
			Progress: true, UpdateInterval: 1, Phase: status.PhaseStarting, UpdateTime: now}
		write := func() {
			if err := os.WriteFile(file, st.Encode(), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write()
		f, err := ByName(scenario.PlanStatusDirReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		tracker := NewTracker(time.Now())
		done := make(chan struct{})
		res := make(chan Injection)
		go func() {
			inj, err := f.Inject(context.Background(), &Target{PID: os.Getpid(), Phases: tracker, Done: done,
				StatusFile: file, Rand: rand.New(rand.NewPCG(seed, 0))})
			if err != nil {
				t.Error(err)
			}
			res <- inj
		}()
		mode := func() os.FileMode {
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			return fi.Mode().Perm()
		}
		time.Sleep(50 * time.Millisecond)
		if m := mode(); m != 0o700 {
			t.Fatalf("mode %o while the status file says starting", m)
		}
		st.Phase = status.PhaseReceiving
		write()
		deadline := time.Now().Add(5 * time.Second)
		for mode() != 0o500 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if m := mode(); m != 0o500 {
			t.Fatalf("mode %o once receiving data, want 0500", m)
		}
		tmp := status.TempPath(file, os.Getpid())
		if c.legacy {
			tmp = status.LegacyTempPath(file)
		}
		tracker.Line(`pg_basebackup: warning: could not create file "` + tmp + `": Permission denied`)
		time.Sleep(100 * time.Millisecond)
		early := mode() == 0o700
		close(done)
		inj := <-res
		o := inj.StatusDir
		if !inj.Fired || o == nil || o.Phase != "receiving data" || o.Early != early || o.Restored != early || o.FailureSeen != early {
			t.Fatalf("seed %d: injection %+v, observation %+v (writable before the end: %t)", seed, inj, o, early)
		}
		if m := mode(); m != 0o700 {
			t.Fatalf("seed %d: mode %o after the run, want it back to 0700", seed, m)
		}
		if early != (seed == 6) {
			t.Fatalf("seed %d: early %t; the test wants one plan of each kind", seed, early)
		}
	}
}

func TestTrackerWaitLine(t *testing.T) {
	tr := NewTracker(time.Now())
	done := make(chan struct{})
	got := make(chan bool)
	go func() { got <- tr.WaitLine(context.Background(), "needle", done) }()
	tr.Line("hay")
	tr.Line("a needle here")
	if !<-got {
		t.Fatal("the line was not seen")
	}
	close(done)
	if tr.WaitLine(context.Background(), "absent", done) {
		t.Fatal("a line never logged was seen")
	}
	if !tr.WaitLine(context.Background(), "needle", done) {
		t.Fatal("a line logged earlier was not seen")
	}
}
