package taskflow

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxStallNotes bounds the false stalls an outcome describes.
const maxStallNotes = 3

// monitor reads the status file of a patched or wrapper flow every
// second, as an orchestrator's sensor or dashboard does, for the whole
// flow: it counts "stalled" readings of a healthy run, measures the
// cadence of UPDATE TIME, and, in a stall flow, stops the run's base
// backup sender once data flows and measures how soon the reader sees
// it.
type monitor struct {
	r      *flowRun
	cancel context.CancelFunc
	done   chan struct{}

	// The stall: the sender's pid, when it was stopped and continued.
	stallPID           int
	stalledAt, contAt  time.Time
	lastPID            int
	lastUpdate, lastAt time.Time
	// lastWritten is what the run had written (procWritten) when its
	// current version was first read; lastKnown says it could be read.
	lastWritten int64
	lastKnown   bool
	// lastWaited is how long the run's writer had waited for a CPU
	// (procWaited) then; lastWaitKnown says it could be read.
	lastWaited    time.Duration
	lastWaitKnown bool
}

func newMonitor(r *flowRun) *monitor { return &monitor{r: r, done: make(chan struct{})} }

// run reads until stop.
func (m *monitor) run(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	defer close(m.done)
	defer m.resume()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if rd, err := m.r.env.Reader.Read(ctx, m.r.statusFile()); err == nil {
			m.sample(ctx, rd)
		} else if ctx.Err() == nil {
			m.r.logf("monitor: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop ends the monitor and waits for it.
func (m *monitor) stop() {
	if m.cancel != nil {
		m.cancel()
	}
	<-m.done
}

// refresh is the writer's update interval.
func (m *monitor) refresh() time.Duration { return time.Duration(m.r.sc.Refresh) * time.Second }

// inStall says whether t falls in the stall, or soon enough after it that
// the writer has not yet rewritten the file: the reader may say stalled
// then, rightly.
func (m *monitor) inStall(t time.Time) bool {
	if m.stalledAt.IsZero() {
		return false
	}
	end := m.contAt
	if end.IsZero() {
		end = t
	}
	return !t.Before(m.stalledAt) && !t.After(end.Add(2*m.refresh()+5*time.Second))
}

// sample takes one reading into the outcome.
func (m *monitor) sample(ctx context.Context, rd Reading) {
	r := m.r
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.Samples++
	if rd.Verdict == verdictStalled {
		switch {
		case m.inStall(rd.At):
			if r.out.StallSeenAfter == 0 {
				r.out.StallSeenAfter = rd.At.Sub(m.stalledAt)
				r.logf("monitor: stall seen after %s: %s", r.out.StallSeenAfter.Round(time.Millisecond), rd.Summary)
			}
		default:
			r.out.FalseStalls++
			if len(r.out.StallNotes) < maxStallNotes {
				r.out.StallNotes = append(r.out.StallNotes, fmt.Sprintf("+%s: %s", rd.At.Sub(r.start).Round(time.Second), rd.Summary))
			}
		}
	}
	m.cadence(rd)
	if r.flow.Stall && m.stalledAt.IsZero() && rd.Verdict == verdictRunning && rd.Status.Phase == "receiving data" &&
		rd.Status.BytesTotal > 0 && rd.Status.BytesReceived > rd.Status.BytesTotal/10 {
		m.startStall(ctx)
	}
	if !m.stalledAt.IsZero() && m.contAt.IsZero() && time.Since(m.stalledAt) >= time.Duration(r.sc.Stall) {
		m.resume()
	}
}

// cadence tracks the longest gap between successive UPDATE TIMEs of one
// live run in a heartbeat phase, outside the stall.
func (m *monitor) cadence(rd Reading) {
	st := rd.Status
	if rd.Verdict != verdictRunning || !heartbeatPhases[st.Phase] || st.UpdateTime.IsZero() || m.inStall(rd.At) {
		m.lastPID = 0
		return
	}
	w := m.writer(st.PID)
	if w == 0 {
		// Under the wrapper, no pg_basebackup to look at (not started
		// yet, or gone): nothing to count the gap against.
		m.lastPID = 0
		return
	}
	written, known := procWritten(w)
	waited, waitKnown := procWaited(w)
	if st.PID == m.lastPID && st.UpdateTime.After(m.lastUpdate) {
		gap := st.UpdateTime.Sub(m.lastUpdate)
		if waitKnown && m.lastWaitKnown {
			gap = cpuGap(gap, waited-m.lastWaited)
		}
		switch {
		// While it waits for the WAL streaming process the writer
		// rewrites on a timer; while data arrives, at its chunks.
		case st.Phase == "receiving data" && !dataFlowed(written-m.lastWritten, known && m.lastKnown):
			m.r.out.SlowUpdateGap = max(m.r.out.SlowUpdateGap, gap)
		case gap > m.r.out.MaxUpdateGap:
			m.r.out.MaxUpdateGap = gap
		}
	}
	if st.PID != m.lastPID || st.UpdateTime.After(m.lastUpdate) {
		m.lastPID, m.lastUpdate, m.lastAt = st.PID, st.UpdateTime, rd.At
		m.lastWritten, m.lastKnown = written, known
		m.lastWaited, m.lastWaitKnown = waited, waitKnown
	}
}

// cpuGap is the part of a gap between two UPDATE TIMEs in which the
// writer was not waiting for a CPU: on a loaded machine a runnable
// pg_basebackup may wait seconds for one, and cannot rewrite its file
// meanwhile; that is the machine, not a missed rewrite. The gap is
// whole seconds, so one is kept at least.
func cpuGap(gap, waited time.Duration) time.Duration {
	return max(gap-waited, min(gap, time.Second))
}

// procWaited returns how long the process pid has waited on a run queue
// for a CPU so far (the second field of /proc/PID/schedstat, in
// nanoseconds), if this machine shows it.
func procWaited(pid int) (time.Duration, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0, false
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	return time.Duration(ns), err == nil
}

// cadenceData is how much a run must have written between the readings
// of two successive versions for the gap between their UPDATE TIMEs to
// count against the refresh promise. The writer rewrites the file at the
// first chunk of data after the interval: a long gap over little data is
// a slow server on a loaded machine, not a missed rewrite; 1 MB is some
// thirty of the server's chunks.
const cadenceData = 1 << 20

// dataFlowed says whether a gap between two versions counts against the
// cadence: when what the run wrote meanwhile is not known, it does.
func dataFlowed(written int64, known bool) bool {
	return !known || written >= cadenceData
}

// writer is the pg_basebackup that receives the data of the run whose
// status file records pid: pid itself, or under the wrapper its child
// pg_basebackup (0 when there is none), since pgbb-run writes nothing but
// the status file.
func (m *monitor) writer(pid int) int {
	if m.r.flow.Variant != Wrapper {
		return pid
	}
	// pgbb-run starts pg_basebackup from a thread of its own: look at
	// the children of every thread.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); err == nil && strings.TrimSpace(string(comm)) == "pg_basebackup" {
				return child
			}
		}
	}
	return 0
}

