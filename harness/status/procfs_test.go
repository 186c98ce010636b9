package status

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/proc/proctest"
)

func TestParseProcStat(t *testing.T) {
	// Field 22 is 4242 in each; names with spaces and parentheses.
	tail := " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 20 21\n"
	for _, name := range []string{"pg_basebackup", "a b", "x) S 1 (y", ")", ""} {
		st, err := parseProcStat([]byte("99 (" + name + ")" + tail))
		if err != nil || st.name != name || st.state != "S" || st.startTicks != 4242 || st.ppid != 1 || st.pgid != 2 {
			t.Errorf("%q: %+v %v", name, st, err)
		}
	}
	for _, bad := range []string{"", "99 pg_basebackup S 1", "99 (x) S 1 2 3", "99 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5 20"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestProcfsFakeRoot reads a made-up /proc.
func TestProcfsFakeRoot(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "stat", []byte("cpu 1 2 3\nbtime 1795000000\nprocesses 5\n"))
	writeFile(t, root, "77/stat", []byte("77 (pg_basebackup) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12345 20 21\n"))
	writeFile(t, root, "78/stat", []byte("78 (pg_basebackup) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12345 20 21\n"))
	p := Procfs{Root: root}
	info, err := p.Process(77)
	if err != nil {
		t.Fatal(err)
	}
	// No self/auxv in the fake root: 100 ticks a second.
	want := time.Unix(1795000000, 0).Add(123*time.Second + 450*time.Millisecond)
	if !info.Exists || info.Zombie || info.Name != "pg_basebackup" || !info.StartTime.Equal(want) {
		t.Errorf("77: %+v, want start %v", info, want)
	}
	if info, err := p.Process(78); err != nil || !info.Zombie {
		t.Errorf("78: %+v %v, want a zombie", info, err)
	}
	if info, err := p.Process(79); err != nil || info.Exists {
		t.Errorf("79: %+v %v, want gone", info, err)
	}
	if _, err := p.Process(0); err == nil {
		t.Error("pid 0 accepted")
	}
	// A pid present, but no btime: cannot tell.
	bare := t.TempDir()
	writeFile(t, bare, "77/stat", []byte("77 (pg_basebackup) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12345 20 21\n"))
	if _, err := (Procfs{Root: bare}).Process(77); err == nil {
		t.Error("no /proc/stat: no error")
	}
}

// TestProcfsSelf reads this test process from the real /proc.
func TestProcfsSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	before := time.Now()
	info, err := Procfs{}.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !info.Exists || info.Zombie || info.Name == "" {
		t.Errorf("%+v", info)
	}
	if info.StartTime.After(before.Add(2*time.Second)) || info.StartTime.Before(before.Add(-time.Hour)) {
		t.Errorf("start time %v, now %v", info.StartTime, before)
	}
	if hz := clockTicks("/proc"); hz == 0 {
		t.Error("no clock ticks")
	}
}

