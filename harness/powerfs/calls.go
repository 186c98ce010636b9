package powerfs

import (
	"syscall"
	"time"
)

// The file-system calls of the model. Each takes the lock, refuses with
// EIO once the power is off, and, for the calls the layer counts, logs
// the operation (begin/end) with what it changed. The FUSE adapter
// (fuse.go) only translates kernel requests into these calls; tests and
// the replay of a journal call them directly, without a mount.

// RootIno is the root directory's inode number.
const RootIno uint64 = rootIno

// Caller is the process behind a call: its pid is logged, its uid and gid
// own what it creates.
type Caller struct {
	PID, UID, GID uint32
}

// Attr is what a stat of an inode returns.
type Attr struct {
	Ino   uint64
	Mode  uint32 // S_IF* type bits and permission bits
	Nlink uint32
	UID   uint32
	GID   uint32
	Size  uint64
	Atime time.Time
	Mtime time.Time
	Ctime time.Time
}

// AttrChange is what a setattr call changes; nil fields stay as they are.
type AttrChange struct {
	Size         *uint64
	Mode         *uint32
	UID, GID     *uint32
	Atime, Mtime *time.Time
}

// DirEntry is one name of a directory listing.
type DirEntry struct {
	Name string
	Ino  uint64
	Mode uint32 // S_IF* type bits
}

// FSStat is what statfs returns.
type FSStat struct {
	Bsize, Blocks, Bfree, Files, Ffree uint64
}

// locked runs fn with fs.mu held and the power on: with the power off the
// call fails with EIO, counted as refused.
func (fs *FS) locked(fn func() syscall.Errno) syscall.Errno {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return syscall.EIO
	}
	return fn()
}

// node returns the inode of a node id; fs.mu is held.
func (fs *FS) node(ino uint64) (*inode, syscall.Errno) {
	n, ok := fs.inodes[ino]
	if !ok {
		return nil, syscall.ENOENT
	}
	return n, 0
}

// dir returns the directory inode of a node id; fs.mu is held.
func (fs *FS) dir(ino uint64) (*inode, syscall.Errno) {
	n, e := fs.node(ino)
	if e != 0 {
		return nil, e
	}
	if n.kind != kDir {
		return nil, syscall.ENOTDIR
	}
	return n, 0
}

// attrOf returns an inode's attributes; fs.mu is held.
func attrOf(n *inode) Attr {
	a := Attr{Ino: n.ino, Mode: n.kind.ifmt() | n.perm, Nlink: n.nlink, UID: n.uid, GID: n.gid,
		Atime: n.atime, Mtime: n.mtime, Ctime: n.ctime}
	if a.Nlink == 0 && n.kind == kDir {
		a.Nlink = 2
	}
	switch n.kind {
	case kFile:
		a.Size = uint64(len(n.data))
	case kSymlink:
		a.Size = uint64(len(n.target))
	default:
		a.Size = 4096
	}
	return a
}

// Lookup returns the attributes of name in directory dir.
func (fs *FS) Lookup(dir uint64, name string) (a Attr, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		d, e := fs.dir(dir)
		if e != 0 {
			return e
		}
		ino, ok := d.entries[name]
		if !ok {
			return syscall.ENOENT
		}
		a = attrOf(fs.inodes[ino])
		return 0
	})
	return a, e
}

// GetAttr returns an inode's attributes.
func (fs *FS) GetAttr(ino uint64) (a Attr, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		n, e := fs.node(ino)
		if e == 0 {
			a = attrOf(n)
		}
		return e
	})
	return a, e
}

// SetAttr changes an inode's size (logged as a truncate), mode, owner or
// times, and returns its attributes.
func (fs *FS) SetAttr(c Caller, ino uint64, ch AttrChange) (a Attr, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		n, e := fs.node(ino)
		if e != 0 {
			return e
		}
		if ch.Size != nil {
			if e := fs.truncate(c, n, int64(*ch.Size)); e != 0 {
				return e
			}
		}
		now := time.Now()
		if ch.Mode != nil {
			n.perm = *ch.Mode & 07777
			n.ctime = now
		}
		if ch.UID != nil {
			n.uid = *ch.UID
			n.ctime = now
		}
		if ch.GID != nil {
			n.gid = *ch.GID
			n.ctime = now
		}
		if ch.Mtime != nil {
			n.mtime = *ch.Mtime
		}
		if ch.Atime != nil {
			n.atime = *ch.Atime
		}
		a = attrOf(n)
		return 0
	})
	return a, e
}