// procWritten returns what the process pid has written so far (wchar of
// /proc/PID/io), if this machine shows it.
func procWritten(pid int) (int64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// startStall stops the base backup sender serving the flow's run.
func (m *monitor) startStall(ctx context.Context) {
	r := m.r
	conn, err := r.env.Server.Connect(ctx, "postgres")
	if err != nil {
		r.logf("stall: %v", err)
		return
	}
	defer conn.Close(context.Background())
	var pid int
	err = conn.QueryRow(ctx, `SELECT pid FROM pg_stat_replication WHERE application_name = $1 AND state = 'backup'`,
		r.appName()).Scan(&pid)
	if err != nil {
		r.logf("stall: no base backup sender for %s: %v", r.appName(), err)
		return
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		r.logf("stall: SIGSTOP %d: %v", pid, err)
		return
	}
	m.stallPID, m.stalledAt = pid, time.Now()
	r.logf("stall: base backup sender %d stopped for %s", pid, time.Duration(r.sc.Stall))
}

// resume continues a stopped sender.
func (m *monitor) resume() {
	if m.stallPID == 0 || !m.contAt.IsZero() {
		return
	}
	syscall.Kill(m.stallPID, syscall.SIGCONT)
	m.contAt = time.Now()
	m.r.logf("stall: base backup sender %d continued", m.stallPID)
}
