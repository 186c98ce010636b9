package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/explore"
	"github.com/pgbb/pgbb/harness/oracle"
	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/trial"
)

// judgement is the oracle's verdict on one crash state.
type judgement struct {
	State    string `json:"state"`
	Complete bool   `json:"complete"`
	Reason   string `json:"reason,omitempty"`
}

// failed says whether the oracle rejected a state the status file said
// was completed (every state sent to it is one).
func failed(js []judgement) bool {
	for _, j := range js {
		if !j.Complete {
			return true
		}
	}
	return false
}

// judgeSample sends a seeded sample of at most o.oracle undecided states
// to the oracle, each materialised under dir.
func judgeSample(ctx context.Context, o options, tgt campaign.Target, rec *trial.Record, j *powerfs.Journal, res *explore.Result, dir string) ([]judgement, error) {
	ids := append([]string(nil), res.Undecided...)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(ids), func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
	defer os.RemoveAll(dir)
	var out []judgement
	for i, s := range ids[:min(o.oracle, len(ids))] {
		id, err := explore.ParseStateID(s)
		if err != nil {
			return out, err
		}
		v, err := judgeState(ctx, tgt, rec, j, id, filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			return out, err
		}
		out = append(out, judgement{State: s, Complete: v.Complete, Reason: v.Reason})
	}
	return out, nil
}

// judgeState materialises a state into dir/disk and has the oracle judge
// the backup in it.
func judgeState(ctx context.Context, tgt campaign.Target, rec *trial.Record, j *powerfs.Journal, id explore.StateID, dir string) (oracle.Verdict, error) {
	tree := filepath.Join(dir, "disk")
	if err := explore.Materialise(j, id, tree); err != nil {
		return oracle.Verdict{}, err
	}
	scratch := filepath.Join(dir, "oracle")
	if err := tgt.Acct.MkdirAll(scratch, 0o755); err != nil {
		return oracle.Verdict{}, err
	}
	target := filepath.Join(tree, "target")
	if rel, err := filepath.Rel(j.Meta["mountpoint"], j.Meta["target"]); err == nil && j.Meta["target"] != "" {
		target = filepath.Join(tree, rel)
	}
	sc := scenarioOf(rec)
	v, err := oracle.Judge(ctx, oracle.Input{BinDir: tgt.Build.BinDir, Acct: tgt.Acct, Target: target,
		Format: sc.format, WALMethod: sc.wal, Manifest: sc.manifest, Scratch: scratch, Before: rec.Before, After: rec.After})
	if err != nil {
		return v, fmt.Errorf("state %s: oracle: %w", id, err)
	}
	return v, nil
}

// runArgs are the pg_basebackup options the oracle needs, read back from
// a trial record's command line.
type runArgs struct {
	format, wal string
	manifest    bool
}

func scenarioOf(rec *trial.Record) runArgs {
	a := runArgs{format: "plain", wal: "stream", manifest: true}
	for _, arg := range rec.Args {
		switch {
		case strings.HasPrefix(arg, "--format="):
			a.format = strings.TrimPrefix(arg, "--format=")
		case strings.HasPrefix(arg, "--wal-method="):
			a.wal = strings.TrimPrefix(arg, "--wal-method=")
		case arg == "--no-manifest":
			a.manifest = false
		}
	}
	return a
}

// materialise writes one state of a saved journal into o.out and, with
// -judge, has the oracle judge it.
func materialise(ctx context.Context, o options, stdout, stderr io.Writer) (int, error) {
	j, err := powerfs.ReadJournalFile(o.journal)
	if err != nil {
		return 2, err
	}
	id, err := explore.ParseStateID(o.materialise)
	if err != nil {
		return 2, err
	}
	if !o.judge {
		if err := explore.Materialise(j, id, o.out); err != nil {
			return 2, err
		}
		fmt.Fprintf(stdout, "state %s written into %s\n", id, o.out)
		return 0, nil
	}
	if o.record == "" {
		o.record = strings.TrimSuffix(o.journal, ".journal") + ".record.json"
	}
	var rec trial.Record
	data, err := os.ReadFile(o.record)
	if err == nil {
		err = json.Unmarshal(data, &rec)
	}
	if err != nil {
		return 2, fmt.Errorf("the run's record: %w", err)
	}
	tgt, err := prepare(ctx, o, stderr)
	if err != nil {
		return 2, err
	}
	v, err := judgeState(ctx, tgt, &rec, j, id, o.out)
	if err != nil {
		return 2, err
	}
	fmt.Fprintf(stdout, "state %s in %s: oracle complete=%v %s\n", id, o.out, v.Complete, v.Reason)
	if !v.Complete {
		return 1, nil
	}
	return 0, nil
}
