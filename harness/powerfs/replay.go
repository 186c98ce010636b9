package powerfs

import (
	"fmt"
	"syscall"
)

// Replayer applies a journal's operations, one at a time, to a fresh
// model (no mount, no root): after each step Durable is what a power loss
// then would have left, Volatile what the programs saw, and Unsynced the
// operations whose effect a power loss would lose. The explorer
// (harness/explore) builds every crash state of a run from them.
type Replayer struct {
	j    *Journal
	fs   *FS
	next int

	// pending are the state-changing operations applied so far, with
	// whether each is settled: made durable by an fsync of its file or
	// directory, or dropped by a failed one.
	pending []pendingOp
	// byIno lists the unsettled data operations (write, truncate, open
	// with O_TRUNC) of each file, byDir the unsettled entry operations
	// of each directory, by index in pending.
	byIno map[uint64][]int
	byDir map[uint64][]int
	// unsettled counts the unsettled operations.
	unsettled int
}

// pendingOp is an applied operation and whether it is settled; a rename
// between two directories is settled once both were synced.
type pendingOp struct {
	op      Op
	waiting int // directories (or files) still to sync
}

// NewReplayer makes the model the journal's run started with: the root,
// its owner and mode, and the directories made before the run.
func NewReplayer(j *Journal) (*Replayer, error) {
	fs := New(Owner(j.UID, j.GID), RootMode(j.RootPerm))
	for _, d := range j.Setup {
		if err := fs.MkdirAll(d.Path, d.Perm); err != nil {
			return nil, fmt.Errorf("replay: set-up: %w", err)
		}
	}
	return &Replayer{j: j, fs: fs, byIno: map[uint64][]int{}, byDir: map[uint64][]int{}}, nil
}

// Next returns the index in the journal's log of the next operation
// Step applies (the number applied so far).
func (r *Replayer) Next() int { return r.next }

// Done says every operation was applied (or the power went).
func (r *Replayer) Done() bool { return r.next >= len(r.j.Log) }

// Step applies the next operation and returns it. An operation the power
// cut off before it ran is not applied, and ends the replay. An error
// means the model did not do what the journal says it did.
func (r *Replayer) Step() (Op, error) {
	if r.Done() {
		return Op{}, fmt.Errorf("replay: no operation left after %d", r.next)
	}
	op := r.j.Log[r.next]
	r.next++
	if op.Crash == "before" {
		r.next = len(r.j.Log)
		return op, nil
	}
	e := r.fs.replay(op)
	if e != op.Errno {
		return op, fmt.Errorf("replay: %s: the model returned %v, the run got %v", op, errnoString(e), errnoString(op.Errno))
	}
	r.track(op)
	return op, nil
}

func errnoString(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	return e.Error()
}

// replay applies one logged operation with its logged outcome: an errno
// a fault rule injected is injected again.
func (fs *FS) replay(op Op) syscall.Errno {
	c := Caller{PID: op.PID, UID: op.UID, GID: op.GID}
	fs.mu.Lock()
	if op.Injected && op.Errno != 0 {
		fs.forced = op.Errno
	}
	n := fs.inodes[op.Ino]
	if op.Kind == OpFsync || op.Kind == OpFsyncDir {
		// Attributes become durable with the inode: as they were then.
		if n != nil {
			n.perm, n.uid, n.gid = op.Perm, op.UID, op.GID
		}
	}
	fs.mu.Unlock()
	defer func() {
		fs.mu.Lock()
		fs.forced = 0
		fs.mu.Unlock()
	}()
	switch op.Kind {
	case OpOpen:
		if n != nil && n.kind == kDir && !op.Write {
			_, e := fs.OpenDir(c, op.Ino)
			return e
		}
		flags := uint32(syscall.O_RDONLY)
		if op.Write {
			flags = syscall.O_RDWR
		}
		if op.Trunc {
			flags |= syscall.O_TRUNC
		}
		return fs.Open(c, op.Ino, flags)
	case OpCreate, OpMkdir, OpSymlink:
		return fs.replayMknode(c, op)
	case OpLink:
		_, e := fs.Link(c, op.Ino, op.Dir, op.Name)
		return e
	case OpWrite:
		if int64(len(op.data)) != op.Len && op.Errno == 0 {
			return syscall.EBADMSG // the journal lacks the write's data
		}
		_, e := fs.Write(c, op.Ino, op.Off, op.data)
		return e
	case OpTruncate:
		return fs.Truncate(c, op.Ino, op.Off)
	case OpFsync, OpFsyncDir:
		return fs.Fsync(c, op.Ino)
	case OpRename:
		return fs.Rename(c, op.Dir, op.Name, op.NewDir, op.NewName, op.Flags)
	case OpUnlink:
		return fs.Unlink(c, op.Dir, op.Name)
	case OpRmdir:
		return fs.Rmdir(c, op.Dir, op.Name)
	}
	return syscall.ENOSYS
}

