// Package overhead measures what the status file costs: it backs up the
// same cluster with a stock and a patched pg_basebackup, interleaved, and
// compares the median wall times, and the median CPU times of
// pg_basebackup's process tree (steadier than wall time on a machine whose
// disk speed drifts).
package overhead

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/proc"
)

// Client is one pg_basebackup under comparison.
type Client struct {
	// Name labels the client in the results ("stock", "patched").
	Name string
	// BinDir holds its pg_basebackup.
	BinDir string
	// StatusFile makes it write a status file (--status-file), next to
	// its target directory, outside it; the file goes with the backup.
	StatusFile bool
}

// Config says what to measure.
type Config struct {
	// Stock and Patched are the two clients.
	Stock, Patched Client
	// Server is the cluster the backups are taken from; it must be
	// started and hold the dataset.
	Server *cluster.Cluster
	// Acct runs pg_basebackup and owns its target directories.
	Acct osuser.Account
	// ScratchDir receives the backups, one at a time.
	ScratchDir string
	// Runs is how many backups each client takes (at least 5).
	Runs int
	// Args are extra pg_basebackup arguments (the defaults take a plain
	// backup with WAL streaming, a fast checkpoint and syncing on).
	Args []string
	// Log receives a line per backup; nil discards.
	Log io.Writer
}

// Result holds the measured times.
type Result struct {
	// Stock and Patched are the wall times of each client's backups, in
	// the order taken.
	Stock, Patched []time.Duration
	// StockCPU and PatchedCPU are the user plus system CPU times of the
	// same backups' pg_basebackup and its WAL streaming child.
	StockCPU, PatchedCPU []time.Duration
}

// Median returns the median of ds.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ratio returns the median patched wall time divided by the median stock
// wall time.
func (r Result) Ratio() float64 { return ratio(r.Patched, r.Stock) }

// CPURatio returns the median patched CPU time divided by the median stock
// CPU time.
func (r Result) CPURatio() float64 { return ratio(r.PatchedCPU, r.StockCPU) }

// PairedRatio returns the median, over the rounds, of the patched time
// divided by the stock time of the same round (the two backups ran one
// after the other, so a drift of the machine cancels out), with an
// approximate 95% confidence interval for that median from the order
// statistics (the sign test's interval). With fewer than 6 rounds the
// interval is the whole range.
func (r Result) PairedRatio() (median, low, high float64) {
	n := min(len(r.Stock), len(r.Patched))
	if n == 0 {
		return 0, 0, 0
	}
	rs := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if r.Stock[i] > 0 {
			rs = append(rs, float64(r.Patched[i])/float64(r.Stock[i]))
		}
	}
	if len(rs) == 0 {
		return 0, 0, 0
	}
	slices.Sort(rs)
	n = len(rs)
	median = rs[n/2]
	if n%2 == 0 {
		median = (rs[n/2-1] + rs[n/2]) / 2
	}
	k := int(math.Floor((float64(n) - 1.96*math.Sqrt(float64(n))) / 2))
	if n < 6 || k < 0 {
		return median, rs[0], rs[n-1]
	}
	return median, rs[k], rs[n-1-k]
}

func ratio(patched, stock []time.Duration) float64 {
	s := Median(stock)
	if s == 0 {
		return 0
	}
	return float64(Median(patched)) / float64(s)
}

// Measure takes cfg.Runs backups with each client, alternating which one
// goes first in each round (ABBA) so that a drift of the machine, such as
// the page cache warming up, weighs on both alike. Each backup is removed
// before the next one starts.
func Measure(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Runs < 5 {
		return Result{}, fmt.Errorf("overhead: at least 5 runs per client are needed, got %d", cfg.Runs)
	}
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	var res Result
	for round := 0; round < cfg.Runs; round++ {
		order := []Client{cfg.Stock, cfg.Patched}
		if round%2 == 1 {
			order = []Client{cfg.Patched, cfg.Stock}
		}
		for _, c := range order {
			d, cpu, err := backupOnce(ctx, cfg, c, round)
			if err != nil {
				return res, err
			}
			fmt.Fprintf(log, "round %d: %-8s %v (cpu %v)\n", round+1, c.Name, d.Round(time.Millisecond), cpu.Round(time.Millisecond))
			if c == cfg.Stock {
				res.Stock, res.StockCPU = append(res.Stock, d), append(res.StockCPU, cpu)
			} else {
				res.Patched, res.PatchedCPU = append(res.Patched, d), append(res.PatchedCPU, cpu)
			}
		}
	}
	return res, nil
}

