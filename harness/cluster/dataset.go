package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
)

// CanaryTable is the table of known rows whose presence in a restored
// backup the oracle checks: ids are inserted in increasing order by one
// writer, so the rows committed before a backup began are exactly the ids
// up to a known one.
const CanaryTable = "canary"

// Database is the database the dataset lives in.
const Database = "postgres"

// InitialCanaryRows is how many canary rows the dataset starts with.
const InitialCanaryRows = 1000

// LoadDataset fills the started cluster: pgbench tables at scale, a canary
// table with InitialCanaryRows rows, and for each of tablespaces a
// tablespace under dir (ts1, ts2, ...) holding a table with data.
func (c *Cluster) LoadDataset(ctx context.Context, dir string, scale, tablespaces int) error {
	if _, err := c.Run(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(scale), "-h", c.Host(),
		"-p", strconv.Itoa(c.Port), "-U", "postgres", Database); err != nil {
		return fmt.Errorf("load dataset (pgbench -i -s %d): %w", scale, err)
	}
	conn, err := c.Connect(ctx, Database)
	if err != nil {
		return fmt.Errorf("load dataset: %w", err)
	}
	defer conn.Close(context.Background())
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())`, CanaryTable),
		fmt.Sprintf(`INSERT INTO %s (id, note) SELECT g, 'initial ' || g FROM generate_series(1, %d) g`, CanaryTable, InitialCanaryRows),
	}
	for i := 1; i <= tablespaces; i++ {
		loc := filepath.Join(dir, fmt.Sprintf("ts%d", i))
		if err := c.Acct.MkdirAll(loc, 0o700); err != nil {
			return fmt.Errorf("load dataset: tablespace %s: %w", loc, err)
		}
		c.Tablespaces = append(c.Tablespaces, loc)
		stmts = append(stmts,
			fmt.Sprintf(`CREATE TABLESPACE ts%d LOCATION '%s'`, i, loc),
			fmt.Sprintf(`CREATE TABLE ts_data%d (id int PRIMARY KEY, pad text NOT NULL) TABLESPACE ts%d`, i, i),
			fmt.Sprintf(`INSERT INTO ts_data%d SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, %d) g`, i, 20000*scale),
		)
	}
	stmts = append(stmts, "CHECKPOINT")
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("load dataset: %s: %w", s, err)
		}
	}
	return nil
}
