package trial

import (
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/status"
)

// run is a synthetic run for checkProgress: the server streams rate bytes
// a second from t0 for dur, and the run writes them out as they come, both
// sampled every 100 ms; the writer's versions are given as (seconds after
// t0 first read, seconds after t0 written, bytes received).
type run struct {
	t0   time.Time
	rate int64
	dur  time.Duration
	// stallFrom, when not zero, is when the run stops receiving and
	// writing (a stalled server, a blocked process).
	stallFrom time.Duration
	// serverAhead is how much more the server sends into the socket
	// buffers than the run reads, once the run stalls.
	serverAhead int64
}

func (r run) streamedAt(d time.Duration) int64 {
	if r.stallFrom > 0 && d > r.stallFrom {
		d = r.stallFrom
	}
	return int64(d.Seconds() * float64(r.rate))
}

// samples returns the server's and the run's counts.
func (r run) samples(versions []fault.StatusVersion) fault.StatusSamples {
	ss := fault.StatusSamples{Versions: versions}
	for d := time.Duration(0); d <= r.dur; d += 100 * time.Millisecond {
		at := r.t0.Add(d)
		sent := r.streamedAt(d)
		if r.stallFrom > 0 && d > r.stallFrom {
			// The server goes on at its rate until the buffers are full.
			sent += min(r.serverAhead, int64((d-r.stallFrom).Seconds()*float64(r.rate)))
		}
		ss.Streamed = append(ss.Streamed, fault.CountSample{Asked: at, Answered: at.Add(2 * time.Millisecond), Bytes: sent})
		ss.Written = append(ss.Written, fault.CountSample{Asked: at, Answered: at.Add(time.Millisecond), Bytes: r.streamedAt(d)})
	}
	return ss
}

// version is one status file version, read at read and written at
// written (seconds after t0), saying bytes.
func (r run) version(read, written float64, bytes int64) fault.StatusVersion {
	at := r.t0.Add(time.Duration(read * float64(time.Second)))
	return fault.StatusVersion{
		At: at,
		Status: &status.Status{State: status.StateInProgress, Progress: true, Phase: status.PhaseReceiving,
			UpdateTime: r.t0.Add(time.Duration(written * float64(time.Second))).Truncate(time.Second), BytesReceived: uint64(bytes)},
		Streamed: r.streamedAt(at.Sub(r.t0) + time.Millisecond),
	}
}

