// Command pgbb-status reads the backup status file of a pg_basebackup run
// and says whether the backup can be used, is still being written, or must
// be removed and taken again.
//
//	pgbb-status [--json] [--pid PID] [--wait [--timeout D] [--interval D]] FILE
//	pgbb-status [--json] [--dry-run] [--lease D] --remove-if-dead FILE
//
// FILE is the status file, the path pg_basebackup was given with
// --status-file=FILE (it lies outside every directory the backup writes;
// its DIRECTORY lines name them). A directory is a usage error. Exit codes:
//
//	0   completed and durable
//	1   not complete: no status file, unreadable or invalid, "in progress"
//	    with the writing process gone, or "in progress" on another host
//	2   failed (the reason is printed)
//	3   still running (this host, pid alive, its start time matching)
//	4   completed but not durable (--no-sync, -D -, --target, or a file
//	    pg_basebackup could not open for the sync)
//	5   alive but stalled: the process is stopped, or no update of the
//	    status file for status.StallIntervals intervals (at least
//	    status.MinStallAge) while receiving data or waiting for WAL
//	6   the file says completed, but a directory it records is missing,
//	    not a directory, owned by another user than the status file, or
//	    cannot be examined: do not use it
//	64  usage error (also for -h, and for a directory where FILE is wanted)
//
// The report names the owner of the status file. A status file that is a
// symlink is refused; a parse error quotes the file only to its owner
// (never to root); text output is escaped (status.Escape).
//
// --pid PID judges FILE only as the file of the run whose process id is
// PID (the pg_basebackup the caller started, $! in a shell): a file that
// another process wrote, an earlier run's left in place because this run
// was killed before its first write or has not written it yet, is "not
// complete" (exit 1), whatever it says.
//
// --wait polls every --interval (default 1s) until the verdict is final
// (completed, failed, or "in progress" with the process gone) or --timeout
// (default: none) expires; then the exit code is that of the last verdict.
// A missing status file is never final.
//
// --remove-if-dead FILE removes the directories the status file records
// (created ones removed, existing ones emptied), then the run's temporary
// files (FILE.PID.tmp, PID the one FILE records, and FILE.tmp, which
// earlier writers used) and FILE, only when the file proves the run is
// over and did not complete (see status.RemoveIfDead); another pid's
// FILE.PID.tmp, and a temporary file of another user than the owner of
// FILE, are left alone. Exit codes: 0 removed (--dry-run: would be), 1
// refused (nothing removed; the reason is printed), 2 the removal failed
// part way (what was done is printed), 64 usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/cmd/internal/cli"
	"github.com/pgbb/pgbb/harness/status"
)

func main() {
	cli.Main(func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return run(ctx, args, stdout, stderr)
	})
}

// options is the parsed command line.
type options struct {
	json     bool
	wait     bool
	timeout  time.Duration
	interval time.Duration
	path     string
	remove   string
	lease    time.Duration
	dryRun   bool
	pid      int
}

const usageLine = "usage: pgbb-status [--json] [--pid PID] [--wait [--timeout D] [--interval D]] FILE\n" +
	"       pgbb-status [--json] [--dry-run] [--lease D] --remove-if-dead FILE\n"

// exitUsage is the exit code for a bad command line, and for a directory
// given where the status file is wanted (the verdicts' exit codes are
// the library's: status.Verdict.ExitCode, status.Removal.ExitCode).
const exitUsage = 64

// errUsage is a command line error already reported.
var errUsage = errors.New("usage")

