// Package overhead measures what the status file costs: it backs up the
// same cluster with a stock and a patched pg_basebackup, interleaved, and
// compares the median wall times.
package overhead

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/proc"
)

// Client is one pg_basebackup under comparison.
type Client struct {
	// Name labels the client in the results ("stock", "patched").
	Name string
	// BinDir holds its pg_basebackup.
	BinDir string
}

// Config says what to measure.
type Config struct {
	// Stock and Patched are the two clients.
	Stock, Patched Client
	// Server is the cluster the backups are taken from; it must be
	// started and hold the dataset.
	Server *cluster.Cluster
	// Acct runs pg_basebackup and owns its target directories.
	Acct build.Account
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

// Result holds the measured wall times.
type Result struct {
	// Stock and Patched are the wall times of each client's backups, in
	// the order taken.
	Stock, Patched []time.Duration
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

// Ratio returns the median patched time divided by the median stock time.
func (r Result) Ratio() float64 {
	stock := Median(r.Stock)
	if stock == 0 {
		return 0
	}
	return float64(Median(r.Patched)) / float64(stock)
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
			d, err := backupOnce(ctx, cfg, c, round)
			if err != nil {
				return res, err
			}
			fmt.Fprintf(log, "round %d: %-8s %v\n", round+1, c.Name, d.Round(time.Millisecond))
			if c == cfg.Stock {
				res.Stock = append(res.Stock, d)
			} else {
				res.Patched = append(res.Patched, d)
			}
		}
	}
	return res, nil
}

// backupOnce times one backup by client c and removes it afterwards.
func backupOnce(ctx context.Context, cfg Config, c Client, round int) (time.Duration, error) {
	target := filepath.Join(cfg.ScratchDir, fmt.Sprintf("%s-%d", c.Name, round))
	args := []string{
		filepath.Join(c.BinDir, "pg_basebackup"),
		"-D", target, "-h", cfg.Server.Host(), "-p", strconv.Itoa(cfg.Server.Port), "-U", "postgres",
		"--checkpoint=fast", "--wal-method=stream",
	}
	args = append(args, cfg.Args...)
	start := time.Now()
	if _, err := proc.Run(ctx, cfg.Acct, nil, args...); err != nil {
		return 0, fmt.Errorf("overhead: %s backup %d: %w", c.Name, round+1, err)
	}
	d := time.Since(start)
	if err := os.RemoveAll(target); err != nil {
		return 0, fmt.Errorf("overhead: remove %s: %w", target, err)
	}
	return d, nil
}