// replayMknode replays a create, mkdir or symlink, which must make the
// inode the run made (inode numbers follow the order of creation).
func (fs *FS) replayMknode(c Caller, op Op) syscall.Errno {
	var a Attr
	var e syscall.Errno
	switch op.Kind {
	case OpCreate:
		a, e = fs.Create(c, op.Dir, op.Name, op.Perm)
	case OpMkdir:
		a, e = fs.Mkdir(c, op.Dir, op.Name, op.Perm)
	default:
		a, e = fs.Symlink(c, op.Dir, op.Name, op.Target)
	}
	if e == 0 && a.Ino != op.Ino {
		return syscall.EBADSLT // not the run's inode
	}
	return e
}

// track records an applied operation as pending, or settles the pending
// operations an fsync covers.
func (r *Replayer) track(op Op) {
	if op.Errno != 0 && op.Kind != OpFsync && op.Kind != OpFsyncDir {
		return // failed: changed nothing
	}
	if op.Crash != "" {
		return // the power went: nothing after counts
	}
	add := func(keys map[uint64][]int, k uint64) {
		keys[k] = append(keys[k], len(r.pending))
	}
	switch op.Kind {
	case OpWrite, OpTruncate:
		add(r.byIno, op.Ino)
	case OpOpen:
		if !op.Trunc {
			return
		}
		add(r.byIno, op.Ino)
	case OpCreate, OpMkdir, OpSymlink, OpLink, OpUnlink, OpRmdir:
		add(r.byDir, op.Dir)
	case OpRename:
		add(r.byDir, op.Dir)
		if op.NewDir != op.Dir {
			add(r.byDir, op.NewDir)
		}
	case OpFsync:
		r.settle(r.byIno, op.Ino)
		return
	case OpFsyncDir:
		r.settle(r.byDir, op.Ino)
		return
	default:
		return
	}
	waiting := 1
	if op.Kind == OpRename && op.NewDir != op.Dir {
		waiting = 2
	}
	r.pending = append(r.pending, pendingOp{op: op, waiting: waiting})
	r.unsettled++
}

// settle marks the pending operations of one key settled.
func (r *Replayer) settle(keys map[uint64][]int, k uint64) {
	for _, i := range keys[k] {
		p := &r.pending[i]
		if p.waiting > 0 {
			p.waiting--
			if p.waiting == 0 {
				r.unsettled--
			}
		}
	}
	delete(keys, k)
}

// Unsynced returns the last k applied operations (k <= 0: all) whose
// effect is not durable yet, oldest first: writes, truncates and
// truncating opens before an fsync of their file, creates, links,
// removals and renames before an fsync of their directory (both, for a
// rename between two).
func (r *Replayer) Unsynced(k int) []Op {
	if k <= 0 || k > r.unsettled {
		k = r.unsettled
	}
	out := make([]Op, k)
	for i := len(r.pending) - 1; i >= 0 && k > 0; i-- {
		if r.pending[i].waiting > 0 {
			k--
			out[k] = r.pending[i].op
		}
	}
	return out
}

// UnsyncedCount returns how many applied operations are not durable yet.
func (r *Replayer) UnsyncedCount() int { return r.unsettled }

// Durable returns the durable state now: what a power loss would leave.
func (r *Replayer) Durable() *Snapshot { return r.fs.Durable() }

// Volatile returns what the programs see now, as a snapshot.
func (r *Replayer) Volatile() *Snapshot { return r.fs.Volatile() }

// FS returns the replayed file system.
func (r *Replayer) FS() *FS { return r.fs }
