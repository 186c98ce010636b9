//go:build linux && amd64

package fault

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ptraceOExitKill kills the tracees when the tracer exits
// (PTRACE_O_EXITKILL), so that a crashed harness leaves nothing behind.
const ptraceOExitKill = 0x100000

// pathSyscalls are the file-system calls that name a path.
var pathSyscalls = map[uint64]string{
	syscall.SYS_OPEN: "open", syscall.SYS_OPENAT: "openat", syscall.SYS_CREAT: "creat",
	syscall.SYS_MKDIR: "mkdir", syscall.SYS_MKDIRAT: "mkdirat",
	syscall.SYS_RENAME: "rename", syscall.SYS_RENAMEAT: "renameat", 316: "renameat2",
	syscall.SYS_UNLINK: "unlink", syscall.SYS_UNLINKAT: "unlinkat", syscall.SYS_RMDIR: "rmdir",
	syscall.SYS_LINK: "link", syscall.SYS_LINKAT: "linkat", syscall.SYS_SYMLINK: "symlink", syscall.SYS_SYMLINKAT: "symlinkat",
	syscall.SYS_TRUNCATE: "truncate",
}

// fdSyscalls are the file-system calls on a descriptor; they count only
// when the descriptor is a file or directory (not a pipe or socket).
var fdSyscalls = map[uint64]string{
	syscall.SYS_WRITE: "write", syscall.SYS_PWRITE64: "pwrite64", syscall.SYS_WRITEV: "writev", syscall.SYS_PWRITEV: "pwritev",
	syscall.SYS_FSYNC: "fsync", syscall.SYS_FDATASYNC: "fdatasync", syscall.SYS_SYNC_FILE_RANGE: "sync_file_range",
	syscall.SYS_FTRUNCATE: "ftruncate", syscall.SYS_FALLOCATE: "fallocate", syscall.SYS_CLOSE: "close",
}

// SyscallCounter is a traced run: one counter of file-system calls
// across the whole process tree, and the count at which each phase was
// reached.
type SyscallCounter struct {
	n      atomic.Int64
	mu     sync.Mutex
	phases map[string]int64
}

// Count returns the number of file-system calls so far.
func (c *SyscallCounter) Count() int64 { return c.n.Load() }

// MarkPhase records the current count as the start of phase p (the first
// time only).
func (c *SyscallCounter) MarkPhase(p Phase) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phases == nil {
		c.phases = map[string]int64{}
	}
	if _, ok := c.phases[p.String()]; !ok {
		c.phases[p.String()] = c.n.Load()
	}
}

// Phases returns the count at which each phase was reached, and the total
// under "exited".
func (c *SyscallCounter) Phases() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int64{}
	for k, v := range c.phases {
		m[k] = v
	}
	m[PhaseExited.String()] = c.n.Load()
	return m
}

// Traced is a process started under ptrace.
type Traced struct {
	// PID is the traced pg_basebackup.
	PID int
	// Done is closed when the leader (PID) has exited; Status then holds
	// its wait status.
	Done   chan struct{}
	Status syscall.WaitStatus
	// Counter counts its file-system calls.
	Counter *SyscallCounter
	// KillAt is the call to kill at (0: count only); Killed describes the
	// call that was killed, if any.
	KillAt int64
	Killed string
	// KilledPhase and KilledAt say when the kill happened.
	KilledPhase string
	KilledAt    time.Time
	// Err is a tracer failure.
	Err error
	// finished is closed when every tracee is gone.
	finished chan struct{}
	phase    func() Phase
}

// Finished is closed when the whole traced tree is gone.
func (t *Traced) Finished() <-chan struct{} { return t.finished }

// StartTraced starts cmd under ptrace, from one locked OS thread that
// makes every ptrace call, following forks; at the killAt-th file-system
// call of the tree (counted at syscall entry, so the call never runs) the
// whole process group gets SIGKILL. cmd must start its own process group.
func StartTraced(cmd *exec.Cmd, killAt int64, phase func() Phase) (*Traced, error) {
	t := &Traced{Done: make(chan struct{}), finished: make(chan struct{}), Counter: &SyscallCounter{}, KillAt: killAt, phase: phase}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked and dies with the goroutine: it was a
		// tracer, never give it back to the scheduler.
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Ptrace = true
		if err := cmd.Start(); err != nil {
			started <- err
			close(t.Done)
			close(t.finished)
			return
		}
		t.PID = cmd.Process.Pid
		started <- nil
		t.Err = t.loop()
		close(t.finished)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

// attach waits for the child's stop after its exec, sets the tracing
// options and resumes it. A child that exited instead is returned with its
// wait status.
func attach(pid int) (*syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	// The child stops with SIGTRAP after its exec.
	if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil {
		return nil, fmt.Errorf("ptrace: wait for exec stop: %w", err)
	}
	if !ws.Stopped() {
		return &ws, fmt.Errorf("ptrace: child did not stop after exec (%v)", ws)
	}
	// TRACEEXEC: a tracee that execs (a wrapper's pg_basebackup child)
	// stops with an event, not with a SIGTRAP that would kill it.
	opts := syscall.PTRACE_O_TRACESYSGOOD | syscall.PTRACE_O_TRACEFORK | syscall.PTRACE_O_TRACEVFORK | syscall.PTRACE_O_TRACECLONE |
		syscall.PTRACE_O_TRACEEXEC | ptraceOExitKill
	if err := syscall.PtraceSetOptions(pid, opts); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		return nil, fmt.Errorf("ptrace: set options: %w", err)
	}
	if err := syscall.PtraceSyscall(pid, 0); err != nil {
		return nil, fmt.Errorf("ptrace: resume: %w", err)
	}
	return nil, nil
}