// TestCheckProgress: BYTES RECEIVED beyond the server's count, and a file
// not rewritten while the run went on writing what it received, are named;
// a run that stalled (even while the server filled the socket buffers), a
// sampler that read late, or a fault, is not blamed, nor a count within
// one chunk of the server's.
func TestCheckProgress(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	const rate = 4 << 20
	steady := func(r run, every float64) []fault.StatusVersion {
		var vs []fault.StatusVersion
		for s := 0.0; s < r.dur.Seconds(); s += every {
			vs = append(vs, r.version(s+0.05, s, r.streamedAt(time.Duration(s*float64(time.Second)))))
		}
		return vs
	}
	r := run{t0: t0, rate: rate, dur: 10 * time.Second}
	short := run{t0: t0, rate: rate, dur: 2 * time.Second}
	cases := []struct {
		name     string
		r        run
		versions []fault.StatusVersion
		until    time.Time
		want     []string
	}{
		{"every second", r, steady(r, 1), time.Time{}, nil},
		{"never rewritten", r, steady(r, 100), time.Time{}, []string{"UPDATE TIME 05:00:00 (first read at +0s) not rewritten 3s after it was read, while the run wrote"}},
		{"every 6 seconds", r, steady(r, 6), time.Time{}, []string{"not rewritten 3s after"}},
		{"never rewritten, the fault fired before it was due", r, steady(r, 100), t0.Add(2 * time.Second), nil},
		{"never rewritten, the fault fired after it was due", r, steady(r, 100), t0.Add(5 * time.Second), []string{"not rewritten"}},
		{"never rewritten, the run stalled", run{t0: t0, rate: rate, dur: 10 * time.Second, stallFrom: 2 * time.Second},
			steady(r, 100), time.Time{}, nil},
		{"never rewritten, the run blocked while the server filled 10 MB of socket buffers",
			run{t0: t0, rate: rate, dur: 10 * time.Second, stallFrom: 2500 * time.Millisecond, serverAhead: 10 << 20},
			steady(r, 100), time.Time{}, nil},
		{"read late", r, []fault.StatusVersion{r.version(0, 0, 0), r.version(1, 1, rate), r.version(7, 2, 2*rate)}, time.Time{}, nil},
		{"bytes beyond", short, []fault.StatusVersion{short.version(0, 0, 0), short.version(1, 1, 3*rate)}, time.Time{},
			[]string{"BYTES RECEIVED 12582912 at +1s, but the server had sent 4198498 bytes"}},
		{"bytes within a chunk", short, []fault.StatusVersion{short.version(0, 0, 0), short.version(1, 1, rate+32<<10)}, time.Time{}, nil},
		{"ends where the data ended", short, []fault.StatusVersion{short.version(0, 0, 0), short.version(1, 1, rate),
			inPhase(short.version(2, 1, 2*rate), status.PhaseWaitingForWAL)}, time.Time{}, nil},
		{"ends short, as a count restarted for the second archive would", short, []fault.StatusVersion{short.version(0, 0, 0), short.version(1, 1, rate),
			inPhase(short.version(2, 1, rate/2), status.PhaseWaitingForWAL)}, time.Time{},
			[]string{`BYTES RECEIVED 2097152 at +2s in phase "waiting for WAL", after the data, but the server was seen to have sent 8`}},
		{"short while receiving is not judged", short, []fault.StatusVersion{short.version(0, 0, 0), short.version(1, 1, rate/2)}, time.Time{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkProgress(tc.r.samples(tc.versions), time.Second, tc.until, true)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// TestCheckProgressUnknownServer: without the server's count (no probe,
// or the backup over), neither promise is judged.
func TestCheckProgressUnknownServer(t *testing.T) {
	t0 := time.Now()
	st := &status.Status{State: status.StateInProgress, Progress: true, UpdateTime: t0, BytesReceived: 1 << 40}
	got := checkProgress(fault.StatusSamples{Versions: []fault.StatusVersion{{At: t0, Status: st, Streamed: -1}}}, time.Second, time.Time{}, true)
	if len(got) != 0 {
		t.Fatalf("judged without the server: %q", got)
	}
}

// inPhase returns v saying phase p.
func inPhase(v fault.StatusVersion, p status.Phase) fault.StatusVersion {
	st := *v.Status
	st.Phase = p
	v.Status = &st
	return v
}

// TestCheckProgressWithoutByteCount: a writer that does not count the
// bytes it receives (the wrapper without -P, by design) is not asked to
// reach the server's count once the data has ended, but still may never
// claim more than the server sent; the patched writer is asked both.
func TestCheckProgressWithoutByteCount(t *testing.T) {
	const rate = 4 << 20
	t0 := time.Now()
	short := run{t0: t0, rate: rate, dur: 2 * time.Second}
	ended := []fault.StatusVersion{short.version(0, 0, 0), inPhase(short.version(2, 1, 0), status.PhaseWaitingForWAL)}
	if got := checkProgress(short.samples(ended), time.Second, time.Time{}, false); len(got) != 0 {
		t.Errorf("uncounted bytes judged after the data: %q", got)
	}
	if got := checkProgress(short.samples(ended), time.Second, time.Time{}, true); len(got) != 1 || !strings.Contains(got[0], "after the data") {
		t.Errorf("counted bytes: got %q, want the after-the-data violation", got)
	}
	beyond := []fault.StatusVersion{short.version(0, 0, 0), short.version(1, 1, 3*rate)}
	if got := checkProgress(short.samples(beyond), time.Second, time.Time{}, false); len(got) != 1 || !strings.Contains(got[0], "but the server had sent") {
		t.Errorf("uncounted bytes beyond the server's: got %q", got)
	}
}