// Truncate sets a file's size (logged as a truncate).
func (fs *FS) Truncate(c Caller, ino uint64, size int64) syscall.Errno {
	return fs.locked(func() syscall.Errno {
		n, e := fs.node(ino)
		if e != 0 {
			return e
		}
		return fs.truncate(c, n, size)
	})
}

// truncate logs and applies a truncate; fs.mu is held.
func (fs *FS) truncate(c Caller, n *inode, size int64) syscall.Errno {
	if n.kind != kFile {
		return syscall.EISDIR
	}
	op, e := fs.begin(c, OpTruncate, fs.pathOf(n), "", true)
	op.Off, op.Ino = size, n.ino
	if e == 0 {
		n.truncate(size)
	}
	return fs.end(op, e)
}

// Create makes a regular file name in dir with perm.
func (fs *FS) Create(c Caller, dir uint64, name string, perm uint32) (Attr, syscall.Errno) {
	return fs.mknode(c, dir, OpCreate, name, kFile, perm, "")
}

// Mkdir makes a directory name in dir with perm.
func (fs *FS) Mkdir(c Caller, dir uint64, name string, perm uint32) (Attr, syscall.Errno) {
	return fs.mknode(c, dir, OpMkdir, name, kDir, perm, "")
}

// Symlink makes a symbolic link name in dir to target. A symlink is
// durable with its directory entry.
func (fs *FS) Symlink(c Caller, dir uint64, name, target string) (Attr, syscall.Errno) {
	return fs.mknode(c, dir, OpSymlink, name, kSymlink, 0o777, target)
}

// mknode makes a new inode named name in dir, logged as kind.
func (fs *FS) mknode(c Caller, dir uint64, kind OpKind, name string, k kind, perm uint32, target string) (a Attr, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		d, e := fs.dir(dir)
		if e != 0 {
			return e
		}
		op, e := fs.begin(c, kind, fs.childPath(d, name), "", true)
		op.Dir, op.Name, op.Target = d.ino, name, target
		if _, exists := d.entries[name]; e == 0 && exists {
			e = syscall.EEXIST
		}
		if e == 0 {
			gid := c.GID
			if d.perm&syscall.S_ISGID != 0 {
				gid = d.gid
				if k == kDir {
					perm |= syscall.S_ISGID
				}
			}
			n := fs.newInode(k, perm, c.UID, gid)
			n.target = target
			if k == kSymlink {
				n.durable = &dstate{kind: kSymlink, perm: n.perm, uid: n.uid, gid: n.gid, target: target}
			}
			fs.link(d, name, n)
			op.Ino, op.Perm, op.UID, op.GID = n.ino, n.perm, n.uid, n.gid
			a = attrOf(n)
		}
		return fs.end(op, e)
	})
	return a, e
}

// Readlink returns a symlink's target.
func (fs *FS) Readlink(ino uint64) (target string, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		n, ok := fs.inodes[ino]
		if !ok || n.kind != kSymlink {
			return syscall.EINVAL
		}
		target = n.target
		return 0
	})
	return target, e
}

// Link adds the name name in dir to inode ino (a hard link).
func (fs *FS) Link(c Caller, ino, dir uint64, name string) (a Attr, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		d, e := fs.dir(dir)
		if e != 0 {
			return e
		}
		n, e := fs.node(ino)
		if e != 0 {
			return e
		}
		op, e := fs.begin(c, OpLink, fs.pathOf(n), fs.childPath(d, name), true)
		op.Ino, op.Dir, op.Name = n.ino, d.ino, name
		if e == 0 {
			if n.kind == kDir {
				e = syscall.EPERM
			} else if _, exists := d.entries[name]; exists {
				e = syscall.EEXIST
			}
		}
		if e == 0 {
			fs.link(d, name, n)
			a = attrOf(n)
		}
		return fs.end(op, e)
	})
	return a, e
}

// Unlink removes the name name (not a directory) from dir.
func (fs *FS) Unlink(c Caller, dir uint64, name string) syscall.Errno {
	return fs.remove(c, dir, name, OpUnlink)
}