// loop services the tracees until all are gone.
func (t *Traced) loop() error {
	pid := t.PID
	doneClosed := false
	leaderGone := func(ws syscall.WaitStatus) {
		if !doneClosed {
			t.Status = ws
			doneClosed = true
			close(t.Done)
		}
	}
	defer leaderGone(0)
	if ws, err := attach(pid); err != nil {
		if ws != nil {
			leaderGone(*ws)
		}
		return err
	}
	var ws syscall.WaitStatus
	inSyscall := map[int]bool{}
	alive := map[int]bool{pid: true}
	fresh := map[int]bool{}
	for len(alive) > 0 {
		// Only the traced group: other goroutines' children are not ours
		// to reap.
		wpid, err := syscall.Wait4(-pid, &ws, syscall.WALL, nil)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if errors.Is(err, syscall.ECHILD) {
				return nil
			}
			return fmt.Errorf("ptrace: wait: %w", err)
		}
		if ws.Exited() || ws.Signaled() {
			delete(alive, wpid)
			if wpid == pid {
				leaderGone(ws)
			}
			continue
		}
		if !ws.Stopped() {
			continue
		}
		alive[wpid] = true
		sig := ws.StopSignal()
		deliver := 0
		switch {
		case sig == syscall.SIGTRAP|0x80:
			entering := !inSyscall[wpid]
			inSyscall[wpid] = entering
			if entering {
				t.syscallEntry(wpid)
			}
		case sig == syscall.SIGTRAP && ws.TrapCause() == syscall.PTRACE_EVENT_EXEC:
			// An exec: the same process goes on, traced.
		case sig == syscall.SIGTRAP && ws.TrapCause() > 0:
			// A fork, vfork or clone: the new process is traced already
			// and will report a SIGSTOP of its own.
			if msg, err := syscall.PtraceGetEventMsg(wpid); err == nil {
				fresh[int(msg)] = true
				alive[int(msg)] = true
			}
		case sig == syscall.SIGSTOP && fresh[wpid]:
			delete(fresh, wpid)
		default:
			deliver = int(sig)
		}
		if err := syscall.PtraceSyscall(wpid, deliver); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("ptrace: resume %d: %w", wpid, err)
		}
	}
	return nil
}

// syscallEntry counts a file-system call and kills the tree at KillAt.
func (t *Traced) syscallEntry(pid int) {
	var regs syscall.PtraceRegs
	if err := syscall.PtraceGetRegs(pid, &regs); err != nil {
		return
	}
	nr := regs.Orig_rax
	name, isPath := pathSyscalls[nr]
	var what string
	if isPath {
		what = name
	} else if fdName, ok := fdSyscalls[nr]; ok {
		target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(int(int32(regs.Rdi))))
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		what = fdName + " " + target
	} else {
		return
	}
	n := t.Counter.n.Add(1)
	if t.KillAt > 0 && n == t.KillAt {
		if isPath {
			what += " " + peekPath(pid, pathArg(nr, &regs))
		}
		t.KilledAt = time.Now()
		if t.phase != nil {
			t.KilledPhase = t.phase().String()
		}
		t.Killed = fmt.Sprintf("SIGKILL to the process group at file-system call #%d (pid %d: %s)", n, pid, what)
		syscall.Kill(-t.PID, syscall.SIGKILL)
	}
}

// pathArg returns the address of the (first) path argument of a call.
func pathArg(nr uint64, r *syscall.PtraceRegs) uintptr {
	switch nr {
	case syscall.SYS_OPENAT, syscall.SYS_MKDIRAT, syscall.SYS_RENAMEAT, 316, syscall.SYS_UNLINKAT, syscall.SYS_LINKAT:
		return uintptr(r.Rsi)
	case syscall.SYS_SYMLINKAT:
		return uintptr(r.Rdx)
	}
	return uintptr(r.Rdi)
}

// peekPath reads a NUL-terminated path from a tracee.
func peekPath(pid int, addr uintptr) string {
	var out []byte
	buf := make([]byte, 8)
	for len(out) < 512 {
		if _, err := syscall.PtracePeekData(pid, addr+uintptr(len(out)), buf); err != nil {
			break
		}
		for _, b := range buf {
			if b == 0 {
				return string(out)
			}
			out = append(out, b)
		}
	}
	return string(out)
}

// ptraceAvailable says why the traced plans cannot run here: nil.
func ptraceAvailable() error { return nil }
