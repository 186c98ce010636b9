package taskflow

import (
	"context"
	"sync"
	"time"
)

// Flows returns the flows of sc: one per variant and policy, the stall
// flow of each variant with a status file (the stall is seen only
// through one) if sc asks for it, and one fresh flow per fresh policy,
// stock and patched only (each fresh flow's attempts leave whole copies
// of the source on disk; the wrapper's are not measured).
func (sc Scenario) Flows() []Flow {
	var fs []Flow
	for _, p := range sc.Policies {
		for _, v := range Variants() {
			fs = append(fs, Flow{Variant: v, Policy: p})
		}
	}
	if sc.Stall > 0 {
		for _, v := range Variants() {
			if v.HasStatusFile() {
				fs = append(fs, Flow{Variant: v, Policy: Leave, Stall: true})
			}
		}
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

// RunScenario runs the unfaulted run of each variant (Variants) and every flow of sc
// side by side, so that the unfaulted runs share the machine as the flows
// do (the runs are throttled: they do not starve one another), and judges
// the outcomes.
func (e *Env) RunScenario(ctx context.Context, sc Scenario) *Result {
	res := &Result{Scenario: sc}
	if e.oracle == nil {
		e.oracle = make(chan struct{}, 1)
	}
	var flows []Flow
	for _, v := range Variants() {
		flows = append(flows, Flow{Variant: v, Unfaulted: true})
	}
	base := len(flows)
	flows = append(flows, sc.Flows()...)
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
	res.Unfaulted, res.Flows = out[:base], out[base:]
	res.Judge()
	return res
}