// Rmdir removes the empty directory name from dir.
func (fs *FS) Rmdir(c Caller, dir uint64, name string) syscall.Errno {
	return fs.remove(c, dir, name, OpRmdir)
}

// remove logs and applies an unlink or rmdir.
func (fs *FS) remove(c Caller, dir uint64, name string, kind OpKind) syscall.Errno {
	return fs.locked(func() syscall.Errno {
		d, e := fs.dir(dir)
		if e != 0 {
			return e
		}
		op, e := fs.begin(c, kind, fs.childPath(d, name), "", true)
		op.Dir, op.Name = d.ino, name
		if e == 0 {
			ino, ok := d.entries[name]
			switch {
			case !ok:
				e = syscall.ENOENT
			case kind == OpRmdir && fs.inodes[ino].kind != kDir:
				e = syscall.ENOTDIR
			case kind == OpRmdir && len(fs.inodes[ino].entries) > 0:
				e = syscall.ENOTEMPTY
			case kind == OpUnlink && fs.inodes[ino].kind == kDir:
				e = syscall.EISDIR
			}
			op.Ino = ino
		}
		if e == 0 {
			fs.unlink(d, name)
		}
		return fs.end(op, e)
	})
}

// RenameNoReplace is rename's RENAME_NOREPLACE flag.
const RenameNoReplace = 1

// Rename renames name in dir to newName in newDir. flags may hold
// RenameNoReplace; other flags (exchange, whiteout) fail with EINVAL.
func (fs *FS) Rename(c Caller, dir uint64, name string, newDir uint64, newName string, flags uint32) syscall.Errno {
	return fs.locked(func() syscall.Errno {
		src, e := fs.dir(dir)
		if e != 0 {
			return e
		}
		dst, e := fs.dir(newDir)
		if e != 0 {
			return e
		}
		op, e := fs.begin(c, OpRename, fs.childPath(src, name), fs.childPath(dst, newName), true)
		op.Dir, op.Name, op.NewDir, op.NewName, op.Flags = src.ino, name, dst.ino, newName, flags
		var n *inode
		if e == 0 {
			n, e = fs.renameCheck(src, name, dst, newName, flags)
		}
		if e == 0 {
			op.Ino = n.ino
			if fs.tracked(op.Path, op.NewPath) {
				fs.recordTorn(op.Seq, OpRename, op.Path, n, 0, nil)
			}
			// Renaming a name onto another name of the same inode does
			// nothing (POSIX).
			if tino, ok := dst.entries[newName]; !ok || tino != n.ino {
				if ok {
					fs.unlink(dst, newName)
				}
				fs.unlink(src, name)
				fs.link(dst, newName, n)
			}
		}
		return fs.end(op, e)
	})
}

// renameCheck returns the inode a rename moves, or why it cannot; fs.mu
// is held.
func (fs *FS) renameCheck(src *inode, name string, dst *inode, newName string, flags uint32) (*inode, syscall.Errno) {
	ino, ok := src.entries[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	n := fs.inodes[ino]
	if flags&^RenameNoReplace != 0 {
		return nil, syscall.EINVAL // RENAME_EXCHANGE, RENAME_WHITEOUT
	}
	tino, ok := dst.entries[newName]
	if !ok {
		return n, 0
	}
	t := fs.inodes[tino]
	switch {
	case flags&RenameNoReplace != 0:
		return nil, syscall.EEXIST
	case tino == n.ino:
		// Same inode: nothing to do (POSIX).
	case n.kind == kDir && t.kind != kDir:
		return nil, syscall.ENOTDIR
	case n.kind != kDir && t.kind == kDir:
		return nil, syscall.EISDIR
	case t.kind == kDir && len(t.entries) > 0:
		return nil, syscall.ENOTEMPTY
	}
	return n, 0
}

// Open opens inode ino with open(2) flags (access mode, O_TRUNC); it is
// logged, with whether it asked for write access.
func (fs *FS) Open(c Caller, ino uint64, flags uint32) syscall.Errno {
	return fs.locked(func() syscall.Errno {
		n, e := fs.node(ino)
		if e != 0 {
			return e
		}
		write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
		op, e := fs.begin(c, OpOpen, fs.pathOf(n), "", write)
		op.Ino = n.ino
		if e == 0 && n.kind == kDir && write {
			e = syscall.EISDIR
		}
		if e == 0 && flags&syscall.O_TRUNC != 0 && write && n.kind == kFile && len(n.data) > 0 {
			op.Trunc = true
			n.truncate(0)
		}
		return fs.end(op, e)
	})
}

// OpenDir opens a directory (logged as an open) and returns its listing
// as of now, "." and ".." first, then by name.
func (fs *FS) OpenDir(c Caller, ino uint64) (list []DirEntry, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		d, e := fs.dir(ino)
		if e != 0 {
			return e
		}
		op, e := fs.begin(c, OpOpen, fs.pathOf(d), "", false)
		op.Ino = d.ino
		if e := fs.end(op, e); e != 0 {
			return e
		}
		list = fs.listing(d)
		return 0
	})
	return list, e
}

