package fault

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/scenario"
)

// TestPlanLifecycles: what each plan takes part in besides Inject, as
// the registry makes it. The trial does only what these say: a plan
// missing its Preparer would run off the power-loss layer, one missing
// its Settler would leave the server stopped or the tracer running.
func TestPlanLifecycles(t *testing.T) {
	want := map[string]string{
		scenario.PlanSyscallKill: "launch settle",
		scenario.PlanServerStop:  "settle",
		scenario.PlanStop:        "watch reader",
	}
	for _, name := range scenario.DiskPlans() {
		want[name] = "prepare settle"
	}
	for _, name := range scenario.Plans() {
		f, err := ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := hooks(f); got != want[name] {
			t.Errorf("plan %s takes part in %q, want %q", name, got, want[name])
		}
	}
	for _, c := range []Calibrator{&SyscallCount{}, NewDiskCount()} {
		if got, want := hooks(c), map[string]string{countLabel: "launch settle", diskCountLabel: "prepare settle"}[c.Label()]; got != want {
			t.Errorf("calibration run %s takes part in %q, want %q", c.Label(), got, want)
		}
	}
}

// hooks names the optional interfaces f implements.
func hooks(f Fault) string {
	var out []string
	if _, ok := f.(Preparer); ok {
		out = append(out, "prepare")
	}
	if _, ok := f.(Launcher); ok {
		out = append(out, "launch")
	}
	if _, ok := f.(Settler); ok {
		out = append(out, "settle")
	}
	if w, ok := f.(StatusWatcher); ok && w.WatchesStatusFile() {
		out = append(out, "watch")
	}
	if r, ok := f.(ReaderUser); ok && r.RunsReader() {
		out = append(out, "reader")
	}
	return strings.Join(out, " ")
}

// TestByNameMakesOnePlanPerTrial: a plan that keeps state between its
// steps (the call the tracer kills at) is not shared by two trials.
func TestByNameMakesOnePlanPerTrial(t *testing.T) {
	a, _ := ByName(scenario.PlanSyscallKill)
	b, _ := ByName(scenario.PlanSyscallKill)
	if a == b {
		t.Fatal("two trials of kill-syscall share one plan")
	}
}

func TestCalibrators(t *testing.T) {
	for _, tc := range []struct {
		plans []string
		want  []string
	}{
		{[]string{scenario.PlanNone, scenario.PlanKill, scenario.PlanStop}, nil},
		{[]string{scenario.PlanSyscallKill}, []string{countLabel}},
		{[]string{scenario.PlanPowerLoss, scenario.PlanENOSPC}, []string{diskCountLabel}},
		{[]string{scenario.PlanEIOFsync, "no-such-plan", scenario.PlanSyscallKill, scenario.PlanKill}, []string{countLabel, diskCountLabel}},
	} {
		var got []string
		for _, c := range Calibrators(tc.plans) {
			got = append(got, c.Label())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Calibrators(%v) = %v, want %v", tc.plans, got, tc.want)
		}
	}
}

// TestSyscallKillLifecycle runs a writing shell under the kill-syscall
// plan: Launch starts it traced, the tracer kills it at the chosen call,
// Settle reports that kill and the calls counted.
func TestSyscallKillLifecycle(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("ptrace plans run on linux/amd64 only")
	}
	f, _ := ByName(scenario.PlanSyscallKill)
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 1000 ]; do echo $i > "$0"; i=$((i+1)); done`, t.TempDir()+"/f")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done := make(chan struct{})
	tgt := &Target{Phases: NewTracker(time.Now()), Done: done, Rand: rand.New(rand.NewPCG(1, 2)),
		Calibration: Calibration{Syscalls: map[string]int64{PhaseExited.String(): 100}}}
	p, err := f.(Launcher).Launch(cmd, tgt)
	if err != nil {
		t.Fatal(err)
	}
	tgt.PID = cmd.Process.Pid
	go func() { p.Wait(); close(done) }()
	inj, err := f.Inject(context.Background(), tgt)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	syscall.Kill(-tgt.PID, syscall.SIGKILL)
	var out Settled
	if err := f.(Settler).Settle(context.Background(), tgt, &inj, &out); err != nil {
		t.Fatal(err)
	}
	if !inj.Fired || inj.Anchor != "syscall" || !strings.HasPrefix(inj.Detail, "SIGKILL") {
		t.Fatalf("the tracer's kill is not reported: %+v", inj)
	}
	if n := out.Syscalls[PhaseExited.String()]; n < 1 || n > 100 {
		t.Errorf("calls counted: %d, want the kill within the first 100", n)
	}
}
