// Package workload writes to the source cluster while backups run, so that
// WAL keeps flowing and the backup must capture a moving database: a few
// clients run pgbench's TPC-B-like transaction through pgx, and one canary
// writer inserts canary rows with increasing ids, one commit at a time,
// recording which ids are committed. The oracle compares a restored
// backup's canary rows with Marks taken before and after the backup.
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbb/pgbb/harness/cluster"
)

// Mark is the canary writer's position at one moment.
type Mark struct {
	// Committed is the highest canary id whose commit was acknowledged.
	Committed int64 `json:"committed"`
	// Attempted is the highest canary id whose insert was sent (committed
	// or not).
	Attempted int64 `json:"attempted"`
}

// Stats counts what the workload did.
type Stats struct {
	// Transactions is the number of committed TPC-B-like transactions.
	Transactions int64 `json:"transactions"`
	// Canaries is the number of committed canary rows.
	Canaries int64 `json:"canaries"`
	// Errors is the number of failed statements (expected while the server
	// is down).
	Errors int64 `json:"errors"`
}

// Workload is a running write workload.
type Workload struct {
	pool      *pgxpool.Pool
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	committed atomic.Int64
	attempted atomic.Int64
	txns      atomic.Int64
	canaries  atomic.Int64
	errs      atomic.Int64
	scale     int
}

// Start starts clients TPC-B-like writers and the canary writer against
// the dataset of cluster.LoadDataset. Canary ids continue after the
// highest id in the table.
func Start(ctx context.Context, connString string, scale, clients int, seed uint64) (*Workload, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	cfg.MaxConns = int32(clients + 2)
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	var maxID int64
	if err := pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM "+cluster.CanaryTable).Scan(&maxID); err != nil {
		pool.Close()
		return nil, fmt.Errorf("workload: read canary position: %w", err)
	}
	w := &Workload{pool: pool, scale: scale}
	w.committed.Store(maxID)
	w.attempted.Store(maxID)
	wctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Add(1)
	go w.canary(wctx)
	for i := 0; i < clients; i++ {
		w.wg.Add(1)
		go w.tpcb(wctx, rand.New(rand.NewPCG(seed, uint64(i))))
	}
	return w, nil
}

// Mark returns the canary writer's current position.
func (w *Workload) Mark() Mark {
	// Attempted first: a commit acknowledged after this read is still
	// covered by Attempted.
	return Mark{Committed: w.committed.Load(), Attempted: w.attempted.Load()}
}

// Stats returns the counts so far.
func (w *Workload) Stats() Stats {
	return Stats{Transactions: w.txns.Load(), Canaries: w.canaries.Load(), Errors: w.errs.Load()}
}

// Stop stops every writer and closes the connections.
func (w *Workload) Stop() Stats {
	w.cancel()
	w.wg.Wait()
	w.pool.Close()
	return w.Stats()
}

// pause waits after an error (the server may be restarting).
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// canary inserts ids 1, 2, 3, ... one commit at a time. An insert whose
// outcome is unknown (the connection broke, the server stopped) is retried
// with the same id until it succeeds (ON CONFLICT DO NOTHING: it may have
// committed before the break), so the table never has a gap: at any moment
// the committed ids are exactly 1..Committed, plus perhaps Attempted.
func (w *Workload) canary(ctx context.Context) {
	defer w.wg.Done()
	for ctx.Err() == nil {
		id := w.committed.Load() + 1
		w.attempted.Store(id)
		_, err := w.pool.Exec(ctx, "INSERT INTO "+cluster.CanaryTable+" (id, note) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
			id, fmt.Sprintf("canary %d", id))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.errs.Add(1)
			pause(ctx, 50*time.Millisecond)
			continue
		}
		w.committed.Store(id)
		w.canaries.Add(1)
		pause(ctx, 2*time.Millisecond)
	}
}

func (w *Workload) tpcb(ctx context.Context, rng *rand.Rand) {
	defer w.wg.Done()
	for ctx.Err() == nil {
		aid := 1 + rng.IntN(100000*w.scale)
		tid := 1 + rng.IntN(10*w.scale)
		bid := 1 + rng.IntN(w.scale)
		delta := rng.IntN(10001) - 5000
		err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", delta, aid)
			b.Queue("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", delta, tid)
			b.Queue("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2", delta, bid)
			b.Queue("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, now())", tid, bid, aid, delta)
			return tx.SendBatch(ctx, b).Close()
		})
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return
			}
			w.errs.Add(1)
			pause(ctx, 50*time.Millisecond)
			continue
		}
		w.txns.Add(1)
		// Enough to keep WAL flowing during every backup, not so much
		// that the writers starve the backup and the oracle of CPU.
		pause(ctx, 2*time.Millisecond)
	}
}
