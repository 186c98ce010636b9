package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pgbb/pgbb/harness/trial"
)

// progress prints a bar and one line per trial.
type progress struct {
	mu         sync.Mutex
	w          io.Writer
	done       int
	total      int
	violations int
}

func (p *progress) record(r *trial.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	p.violations += len(r.Violations)
	const width = 20
	n := min(width, p.done*width/max(1, p.total))
	bar := strings.Repeat("#", n) + strings.Repeat(".", width-n)
	at := "no fault"
	if r.Fault.Fired {
		at = "@" + r.Fault.Phase
	}
	exit := fmt.Sprint(r.Exit.Code)
	if r.Exit.Signal != "" {
		exit = r.Exit.Signal
	}
	st := "-"
	switch {
	case r.Status.Valid:
		st = r.Status.State
	case r.Status.Present:
		st = "INVALID"
	}
	or := "-"
	if r.Oracle != nil {
		or = "incomplete"
		if r.Oracle.Complete {
			or = "complete"
		}
	}
	mark := "ok"
	if len(r.Violations) > 0 {
		mark = "VIOLATION " + r.Violations[0].Invariant
	}
	orphan := ""
	if r.Orphans.Alive {
		orphan = " orphan"
	}
	fmt.Fprintf(p.w, "[%s] %d/%d %-28s %-20s %-14s exit=%-8s status=%-11s oracle=%-10s%s %s (%s)\n", bar, p.done, p.total, r.ID, r.Plan, at,
		exit, st, or, orphan, mark, r.Elapsed.Round(100*time.Millisecond))
}
