package powerfs

import (
	"math"
	"syscall"
	"time"
)

// begin counts an operation and decides whether it fails: at a crash
// point "before" (the power goes, EIO) or by a fault rule. A non-zero
// errno means the caller must not apply the operation and must pass the
// errno to end. fs.mu is held and the power is on.
func (fs *FS) begin(c Caller, kind OpKind, p, p2 string, write bool) (*Op, syscall.Errno) {
	fs.counts[kind]++
	op := &Op{Seq: len(fs.log) + 1, Kind: kind, KindName: kind.String(), N: fs.counts[kind],
		Path: p, NewPath: p2, Write: write, PID: c.PID, At: time.Since(fs.start)}
	if fs.forced != 0 {
		// A replay repeats the errno a rule injected in the run.
		op.Injected = true
		return op, fs.forced
	}
	for _, cp := range fs.crashAt {
		if cp.Op == kind && cp.N == op.N && !cp.After {
			op.Crash = "before"
			op.Injected = true
			fs.freeze()
			return op, syscall.EIO
		}
	}
	for _, r := range fs.rules {
		if !r.matches(kind, []string{p, p2}, write) {
			continue
		}
		r.matched++
		nth := r.Nth
		if nth < 1 {
			nth = 1
		}
		if r.matched >= nth && (r.Times == 0 || r.matched < nth+r.Times) {
			r.fired++
			op.Injected = true
			if r.Errno == 0 {
				return op, syscall.EIO
			}
			return op, r.Errno
		}
	}
	return op, 0
}

// end logs an operation with its result and cuts the power at a crash
// point "after"; it returns errno. fs.mu is held.
func (fs *FS) end(op *Op, errno syscall.Errno) syscall.Errno {
	op.Errno = errno
	if op.Crash == "" && !fs.frozen {
		for _, cp := range fs.crashAt {
			if cp.Op == op.Kind && cp.N == op.N && cp.After {
				op.Crash = "after"
				break
			}
		}
	}
	fs.log = append(fs.log, *op)
	if op.Crash != "" {
		c := *op
		fs.crashOp = &c
		fs.freeze()
	}
	if fs.hook != nil {
		fs.hook(*op)
	}
	return errno
}

// off says whether the power is off, counting the refused operation;
// fs.mu is held.
func (fs *FS) off() bool {
	if fs.frozen {
		fs.refused++
	}
	return fs.frozen
}

// writeAt writes p at off into the volatile data, growing it with zeros.
func (n *inode) writeAt(off int64, p []byte) {
	end := off + int64(len(p))
	if old := int64(len(n.data)); end > old {
		if end <= int64(cap(n.data)) {
			n.data = n.data[:end]
			clear(n.data[old:end])
		} else {
			c := 2 * int64(cap(n.data))
			if c < end {
				c = end
			}
			nd := make([]byte, end, c)
			copy(nd, n.data)
			n.data = nd
		}
	}
	copy(n.data[off:], p)
	n.dirty = n.dirty.add(off, end)
	now := time.Now()
	n.mtime, n.ctime = now, now
}

// truncate sets the volatile size; what is cut off, and what grows, is
// dirty until synced.
func (n *inode) truncate(size int64) {
	old := int64(len(n.data))
	switch {
	case size < old:
		n.data = n.data[:size]
		n.dirty = n.dirty.add(size, math.MaxInt64)
	case size > old:
		n.writeAt(old, make([]byte, size-old))
	}
	now := time.Now()
	n.mtime, n.ctime = now, now
}

// fsyncFile makes a file durable, or, when errno is set (a failed
// fsync), drops its dirty data as Linux does after a write-back error:
// the pages are marked clean and a later fsync does not write them.
// fs.mu is held.
func (fs *FS) fsyncFile(n *inode, errno syscall.Errno) {
	if n.kind != kFile {
		// A symlink or directory fsynced through a file handle.
		if n.kind == kDir {
			fs.fsyncDir(n, errno)
		}
		return
	}
	if errno == 0 {
		n.durable = fileDurable(n)
	}
	n.dirty = nil
}

// fsyncDir makes a directory's entries durable, or, when errno is set,
// drops its pending entry changes. fs.mu is held.
func (fs *FS) fsyncDir(n *inode, errno syscall.Errno) {
	if errno == 0 {
		n.durable = fs.dirDurable(n)
		return
	}
	n.lostGen = fs.gen
}