// backupOnce times one backup by client c and removes it afterwards. It
// returns the wall time and the CPU time of the process tree (the rusage
// of the waited-for pg_basebackup includes its reaped WAL child).
func backupOnce(ctx context.Context, cfg Config, c Client, round int) (time.Duration, time.Duration, error) {
	return backupWith(ctx, cfg, c, round, nil)
}

// StatusFsyncs takes one more backup with client c, untimed, under
// strace, and returns how many fsync and fdatasync calls went to the
// status file, its temporary files or their directory, and the backup's
// wall time (strace slows it down: divide by it only for a rate). The
// target's own directory is another one, so the backup's fsyncs do not
// count.
func StatusFsyncs(ctx context.Context, cfg Config, c Client, strace string) (int, time.Duration, error) {
	trace := filepath.Join(cfg.ScratchDir, c.Name+"-fsyncs.strace")
	defer os.Remove(trace)
	wrap := []string{strace, "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", trace}
	d, _, err := backupWith(ctx, cfg, c, -1, wrap)
	if err != nil {
		return 0, 0, err
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		return 0, 0, fmt.Errorf("overhead: read the strace output: %w", err)
	}
	return countStatusFsyncs(string(data), statusPath(cfg, c, -1)), d, nil
}

// countStatusFsyncs counts the lines of strace -y output that fsync the
// status file statusFile, one of its temporary files (statusFile.PID.tmp)
// or the directory they are in.
func countStatusFsyncs(trace, statusFile string) int {
	dir := filepath.Dir(statusFile)
	n := 0
	for _, line := range strings.Split(trace, "\n") {
		open := strings.Index(line, "sync(")
		if open < 0 {
			continue
		}
		rest := line[open+len("sync("):]
		lt, gt := strings.Index(rest, "<"), strings.Index(rest, ">")
		if lt < 0 || gt < lt {
			continue
		}
		path := rest[lt+1 : gt]
		if path == dir || path == statusFile || strings.HasPrefix(path, statusFile+".") {
			n++
		}
	}
	return n
}

// targetPath is client c's target directory in round (-1: the traced
// backup).
func targetPath(cfg Config, c Client, round int) string {
	if round < 0 {
		return filepath.Join(cfg.ScratchDir, c.Name+"-traced")
	}
	return filepath.Join(cfg.ScratchDir, fmt.Sprintf("%s-%d", c.Name, round))
}

// statusPath is where client c's backup of round writes its status file:
// next to the target, on the same file system, outside it.
func statusPath(cfg Config, c Client, round int) string {
	return targetPath(cfg, c, round) + ".status"
}

// backupWith runs one backup by client c, its command prefixed by wrap
// (a tracer, or nothing), and removes it afterwards.
func backupWith(ctx context.Context, cfg Config, c Client, round int, wrap []string) (time.Duration, time.Duration, error) {
	target := targetPath(cfg, c, round)
	args := append(slices.Clone(wrap),
		filepath.Join(c.BinDir, "pg_basebackup"),
		"-D", target, "-h", cfg.Server.Host(), "-p", strconv.Itoa(cfg.Server.Port), "-U", "postgres",
		"--checkpoint=fast", "--wal-method=stream",
	)
	args = append(args, cfg.Args...)
	statusFile := statusPath(cfg, c, round)
	if c.StatusFile {
		args = append(args, "--status-file="+statusFile)
	}
	cmd := proc.Command(ctx, cfg.Acct, nil, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("overhead: %s backup into %s: %w\n%s", c.Name, target, err, proc.Tail(out.String(), 15))
	}
	d := time.Since(start)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if err := os.RemoveAll(target); err != nil {
		return 0, 0, fmt.Errorf("overhead: remove %s: %w", target, err)
	}
	if c.StatusFile {
		if err := os.Remove(statusFile); err != nil {
			return 0, 0, fmt.Errorf("overhead: %s backup into %s wrote no status file: %w", c.Name, target, err)
		}
	}
	return d, cpu, nil
}
