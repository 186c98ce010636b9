package taskflow

import (
	"context"
	"sync"
	"time"
)

// Flows returns the flows of sc: one per variant and policy, the stall
// flow if sc asks for one, and one fresh flow per variant and fresh
// policy.
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
	for _, p := range sc.FreshPolicies {
		for _, v := range []Variant{Stock, Patched} {
			fs = append(fs, Flow{Variant: v, Policy: p, Fresh: true})
		}
	}
	return fs
}

// StartSpacing is the time between the starts of two flows: a scheduler's
// tasks seldom start in the same second, and many fast checkpoints at
// once only measure the server.
const StartSpacing = 2 * time.Second

// RunScenario runs the unfaulted run of each variant and every flow of sc
// side by side, so that the unfaulted runs share the machine as the flows
// do (the runs are throttled: they do not starve one another), and judges
// the outcomes.
func (e *Env) RunScenario(ctx context.Context, sc Scenario) *Result {
	res := &Result{Scenario: sc}
	if e.oracle == nil {
		e.oracle = make(chan struct{}, 1)
	}
	flows := append([]Flow{{Variant: Stock, Unfaulted: true}, {Variant: Patched, Unfaulted: true}}, sc.Flows()...)
	out := make([]Outcome, len(flows))
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sleep(ctx, time.Duration(i)*StartSpacing) == nil {
				out[i] = e.Run(ctx, sc, f)
			}
		}()
	}
	wg.Wait()
	res.Unfaulted, res.Flows = out[:2], out[2:]
	res.Judge()
	return res
}
