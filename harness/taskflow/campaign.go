package taskflow

import (
	"context"
	"sync"
)

// Flows returns the flows of sc: one per variant and policy, and the
// stall flow if sc asks for one.
func (sc Scenario) Flows() []Flow {
	var fs []Flow
	for _, p := range sc.Policies {
		for _, v := range []Variant{Stock, Patched} {
			fs = append(fs, Flow{Variant: v, Policy: p})
		}
	}
	if sc.Stall > 0 {
		fs = append(fs, Flow{Variant: Patched, Policy: Leave, Stall: true})
	}
	return fs
}

// RunScenario runs the unfaulted baseline of each variant, then every
// flow of sc side by side (the runs are throttled, so they share the
// machine without starving one another), and judges the outcomes.
func (e *Env) RunScenario(ctx context.Context, sc Scenario) *Result {
	res := &Result{Scenario: sc}
	if e.oracle == nil {
		e.oracle = make(chan struct{}, 1)
	}
	res.Unfaulted = e.runAll(ctx, sc, []Flow{{Variant: Stock, Unfaulted: true}, {Variant: Patched, Unfaulted: true}})
	if ctx.Err() == nil {
		res.Flows = e.runAll(ctx, sc, sc.Flows())
	}
	res.Judge()
	return res
}

// runAll runs flows concurrently and returns their outcomes in order.
func (e *Env) runAll(ctx context.Context, sc Scenario, flows []Flow) []Outcome {
	out := make([]Outcome, len(flows))
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = e.Run(ctx, sc, f)
		}()
	}
	wg.Wait()
	return out
}