// TestLivenessRealProcess runs a process named pg_basebackup (a copy of
// sleep) and checks an "in progress" status naming it with the real
// Procfs: running while it runs, dead after it was killed, and dead when the
// status file's start time is before the process started (a reused pid).
func TestLivenessRealProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	bin := proctest.Sleeper(t, WriterName)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	s := inProgressStatus(true)
	s.Host, s.PID = host, cmd.Process.Pid
	s.StartTime = time.Now().UTC().Truncate(time.Second)
	dir := t.TempDir()
	writeFile(t, dir, statusName, s.Encode())
	r := Check(filepath.Join(dir, statusName), ownNamespace(t)...)
	if r.Verdict != Running || r.ExitCode != 3 {
		t.Fatalf("live process: %v (%s)", r.Verdict, r.Summary)
	}

	// With the START TICKS the writer records, read in /proc/PID/stat as
	// the process itself would: running, compared on the boot's clock.
	info, err := Procfs{}.Process(cmd.Process.Pid)
	if err != nil || info.StartTicks == 0 || !info.TicksAsOwn {
		t.Fatalf("process %+v %v: no start in ticks comparable with its own", info, err)
	}
	ticked := *s
	ticked.StartTicks = info.StartTicks
	writeFile(t, dir, statusName, ticked.Encode())
	if r := Check(filepath.Join(dir, statusName), ownNamespace(t)...); r.Verdict != Running || !strings.Contains(r.Summary, "as START TICKS records") {
		t.Fatalf("START TICKS: %v (%s)", r.Verdict, r.Summary)
	}

	// The same pid, but START TICKS are another tick: a reused pid.
	ticked.StartTicks--
	writeFile(t, dir, statusName, ticked.Encode())
	if r := Check(filepath.Join(dir, statusName), ownNamespace(t)...); r.Verdict != NotComplete || !r.Final || !strings.Contains(r.Summary, "pid was reused") {
		t.Fatalf("reused pid: %v final %v (%s)", r.Verdict, r.Final, r.Summary)
	}
	// Without START TICKS, a file that says the run started a minute
	// before the process cannot tell a reused pid from a wall clock set
	// forward since: not dead, not final.
	old := *s
	old.StartTime = s.StartTime.Add(-time.Minute)
	writeFile(t, dir, statusName, old.Encode())
	if r := Check(filepath.Join(dir, statusName), ownNamespace(t)...); r.Verdict != NotComplete || r.Final {
		t.Fatalf("later by the clock: %v final %v (%s)", r.Verdict, r.Final, r.Summary)
	}

	writeFile(t, dir, statusName, s.Encode())
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: a zombie, which is dead too.
	time.Sleep(100 * time.Millisecond)
	if r := Check(filepath.Join(dir, statusName), ownNamespace(t)...); r.Verdict != NotComplete || !r.Final {
		t.Fatalf("zombie: %v final %v (%s)", r.Verdict, r.Final, r.Summary)
	}
	cmd.Wait()
	if r := Check(filepath.Join(dir, statusName), ownNamespace(t)...); r.Verdict != NotComplete || !r.Final || r.Liveness.Process.Exists {
		t.Fatalf("reaped: %v final %v (%s)", r.Verdict, r.Final, r.Summary)
	}
}

// TestDirUsersSkipsOwnFork: a child of the remover that has not yet called
// exec (another goroutine starting a command) holds copies of the
// remover's descriptors, its handles on the directories among them; it is
// not a user of the directories. A child that runs another program, or a
// process of the same program that is not its child, still is. In a
// container, where starting processes is slower, the clean-up after dead
// runs refused 2 removals in 100 trials over such a child.
func TestDirUsersSkipsOwnFork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	selfExe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := t.TempDir()
	proc := func(pid, ppid int, name, exe string) {
		base := filepath.Join(root, strconv.Itoa(pid))
		for _, d := range []string{"fd"} {
			if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		stat := fmt.Sprintf("%d (%s) S %d %d 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 100 20 21\n", pid, name, ppid, pid)
		if err := os.WriteFile(filepath.Join(base, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		for link, target := range map[string]string{"exe": exe, "cwd": "/", "fd/3": dir} {
			if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
				t.Fatal(err)
			}
		}
	}
	self := os.Getpid()
	proc(self+100001, self, "status.test", selfExe)  // our fork, before exec
	proc(self+100002, self, "psql", "/usr/bin/psql") // our child, after exec
	proc(self+100003, 1, "status.test", selfExe)     // the same program, not our child
	users, err := Procfs{Root: root}.DirUsers([]string{dir}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, u := range users {
		got = append(got, u.PID)
	}
	if len(got) != 2 || got[0] == self+100001 || got[1] == self+100001 {
		t.Fatalf("users %v: want %d and %d, not our own fork %d", got, self+100002, self+100003, self+100001)
	}
}