// parseArgs accepts flags before and after the one path argument.
func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("pgbb-status", flag.ContinueOnError)
	fs.SetOutput(escaping{stderr})
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.wait, "wait", false, "poll until the verdict is final (or --timeout)")
	fs.DurationVar(&o.timeout, "timeout", 0, "with --wait: give up after this long (0: never)")
	fs.DurationVar(&o.interval, "interval", time.Second, "with --wait: time between checks")
	fs.StringVar(&o.remove, "remove-if-dead", "", "remove the directories that the status file `FILE` records, then the file, if it proves the run is over and not completed")
	fs.DurationVar(&o.lease, "lease", 0, "with --remove-if-dead: watch the status file of a run written on another host for this long; it is over if the file never changed")
	fs.IntVar(&o.pid, "pid", 0, "judge the file only as the file of the run of process `PID` (the pg_basebackup you started); another run's file is not complete")
	fs.BoolVar(&o.dryRun, "dry-run", false, "with --remove-if-dead: print what would be removed, remove nothing")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n", usageLine)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nexit codes: 0 completed and durable, 1 not complete, 2 failed, 3 still running,\n"+
			"4 completed but not durable, 5 alive but stalled,\n"+
			"6 says completed but its directories are missing or not the status file owner's, 64 usage error\n"+
			"--remove-if-dead: 0 removed (--dry-run: would be), 1 refused, 2 removal failed part way, 64 usage error\n")
	}
	var paths []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["remove-if-dead"] {
		switch {
		case o.remove == "":
			return nil, usagef(stderr, "--remove-if-dead needs a FILE")
		case strings.HasPrefix(o.remove, "-"):
			return nil, usagef(stderr, "--remove-if-dead takes the status file as its value, not %q: put the other options first (--dry-run --remove-if-dead FILE)", o.remove)
		case len(paths) != 0:
			return nil, usagef(stderr, "--remove-if-dead FILE takes no other path, got %q", paths)
		case o.wait || set["timeout"] || set["interval"] || set["pid"]:
			return nil, usagef(stderr, "--remove-if-dead does not go with --wait, --timeout, --interval or --pid")
		case o.lease < 0:
			return nil, usagef(stderr, "--lease must not be negative")
		}
		return o, notDirectory(o.remove, stderr)
	}
	switch {
	case set["lease"] || set["dry-run"]:
		return nil, usagef(stderr, "--lease and --dry-run need --remove-if-dead")
	case len(paths) != 1:
		return nil, usagef(stderr, "want one FILE, got %d", len(paths))
	case paths[0] == "":
		return nil, usagef(stderr, "empty path")
	case !o.wait && (set["timeout"] || set["interval"]):
		return nil, usagef(stderr, "--timeout and --interval need --wait")
	case o.timeout < 0:
		return nil, usagef(stderr, "--timeout must not be negative")
	case o.interval <= 0:
		return nil, usagef(stderr, "--interval must be positive")
	case set["pid"] && o.pid <= 0:
		return nil, usagef(stderr, "--pid must be a process id, got %d", o.pid)
	}
	o.path = paths[0]
	return o, notDirectory(o.path, stderr)
}

// notDirectory refuses a directory where the status file is wanted: a
// backup directory holds no status file.
func notDirectory(path string, stderr io.Writer) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return usagef(stderr, "%s %v", path, status.ErrIsDirectory)
	}
	return nil
}

func usagef(stderr io.Writer, format string, args ...any) error {
	printLine(stderr, "pgbb-status: "+format, args...)
	fmt.Fprint(stderr, usageLine)
	return errUsage
}

// printLine writes one line of text output: format and args, escaped
// (status.Escape: a newline or a terminal control in a path, a name or a
// reason is shown as an escape), then a newline. All text output goes
// through it, or through escaping.
func printLine(w io.Writer, format string, args ...any) {
	fmt.Fprintln(w, status.Escape(fmt.Sprintf(format, args...)))
}

// escaping is w with everything written escaped (status.Escape) but its
// newlines and tabs (the layout of the flag package's usage text), for
// what the flag package prints (the arguments given).
type escaping struct{ w io.Writer }

func (e escaping) Write(p []byte) (int, error) {
	lines := strings.Split(string(p), "\n")
	for i, l := range lines {
		fields := strings.Split(l, "\t")
		for j, f := range fields {
			fields[j] = status.Escape(f)
		}
		lines[i] = strings.Join(fields, "\t")
	}
	if _, err := io.WriteString(e.w, strings.Join(lines, "\n")); err != nil {
		return 0, err
	}
	return len(p), nil
}

// run is the command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...status.Option) int {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return exitUsage
	}
	if o.remove != "" {
		if o.lease > 0 {
			opts = append(opts, status.WithLease(o.lease))
		}
		rm := status.RemoveIfDead(ctx, o.remove, o.dryRun, opts...)
		if o.json {
			writeJSON(stdout, stderr, rm)
		} else {
			writeRemoval(stdout, rm)
		}
		return rm.ExitCode
	}
	if o.pid != 0 {
		opts = append(opts, status.WithRunPID(o.pid))
	}
	var r *status.Report
	if o.wait {
		if o.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, o.timeout)
			defer cancel()
		}
		r = status.Wait(ctx, o.path, o.interval, opts...)
	} else {
		r = status.Check(o.path, opts...)
	}
	if o.json {
		writeJSON(stdout, stderr, r)
	} else {
		writeText(stdout, r)
	}
	return r.ExitCode
}

func writeJSON(stdout, stderr io.Writer, v any) {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		printLine(stderr, "pgbb-status: %v", err)
	}
}

