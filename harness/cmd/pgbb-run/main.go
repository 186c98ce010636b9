// Command pgbb-run runs a stock (unpatched) pg_basebackup, PostgreSQL 13
// to 18, and writes the backup status file that the patched
// pg_basebackup writes with --status-file, readable by pgbb-status:
//
//	pgbb-run --status-file=FILE [--status-file-refresh=SECONDS] [--stop-timeout=D]
//	         [--no-clean-on-signal] -- pg_basebackup ARGS...
//
// FILE says "in progress" before pg_basebackup starts, is rewritten while
// it runs (phase, progress with -P), and says "completed" only after
// pg_basebackup exited 0, printed no error during its final sync, and
// pgbb-run's own sync pass over every directory of the backup succeeded;
// otherwise "failed", with the reason. pg_basebackup runs with --verbose
// (added unless given), in pgbb-run's process group, and dies with it.
//
// SIGINT or SIGTERM is forwarded to pg_basebackup and its group, which
// are waited for --stop-timeout (default 10s) and then killed; the
// directories the run created are removed (unless pg_basebackup was
// given --no-clean, or --no-clean-on-signal), and FILE says failed. A
// second signal exits at once.
//
// Exit code: pg_basebackup's; 1 if the sync failed; 128+N after signal
// N; 64 for a usage error. A status file that cannot be written only
// warns.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgbb/pgbb/harness/status"
	"github.com/pgbb/pgbb/harness/wrapper"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, sigs))
}

// run is the command: it parses args, prepares the process (name,
// process group) and runs pg_basebackup; it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 64
	}
	if err != nil {
		fmt.Fprintf(stderr, "pgbb-run: %v\n", err)
		return 64
	}
	// The reader's liveness check requires the writer, the PID of the
	// status file, to be named pg_basebackup.
	if err := wrapper.SetProcessName(status.WriterName); err != nil {
		fmt.Fprintf(stderr, "pgbb-run: warning: %v: pgbb-status will call this run dead while it runs\n", err)
	}
	note, err := wrapper.LeadGroup()
	if err != nil {
		fmt.Fprintf(stderr, "pgbb-run: warning: could not lead a process group: %v\n", err)
	}
	if note != "" {
		fmt.Fprintf(stderr, "pgbb-run: warning: %s\n", note)
	}
	if wrapper.ProcessGroup() == os.Getpid() {
		cfg.Group = os.Getpid()
	}
	cfg.Stdin, cfg.Stdout, cfg.Stderr, cfg.Signals = stdin, stdout, stderr, sigs
	return wrapper.Run(ctx, cfg)
}

// parseFlags reads pgbb-run's own flags; the pg_basebackup command line
// follows them (after "--").
func parseFlags(args []string, stderr io.Writer) (wrapper.Config, error) {
	fs := flag.NewFlagSet("pgbb-run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgbb-run --status-file=FILE [--status-file-refresh=SECONDS] [--stop-timeout=D] [--no-clean-on-signal] -- pg_basebackup ARGS...")
		fs.PrintDefaults()
	}
	file := fs.String("status-file", "", "the status file to write (outside every directory the backup writes)")
	refresh := fs.Int("status-file-refresh", 5, "seconds between rewrites while data arrives and while waiting for WAL (0: at phase changes only)")
	grace := fs.Duration("stop-timeout", 10*time.Second, "how long a signalled pg_basebackup is waited for before SIGKILL")
	keep := fs.Bool("no-clean-on-signal", false, "keep what the run wrote when a signal ends it")
	if err := fs.Parse(args); err != nil {
		return wrapper.Config{}, err
	}
	switch {
	case *file == "":
		return wrapper.Config{}, errors.New("--status-file is required")
	case fs.NArg() == 0:
		return wrapper.Config{}, errors.New("no pg_basebackup command given (after --)")
	case *refresh < 0:
		return wrapper.Config{}, errors.New("--status-file-refresh must be 0 or more")
	}
	return wrapper.Config{
		StatusFile: *file, Refresh: time.Duration(*refresh) * time.Second,
		Argv: fs.Args(), Grace: *grace, KeepOnSignal: *keep,
	}, nil
}
