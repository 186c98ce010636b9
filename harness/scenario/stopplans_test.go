package scenario

import (
	"slices"
	"testing"
)

// TestStallScenarios: the stop plan is known, and scenarios/stall loads.
func TestStallScenarios(t *testing.T) {
	if !slices.Contains(Plans(), PlanStop) {
		t.Fatalf("%q not among the plans %v", PlanStop, Plans())
	}
	scs, err := LoadPaths("../../scenarios/stall")
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 {
		t.Fatalf("stall set has %d scenarios", len(scs))
	}
	for _, s := range scs {
		if !slices.Equal(s.Faults, []string{PlanStop}) {
			t.Errorf("%s: faults %v", s.Name, s.Faults)
		}
	}
}