// writeRemoval prints the result of --remove-if-dead for people.
func writeRemoval(w io.Writer, rm *status.Removal) {
	switch {
	case rm.Refused != "":
		printLine(w, "%s: refused, nothing removed: %s", rm.StatusFile, rm.Refused)
	case rm.DryRun:
		printLine(w, "%s: the run is over and did not complete (%s); would do:", rm.StatusFile, rm.Over)
	case rm.Error != "":
		printLine(w, "%s: the run is over and did not complete (%s); removal FAILED part way: %s", rm.StatusFile, rm.Over, rm.Error)
	default:
		printLine(w, "%s: the run is over and did not complete (%s); removed:", rm.StatusFile, rm.Over)
	}
	if rm.Refused == "" {
		for _, st := range rm.Steps {
			mark := "  "
			if rm.Error != "" {
				mark = "  [not done] "
				if st.Done {
					mark = "  [done] "
				}
			}
			line := st.String()
			if st.Tombstone != "" && !st.Done && !st.Resumed {
				line += ", now at " + st.Tombstone
			}
			printLine(w, "%s%s", mark, line)
		}
	}
	switch {
	case rm.Owner != "" && rm.Refused == "":
		printLine(w, "  (everything owned by %s, the owner of the status file)", rm.Owner)
	case rm.Owner != "":
		printLine(w, "  (the status file is owned by %s)", rm.Owner)
	}
	what := map[int]string{status.ExitRemoved: "removed", status.ExitRefused: "refused", status.ExitRemoveFailed: "removal failed"}[rm.ExitCode]
	if rm.DryRun && rm.ExitCode == status.ExitRemoved {
		what = "dry run: nothing removed"
	}
	printLine(w, "exit %d (%s)", rm.ExitCode, what)
}

// writeText prints r for people.
func writeText(w io.Writer, r *status.Report) {
	printLine(w, "%s: %s", r.Path, r.Summary)
	row := func(name, format string, args ...any) {
		printLine(w, "  %-12s %s", name, fmt.Sprintf(format, args...))
	}
	if r.Error != "" {
		row("error", "%s", r.Error)
	}
	if s := r.Status; s != nil {
		row("status file", "%s (format %d, checksum %08X ok)", r.StatusFile, s.Version, s.Checksum)
	}
	if r.Owner != nil {
		row("owner", "%s, the owner of the status file", r.Owner)
	}
	if s := r.Status; s != nil {
		if len(s.UnknownKeys) > 0 {
			row("note", "ignored the lines of keys this reader does not know (a later pg_basebackup added them): %s",
				strings.Join(s.UnknownKeys, ", "))
		}
		row("status", "%s", s.State)
		row("started", "%s by pid %d on host %s", timeOrUnknown(s.StartTime), s.PID, s.Host)
		if s.State != status.StateInProgress {
			row("ended", "%s", timeOrUnknown(s.EndTime))
		}
		row("label", "%s", s.Label)
		row("program", "%s", s.ProgramVersion)
		dest := "format " + s.Format
		if s.Target != "" {
			dest = "target " + s.Target
		}
		sync := "sync on"
		if !s.Sync {
			sync = "sync off (--no-sync)"
		}
		row("backup", "%s, WAL method %s, %s", dest, s.WALMethod, sync)
		for _, d := range s.Directories {
			row("directory", "%s", d)
		}
		if p := r.Progress; p != nil {
			row("phase", "%s, updated %s, %s ago (every %s)", p.Phase, timeOrUnknown(p.UpdateTime), p.Age, interval(p.UpdateInterval))
			if p.Percent != nil {
				row("progress", "%d of %d bytes (%.1f%%, the total is the server's estimate)", p.BytesReceived, p.BytesTotal, *p.Percent)
			} else {
				row("progress", "%d bytes (the server gave no total)", p.BytesReceived)
			}
			if p.Rate > 0 {
				from := "since START TIME"
				if p.RateFrom == "samples" {
					from = "between the files seen while waiting"
				}
				left := "time left unknown"
				if p.Remaining != nil {
					left = fmt.Sprintf("about %s left for the data (then WAL and sync)", *p.Remaining)
				}
				row("rate", "%.0f bytes/s %s; %s", p.Rate, from, left)
			}
			if p.Note != "" {
				row("stall", "%s", p.Note)
			} else if p.StallAge > 0 && r.Verdict == status.Running {
				row("stall", "stalled if no update for %s", p.StallAge)
			}
		}
		if s.Started {
			end := "..."
			if s.State == status.StateCompleted {
				end = s.EndLSN.String()
			}
			row("WAL", "%s to %s on timeline %d, system identifier %d", s.StartLSN, end, s.Timeline, s.SystemID)
		}
		if s.State == status.StateCompleted {
			row("durable", "%s", map[bool]string{true: "yes", false: "no"}[s.Durable])
		}
		if s.State == status.StateFailed {
			row("reason", "%s", s.Reason)
		}
	}
	if l := r.Liveness; l != nil {
		row("liveness", "%s", l.Reason)
	}
	verdict := r.Verdict.String()
	if r.TimedOut {
		verdict += ", gave up waiting"
	}
	printLine(w, "exit %d (%s)", r.ExitCode, verdict)
}

func interval(seconds int) string {
	if seconds == 0 {
		return "phase change only"
	}
	return (time.Duration(seconds) * time.Second).String()
}

func timeOrUnknown(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return strings.TrimSpace(t.UTC().Format(status.TimeLayout))
}
