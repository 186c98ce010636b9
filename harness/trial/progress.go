package trial

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbb/pgbb/harness/fault"
	"github.com/pgbb/pgbb/harness/status"
)

// The progress lines of a status file, judged while the run lasts (part
// of InvFieldsTrue): BYTES RECEIVED never counts more than the server had
// sent of the backup, and once the data is in (the phases after receiving
// data) never less than the most the server was seen to have sent, so that
// it ends where the data ended (with tablespaces, several archives arrive
// one after another: a count that restarts with each would end short);
// while data arrives the writer rewrites the file every UPDATE INTERVAL.
// That the counters only grow and the phases only go forward is
// status.PhasesForward's (InvPhasesForward).
//
// Both are judged so that a loaded machine cannot raise them: the byte
// count against a server count taken after the file was read; the cadence
// against what the run itself did: the series rewrites the file, when the
// interval has passed, as each chunk of data arrives and before it writes
// the chunk out, so a run that went on writing received data long after a
// rewrite was due, the file unchanged, did not rewrite it. A run that
// waits (a stalled server, a full socket, a descheduled or blocked
// process) writes nothing and is not blamed. The run's writes are wchar
// of /proc/PID/io: the process's own writes (the backup's files, or the
// archive on standard output; the WAL streaming child is another process).

const (
	// bytesSlack is how far BYTES RECEIVED may run ahead of the server's
	// pg_stat_progress_basebackup: the server counts a chunk after
	// sending it, but the count it sends the client includes the chunk
	// (basebackup_progress.c, basebackup_copy.c). A chunk is one 32 kB
	// sink buffer; four of them for room.
	bytesSlack = 128 << 10

	// cadenceSlack is how long past UPDATE INTERVAL a rewrite may show:
	// the writer's clock counts whole seconds, and a rewrite is synced
	// before it is renamed into place.
	cadenceSlack = 2 * time.Second

	// cadenceWrites is how much the run must write past the time a
	// rewrite was due, the file unchanged, before it is said to have
	// received data without rewriting: far more than the rest of the one
	// chunk it may have been writing out when the rewrite fell due.
	cadenceWrites = 1 << 20
)

// backupAppName is the application_name (PGAPPNAME) a trial's
// pg_basebackup connects with, by which the probe finds its base backup
// among others on the same server (at most 63 bytes, NAMEDATALEN).
func backupAppName(id string) string {
	name := "pgbb " + id
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// writtenProbe reads how many bytes the process pid() names has written
// (wchar of /proc/PID/io; the harness runs as root or as the run's user);
// pid() is 0 while there is none (a wrapper's pg_basebackup child).
func writtenProbe(pid func() int) fault.Probe {
	return func() (int64, bool) {
		p := pid()
		if p == 0 {
			return 0, false
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p))
		if err != nil {
			return 0, false
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "wchar: "); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				return n, err == nil
			}
		}
		return 0, false
	}
}

// streamedProbe asks the server, over conn, how much of the base backup of
// the pg_basebackup connected as app it has streamed.
func streamedProbe(ctx context.Context, conn *pgx.Conn, app string) fault.Probe {
	const q = `SELECT p.backup_streamed FROM pg_stat_progress_basebackup p
		JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1`
	return func() (int64, bool) {
		if conn.IsClosed() {
			return 0, false
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var n int64
		if err := conn.QueryRow(qctx, q, app).Scan(&n); err != nil {
			return 0, false
		}
		return n, true
	}
}

// checkProgress returns what the samples of one run show its progress
// lines said untruly: each kind once, at its first sample. refresh is the
// interval the run was given; until, when not zero, is when a fault
// fired: the cadence is judged before it only. countsBytes says the
// writer counts the bytes it receives: the patched pg_basebackup always;
// the wrapper (pgbb-run) only with -P, from pg_basebackup's progress lines
// (it cannot see inside pg_basebackup otherwise and says 0 by design), so
// without it BYTES RECEIVED is not required to reach what the server sent
// once the data has ended; it still must never exceed it.
func checkProgress(samples fault.StatusSamples, refresh time.Duration, until time.Time, countsBytes bool) []string {
	var bytesWrong, endWrong, cadenceWrong string
	vs := samples.Versions
	sent := maxStreamed(samples)
	for i, v := range vs {
		st := v.Status
		if st.State != status.StateInProgress || !st.Progress {
			continue
		}
		if bytesWrong == "" && v.Streamed >= 0 && int64(st.BytesReceived) > v.Streamed+bytesSlack {
			bytesWrong = fmt.Sprintf("BYTES RECEIVED %d at +%s, but the server had sent %d bytes of the backup",
				st.BytesReceived, v.At.Sub(vs[0].At).Round(time.Millisecond), v.Streamed)
		}
		if endWrong == "" && countsBytes && st.Phase.Order() > status.PhaseReceiving.Order() && int64(st.BytesReceived)+bytesSlack < sent {
			endWrong = fmt.Sprintf("BYTES RECEIVED %d at +%s in phase %q, after the data, but the server was seen to have sent %d bytes of the backup",
				st.BytesReceived, v.At.Sub(vs[0].At).Round(time.Millisecond), st.Phase, sent)
		}
		if cadenceWrong != "" || refresh <= 0 {
			continue
		}
		end := until
		if i+1 < len(vs) {
			if w := writtenBy(vs[i+1]); end.IsZero() || w.Before(end) {
				end = w
			}
		}
		due := v.At.Add(refresh + cadenceSlack)
		if wrote := countBetween(samples.Written, due, end); wrote > cadenceWrites {
			cadenceWrong = fmt.Sprintf("UPDATE TIME %s (first read at +%s) not rewritten %s after it was read, while the run wrote %d more bytes of what it received (UPDATE INTERVAL %s)",
				st.UpdateTime.UTC().Format(time.TimeOnly), v.At.Sub(vs[0].At).Round(time.Millisecond),
				refresh+cadenceSlack, wrote, refresh)
		}
	}
	var wrong []string
	for _, w := range []string{bytesWrong, endWrong, cadenceWrong} {
		if w != "" {
			wrong = append(wrong, w)
		}
	}
	return wrong
}

// maxStreamed returns the most the server was seen to have sent of the
// backup, by any count taken during the run (-1 if none answered).
func maxStreamed(samples fault.StatusSamples) int64 {
	most := int64(-1)
	for _, v := range samples.Versions {
		most = max(most, v.Streamed)
	}
	for _, c := range samples.Streamed {
		most = max(most, c.Bytes)
	}
	return most
}

// writtenBy returns a time by which version v had been written: the
// earlier of when it was first read and the time it says it was written
// (whole seconds, rounded down).
func writtenBy(v fault.StatusVersion) time.Time {
	w := v.At
	for _, t := range []time.Time{v.Status.UpdateTime, v.Status.EndTime} {
		if !t.IsZero() && t.Before(w) {
			w = t
		}
	}
	return w
}

// countBetween returns how much a count surely grew between from and to
// (to zero: the last sample): the count of the last sample answered by to
// less that of the first asked after from.
func countBetween(ss []fault.CountSample, from, to time.Time) int64 {
	first, last := -1, -1
	for i, s := range ss {
		if first < 0 && !s.Asked.Before(from) {
			first = i
		}
		if to.IsZero() || !s.Answered.After(to) {
			last = i
		}
	}
	if first < 0 || last <= first {
		return 0
	}
	return ss[last].Bytes - ss[first].Bytes
}