// Read reads into buf from off and returns the number of bytes read.
func (fs *FS) Read(ino uint64, off int64, buf []byte) (k int, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		n, e := fs.node(ino)
		if e != 0 {
			return e
		}
		if n.kind != kFile {
			return syscall.EISDIR
		}
		if off < int64(len(n.data)) {
			k = copy(buf, n.data[off:])
		}
		n.atime = time.Now()
		return 0
	})
	return k, e
}

// Write writes data at off and returns the number of bytes written: fewer
// than asked when the space limit cuts the write short.
func (fs *FS) Write(c Caller, ino uint64, off int64, data []byte) (k int, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		n, e := fs.node(ino)
		if e != 0 {
			return e
		}
		if n.kind != kFile {
			return syscall.EISDIR
		}
		p := fs.pathOf(n)
		op, e := fs.begin(c, OpWrite, p, "", true)
		op.Ino, op.Off, op.Len = n.ino, off, int64(len(data))
		if e == 0 && fs.spaceLimit > 0 && fs.written+int64(len(data)) > fs.spaceLimit {
			room := fs.spaceLimit - fs.written
			op.Injected = true
			if room <= 0 {
				e = syscall.ENOSPC
			} else {
				data = data[:room]
				op.Len = room
			}
		}
		if e == 0 {
			if fs.tracked(p) {
				fs.recordTorn(op.Seq, OpWrite, p, n, off, data)
			}
			if fs.journal {
				op.data = append([]byte(nil), data...)
			}
			n.writeAt(off, data)
			fs.written += int64(len(data))
			k = len(data)
		}
		return fs.end(op, e)
	})
	if e != 0 {
		k = 0
	}
	return k, e
}

// Fsync is fsync(2) (or fdatasync) of inode ino; for a directory it is a
// directory fsync. A failed one drops the dirty state (fsyncgate); one
// cut off by the power changes nothing.
func (fs *FS) Fsync(c Caller, ino uint64) syscall.Errno {
	return fs.locked(func() syscall.Errno {
		n, e := fs.node(ino)
		if e != 0 {
			return e
		}
		kind := OpFsync
		if n.kind == kDir {
			kind = OpFsyncDir
		}
		op, e := fs.begin(c, kind, fs.pathOf(n), "", false)
		op.Ino, op.Perm, op.UID, op.GID = n.ino, n.perm, n.uid, n.gid
		if op.Crash == "" {
			if n.kind == kDir {
				fs.fsyncDir(n, e)
			} else {
				fs.fsyncFile(n, e)
			}
		}
		return fs.end(op, e)
	})
}

// StatFs returns the file system's sizes: the space limit, or 1 TiB.
func (fs *FS) StatFs() (st FSStat, e syscall.Errno) {
	e = fs.locked(func() syscall.Errno {
		const bsize = 4096
		total := uint64(1 << 40)
		if fs.spaceLimit > 0 {
			total = uint64(fs.spaceLimit)
		}
		used := min(uint64(fs.written), total)
		st = FSStat{Bsize: bsize, Blocks: total / bsize, Bfree: (total - used) / bsize, Files: 1 << 24}
		st.Ffree = st.Files - uint64(len(fs.inodes))
		return 0
	})
	return st, e
}

// Alive is the check every other kernel request makes (flush): EIO once
// the power is off.
func (fs *FS) Alive() syscall.Errno {
	return fs.locked(func() syscall.Errno { return 0 })
}
