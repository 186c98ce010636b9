package fault

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/proc/proctest"
	"github.com/pgbb/pgbb/harness/scenario"
	"github.com/pgbb/pgbb/harness/status"
)

// TestStopPlan runs the stop plan against a process named pg_basebackup (a
// copy of sleep) whose status file the test writes: while stopped, the
// reader says stalled and the removal refuses; then it is continued, the
// "run" completes, and the samples kept their order.
func TestStopPlan(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	cmd := proctest.StartSleeper(t, status.WriterName, "", "60")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "target")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The status file lies outside the directories the run writes.
	statusFile := filepath.Join(t.TempDir(), "backup_status")
	now := time.Now().UTC().Truncate(time.Second)
	s := &status.Status{
		Version: 1, State: status.StateInProgress, StartTime: now, PID: cmd.Process.Pid, Host: host,
		Label: "stop test", ProgramVersion: "pg_basebackup (PostgreSQL) 18.6", Format: "plain",
		WALMethod: "stream", Sync: true, Progress: true, UpdateInterval: 5,
		Directories: []status.Directory{{Path: dir, Created: true}},
		Phase:       status.PhaseReceiving, UpdateTime: now, BytesReceived: 8192,
	}
	write := func() {
		tmp := status.TempPath(statusFile, s.PID)
		if err := os.WriteFile(tmp, s.Encode(), 0o600); err != nil {
			t.Error(err)
		}
		if err := os.Rename(tmp, statusFile); err != nil {
			t.Error(err)
		}
	}
	write()

	tracker := NewTracker(time.Now())
	tracker.Observe(PhaseReceiving)
	done := make(chan struct{})
	f, err := ByName(scenario.PlanStop)
	if err != nil {
		t.Fatal(err)
	}
	injected := make(chan Injection)
	go func() {
		inj, err := f.Inject(context.Background(), &Target{
			PID: cmd.Process.Pid, Phases: tracker, Done: done, StatusFile: statusFile,
			Calibration: Calibration{Timeline: Timeline{"start": 0, "receiving": 0, "exited": 10 * time.Millisecond}},
			Rand:        rand.New(rand.NewPCG(1, 2)),
		})
		if err != nil {
			t.Error(err)
		}
		injected <- inj
	}()
	// Once continued, the "run" completes and exits.
	waitStopped(cmd.Process.Pid, true, 10*time.Second)
	waitStopped(cmd.Process.Pid, false, 20*time.Second)
	s.Phase, s.BytesReceived = status.PhaseSyncing, 16384
	write()
	time.Sleep(100 * time.Millisecond)
	s.State, s.Started, s.StartLSN, s.Timeline, s.SystemID = status.StateCompleted, true, 0x2000028, 1, 7441234567890123456
	s.EndLSN, s.EndTime, s.Durable = 0x2000100, now.Add(time.Minute), true
	write()
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	close(done)

	inj := <-injected
	o := inj.Stop
	if !inj.Fired || o == nil {
		t.Fatalf("not fired: %+v", inj)
	}
	if !o.Stopped || o.Verdict != "stalled" || o.ExitCode != 5 || o.State != "in progress" {
		t.Errorf("while stopped: %+v", o)
	}
	if o.RemoveExit != status.ExitRefused || !o.TargetIntact {
		t.Errorf("removal while stopped: %+v", o)
	}
	if !o.Continued || o.Held < StopHoldMin || o.Held > StopHoldMax+5*time.Second {
		t.Errorf("continued %v after %v", o.Continued, o.Held)
	}
	if o.PhaseOrder != "" || o.Samples < 3 {
		t.Errorf("samples %d, phase order %q", o.Samples, o.PhaseOrder)
	}
	// No built reader was given: the record says the other readers did
	// not run, and why.
	if o.OtherUser != nil || o.OtherNamespace != nil || o.NotRun == nil ||
		o.NotRun.OtherUser != NoReaderBin || o.NotRun.OtherNamespace != NoReaderBin {
		t.Errorf("without a reader binary: other user %+v, other namespace %+v, not run %+v", o.OtherUser, o.OtherNamespace, o.NotRun)
	}
	if _, err := os.Stat(statusFile); err != nil {
		t.Errorf("status file: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("target: %v", err)
	}
}

// TestWaitContinuedExited: a process continued with SIGCONT that ran to its
// end before it was looked at counts as continued (it must have run again
// to exit); waitStopped alone called that "not continued", the false
// alarm continued-completes raised on a loaded machine.
func TestWaitContinuedExited(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	cmd := exec.Command("sh", "-c", "kill -STOP $$; exit 0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !waitStopped(pid, true, 10*time.Second) {
		t.Fatal("never stopped")
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // it ran again, exited, and is reaped
	done := make(chan struct{})
	if waitStopped(pid, false, 100*time.Millisecond) {
		t.Fatal("premise: waitStopped (the old check) calls a process that is gone not continued")
	}
	if !waitContinued(pid, done, time.Second) {
		t.Fatal("an exited process was not counted as continued")
	}
	close(done)
	if !waitContinued(1<<22+1, done, time.Second) {
		t.Fatal("a closed done channel was not counted as continued")
	}
}

// TestStopOfExitingProcess: SIGSTOP that reaches a process on its way out
// (a zombie, not yet waited for) never shows it stopped; the stop plan
// must take that as a late stop, not as a reader that failed to say
// stalled. On a loaded machine a trial whose run finished as the stop
// arrived raised stopped-is-stalled and continued-completes.
func TestStopOfExitingProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := (status.Procfs{}).Process(pid)
		if err != nil {
			t.Fatal(err)
		}
		if info.Zombie {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never became a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("a zombie takes signals: %v", err)
	}
	if waitStopped(pid, true, 100*time.Millisecond) {
		t.Fatal("premise: a zombie never shows stopped")
	}
	if !exitedMeanwhile(pid, done) {
		t.Fatal("a zombie was not taken as exited")
	}
	cmd.Wait()
	if !exitedMeanwhile(pid, done) {
		t.Fatal("a reaped process was not taken as exited")
	}
	live := exec.Command("sleep", "5")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	if exitedMeanwhile(live.Process.Pid, done) {
		t.Fatal("a live process was taken as exited")
	}
}
