// Command pgbb-explore checks every crash state of the finishing part of
// a pg_basebackup run, ALICE-style. Per scenario it makes one clean run on
// the power-loss layer (the campaign's control, then the journaled
// calibration run of the disk plans), then replays the run's journal
// offline (harness/explore): at every prefix of the finishing part, the
// durable state, every subset of the last K unsynced operations
// persisted, and the torn writes of the status file, each judged without
// a server; a sample of the states the checker cannot decide goes to the
// oracle. Then it journals runs that fail (-failing: an I/O error during
// the final sync, SIGTERM while streaming), each on a source cluster of
// its own, and explores each from its failure on by the rules of a
// failing run (explore.FailChecker): never "completed", "failed" with its
// REASON, only once the WAL child and the clean-up are done, durable at
// the exit, and no state that blocks a retry (the directories empty, or
// cleared by --remove-if-dead, judged by the reader's own code on the
// state written to disk). It exits 1 when a state breaks a rule, 2 when
// it could not run.
//
//	pgbb-explore [-scenarios FILES] [-pg 18] [-variant patched] [-patches DIRS] [-k 4] [-ksweep 1-6] [-scale N] [-oracle N] [-failing eio-sync,sigterm] [-clean=false] [-seed 1] [-out DIR]
//	pgbb-explore -journal FILE [-status REL] [-k 4] [-from N] [-reason WORD]  (explore a saved journal; -reason: a failing run's)
//	pgbb-explore -journal FILE -materialise STATE -out DIR [-judge]    (one state on disk, judged by the oracle)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	code, err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgbb-explore: %v\n", err)
	}
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	scenarios   string
	pg          string
	variant     string
	patches     string
	k           int
	ksweep      []int
	scale       int
	oracle      int
	out         string
	journal     string
	status      string
	from        int
	materialise string
	judge       bool
	record      string
	failing     string
	clean       bool
	seed        int64
	reason      string
}

// parseOptions parses the command line.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	var ksweep string
	fs := flag.NewFlagSet("pgbb-explore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenarios, "scenarios", "scenarios/smoke/powerloss.json,scenarios/power/tar-powerloss.json,scenarios/smoke/nosync-powerloss.json", "scenario files, comma-separated: their format, tablespaces and scale (the fault plans are not run)")
	fs.StringVar(&o.pg, "pg", "18", "PostgreSQL major version")
	fs.StringVar(&o.variant, "variant", "patched", "patched or stock")
	fs.StringVar(&o.patches, "patches", "", "patch series directories, colon-separated (default patches/pg<version>)")
	fs.IntVar(&o.k, "k", 4, "combine every subset of the last K unsynced operations at each prefix")
	fs.StringVar(&ksweep, "ksweep", "", "also explore with each K of this range (1-6) and print the counts")
	fs.IntVar(&o.scale, "scale", 0, "pgbench scale of the source dataset (0: the scenario's)")
	fs.IntVar(&o.oracle, "oracle", 2, "at most this many undecided states per scenario go to the oracle")
	fs.StringVar(&o.out, "out", "", "run directory for journals, records and results (default .cache/explore/<time>); with -materialise the state's directory")
	fs.StringVar(&o.journal, "journal", "", "explore this saved journal instead of making a run")
	fs.StringVar(&o.status, "status", "", "the status file's path relative to the layer's root (default: the one the journal names, else <target>/backup_status)")
	fs.IntVar(&o.from, "from", -1, "with -journal: the index of the first operation explored (-1: the finishing part)")
	fs.StringVar(&o.materialise, "materialise", "", "with -journal: write this state (p<op>[+<op>,...][~<op>:<bytes>]) into -out")
	fs.BoolVar(&o.judge, "judge", false, "with -materialise: have the oracle judge the state (builds or reuses -pg/-variant/-patches)")
	fs.StringVar(&o.failing, "failing", "eio-sync,sigterm", "failing runs to journal and explore per scenario, comma-separated (eio-sync: EIO on an open of the final sync; sigterm: SIGTERM while streaming), or none")
	fs.BoolVar(&o.clean, "clean", true, "make and explore the clean run of each scenario (false: only its failing runs)")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the runs (the clean run's campaign, the failing runs' faults)")
	fs.StringVar(&o.reason, "reason", "", "with -journal: explore it as a failing run whose REASON must name this word (from its failure on)")
	fs.StringVar(&o.record, "record", "", "with -judge: the run's trial record (default the journal's name with .record.json)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	var err error
	if o.ksweep, err = parseRange(ksweep); err != nil {
		return o, err
	}
	switch {
	case o.k < 0 || o.k > 12:
		return o, fmt.Errorf("-k %d: want 0 to 12", o.k)
	case o.materialise != "" && (o.journal == "" || o.out == ""):
		return o, errors.New("-materialise needs -journal and -out")
	case o.judge && o.materialise == "":
		return o, errors.New("-judge goes with -materialise")
	case o.reason != "" && o.journal == "":
		return o, errors.New("-reason goes with -journal")
	}
	if _, err := parseFailing(o.failing); err != nil {
		return o, err
	}
	return o, nil
}

// parseRange parses "1-6" or "4" into the Ks.
func parseRange(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || a < 0 || b < a || b > 12 {
		return nil, fmt.Errorf("-ksweep %q: want a range like 1-6 within 0-12", s)
	}
	var out []int
	for k := a; k <= b; k++ {
		out = append(out, k)
	}
	return out, nil
}

// run runs the command and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	o, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case o.materialise != "":
		return materialise(ctx, o, stdout, stderr)
	case o.journal != "":
		return exploreSaved(ctx, o, stdout)
	}
	return exploreScenarios(ctx, o, stdout, stderr)
}
