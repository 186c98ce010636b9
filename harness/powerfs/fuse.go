package powerfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// mount is a mounted FS.
type mount struct {
	dir    string
	server *fuse.Server
	done   chan struct{}
}

// Mount mounts the file system on dir (an existing directory) and serves
// it until Unmount. It needs root (or CAP_SYS_ADMIN) and /dev/fuse; it
// mounts directly, without a fusermount binary. Other users reach the
// mount (allow_other) under the kernel's permission checks
// (default_permissions). A cancelled ctx stops it before mounting;
// serving goes on until Unmount.
//
// The serving process must not start a program whose working directory
// (exec.Cmd.Dir) is on the mount: the child changes into it between fork
// and exec, while the forking thread keeps one of the Go runtime's Ps, and
// a garbage collection in that window waits for that P while the file
// system that must answer the child cannot run. Let the program change
// directory itself, after exec.
func (fs *FS) Mount(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("powerfs: mount %s: %w", dir, err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("powerfs: mount %s: the kernel's FUSE device is missing: %w", dir, err)
	}
	fs.mu.Lock()
	if fs.mount != nil {
		fs.mu.Unlock()
		return fmt.Errorf("powerfs: mount %s: already mounted on %s", dir, fs.mount.dir)
	}
	fs.mu.Unlock()
	opts := &fuse.MountOptions{
		DirectMountStrict: true,
		AllowOther:        true,
		FsName:            "powerfs",
		Name:              "powerfs",
		Options:           []string{"default_permissions"},
		DisableXAttrs:     true,
		// Every entry of a listing gets a LOOKUP of its own.
		DisableReadDirPlus: true,
		// Never let the kernel read or write a backing file directly.
		DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		MaxWrite:             1 << 20,
	}
	srv, err := fuse.NewServer(&raw{RawFileSystem: fuse.NewDefaultRawFileSystem(), fs: fs}, dir, opts)
	if err != nil {
		return fmt.Errorf("powerfs: mount %s: %w", dir, err)
	}
	m := &mount{dir: dir, server: srv, done: make(chan struct{})}
	go func() {
		srv.Serve()
		close(m.done)
	}()
	if err := srv.WaitMount(); err != nil {
		srv.Unmount()
		return fmt.Errorf("powerfs: mount %s: %w", dir, err)
	}
	fs.mu.Lock()
	fs.mount = m
	fs.mu.Unlock()
	return nil
}

// Unmount unmounts the file system. When a process still holds a file
// open, it cuts the power (every operation fails from then on) and
// detaches the mount lazily: the directory is free at once and the kernel
// drops the connection when the last file is closed.
func (fs *FS) Unmount() error {
	fs.mu.Lock()
	m := fs.mount
	fs.mount = nil
	fs.mu.Unlock()
	if m == nil {
		return nil
	}
	if err := m.server.Unmount(); err == nil {
		<-m.done
		return nil
	}
	fs.mu.Lock()
	fs.freeze()
	fs.mu.Unlock()
	if err := syscall.Unmount(m.dir, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("powerfs: unmount %s: %w", m.dir, err)
	}
	select {
	case <-m.done:
	case <-time.After(200 * time.Millisecond):
		// The server stops when the last user closes its files.
	}
	return nil
}

// raw serves FUSE requests from the model. Every method holds fs.mu.
type raw struct {
	fuse.RawFileSystem
	fs *FS
}

func (r *raw) String() string { return "powerfs" }

func (r *raw) Init(*fuse.Server) {}

func who(h *fuse.InHeader) caller {
	return caller{pid: h.Caller.Pid, uid: h.Caller.Uid, gid: h.Caller.Gid}
}

func st(e syscall.Errno) fuse.Status { return fuse.Status(e) }

// attr fills a's attributes from n; fs.mu is held.
func (fs *FS) attr(n *inode, a *fuse.Attr) {
	a.Ino = n.ino
	a.Mode = n.kind.ifmt() | n.perm
	a.Nlink = n.nlink
	if a.Nlink == 0 && n.kind == kDir {
		a.Nlink = 2
	}
	a.Uid, a.Gid = n.uid, n.gid
	switch n.kind {
	case kFile:
		a.Size = uint64(len(n.data))
	case kSymlink:
		a.Size = uint64(len(n.target))
	default:
		a.Size = 4096
	}
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = 4096
	a.SetTimes(&n.atime, &n.mtime, &n.ctime)
}

// entry fills an EntryOut for n; fs.mu is held.
func (fs *FS) entry(n *inode, out *fuse.EntryOut) {
	out.NodeId = n.ino
	out.Generation = 1
	fs.attr(n, &out.Attr)
	out.SetEntryTimeout(fs.entryTimeout)
	out.SetAttrTimeout(fs.attrTimeout)
}

// dir returns the directory inode of a node id.
func (fs *FS) dir(ino uint64) (*inode, syscall.Errno) {
	n, ok := fs.inodes[ino]
	if !ok {
		return nil, syscall.ENOENT
	}
	if n.kind != kDir {
		return nil, syscall.ENOTDIR
	}
	return n, 0
}

func (r *raw) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	d, e := fs.dir(h.NodeId)
	if e != 0 {
		return st(e)
	}
	ino, ok := d.entries[name]
	if !ok {
		return fuse.ENOENT
	}
	fs.entry(fs.inodes[ino], out)
	return fuse.OK
}

func (r *raw) Forget(nodeid, nlookup uint64) {}

func (r *raw) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	n, ok := fs.inodes[in.NodeId]
	if !ok {
		return fuse.ENOENT
	}
	fs.attr(n, &out.Attr)
	out.SetTimeout(fs.attrTimeout)
	return fuse.OK
}

func (r *raw) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	n, ok := fs.inodes[in.NodeId]
	if !ok {
		return fuse.ENOENT
	}
	if size, ok := in.GetSize(); ok {
		if n.kind != kFile {
			return fuse.Status(syscall.EISDIR)
		}
		op, e := fs.begin(who(&in.InHeader), OpTruncate, fs.pathOf(n), "", true)
		op.Off = int64(size)
		if e == 0 {
			n.truncate(int64(size))
		}
		if e := fs.end(op, e); e != 0 {
			return st(e)
		}
	}
	now := time.Now()
	if mode, ok := in.GetMode(); ok {
		n.perm = mode & 07777
		n.ctime = now
	}
	if uid, ok := in.GetUID(); ok {
		n.uid = uid
		n.ctime = now
	}
	if gid, ok := in.GetGID(); ok {
		n.gid = gid
		n.ctime = now
	}
	if t, ok := in.GetMTime(); ok {
		n.mtime = t
	}
	if t, ok := in.GetATime(); ok {
		n.atime = t
	}
	fs.attr(n, &out.Attr)
	out.SetTimeout(fs.attrTimeout)
	return fuse.OK
}

// mknode makes a new inode named name in the directory of h.NodeId,
// logged as kind; fs.mu is held.
func (fs *FS) mknode(h *fuse.InHeader, kind OpKind, name string, k kind, perm uint32, target string) (*inode, syscall.Errno) {
	if fs.off() {
		return nil, syscall.EIO
	}
	d, e := fs.dir(h.NodeId)
	if e != 0 {
		return nil, e
	}
	op, e := fs.begin(who(h), kind, fs.childPath(d, name), "", true)
	if e == 0 {
		if _, exists := d.entries[name]; exists {
			e = syscall.EEXIST
		}
	}
	var n *inode
	if e == 0 {
		gid := h.Caller.Gid
		if d.perm&syscall.S_ISGID != 0 {
			gid = d.gid
			if k == kDir {
				perm |= syscall.S_ISGID
			}
		}
		n = fs.newInode(k, perm, h.Caller.Uid, gid)
		n.target = target
		if k == kSymlink {
			n.durable = &dstate{kind: kSymlink, perm: n.perm, uid: n.uid, gid: n.gid, target: target}
		}
		fs.link(d, name, n)
	}
	return n, fs.end(op, e)
}

func (r *raw) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if in.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fuse.EPERM
	}
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.mknode(&in.InHeader, OpCreate, name, kFile, in.Mode&07777, "")
	if e != 0 {
		return st(e)
	}
	fs.entry(n, out)
	return fuse.OK
}

func (r *raw) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.mknode(&in.InHeader, OpMkdir, name, kDir, in.Mode&07777, "")
	if e != 0 {
		return st(e)
	}
	fs.entry(n, out)
	return fuse.OK
}

func (r *raw) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target string, name string, out *fuse.EntryOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.mknode(h, OpSymlink, name, kSymlink, 0o777, target)
	if e != 0 {
		return st(e)
	}
	fs.entry(n, out)
	return fuse.OK
}

func (r *raw) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return nil, fuse.EIO
	}
	n, ok := fs.inodes[h.NodeId]
	if !ok || n.kind != kSymlink {
		return nil, fuse.EINVAL
	}
	return []byte(n.target), fuse.OK
}

func (r *raw) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.mknode(&in.InHeader, OpCreate, name, kFile, in.Mode&07777, "")
	if e != 0 {
		return st(e)
	}
	fs.entry(n, &out.EntryOut)
	out.Fh = fs.newHandle(&handle{ino: n.ino, write: in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY})
	return fuse.OK
}

func (fs *FS) newHandle(h *handle) uint64 {
	fh := fs.nextFh
	fs.nextFh++
	fs.handles[fh] = h
	return fh
}

func (r *raw) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	d, e := fs.dir(in.NodeId)
	if e != 0 {
		return st(e)
	}
	n, ok := fs.inodes[in.Oldnodeid]
	if !ok {
		return fuse.ENOENT
	}
	op, e := fs.begin(who(&in.InHeader), OpLink, fs.pathOf(n), fs.childPath(d, name), true)
	if e == 0 {
		switch {
		case n.kind == kDir:
			e = syscall.EPERM
		default:
			if _, exists := d.entries[name]; exists {
				e = syscall.EEXIST
			}
		}
	}
	if e == 0 {
		fs.link(d, name, n)
	}
	if e := fs.end(op, e); e != 0 {
		return st(e)
	}
	fs.entry(n, out)
	return fuse.OK
}

func (r *raw) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return r.remove(h, name, OpUnlink)
}

func (r *raw) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return r.remove(h, name, OpRmdir)
}

func (r *raw) remove(h *fuse.InHeader, name string, kind OpKind) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	d, e := fs.dir(h.NodeId)
	if e != 0 {
		return st(e)
	}
	op, e := fs.begin(who(h), kind, fs.childPath(d, name), "", true)
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
	}
	if e == 0 {
		fs.unlink(d, name)
	}
	return st(fs.end(op, e))
}

func (r *raw) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName string, newName string) fuse.Status {
	const renameNoReplace = 1
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	src, e := fs.dir(in.NodeId)
	if e != 0 {
		return st(e)
	}
	dst, e := fs.dir(in.Newdir)
	if e != 0 {
		return st(e)
	}
	op, e := fs.begin(who(&in.InHeader), OpRename, fs.childPath(src, oldName), fs.childPath(dst, newName), true)
	var n *inode
	if e == 0 {
		ino, ok := src.entries[oldName]
		if !ok {
			e = syscall.ENOENT
		} else {
			n = fs.inodes[ino]
		}
	}
	if e == 0 && in.Flags&^renameNoReplace != 0 {
		e = syscall.EINVAL // RENAME_EXCHANGE, RENAME_WHITEOUT
	}
	if e == 0 {
		if tino, ok := dst.entries[newName]; ok {
			t := fs.inodes[tino]
			switch {
			case in.Flags&renameNoReplace != 0:
				e = syscall.EEXIST
			case tino == n.ino:
				// Same inode: nothing to do (POSIX).
			case n.kind == kDir && t.kind != kDir:
				e = syscall.ENOTDIR
			case n.kind != kDir && t.kind == kDir:
				e = syscall.EISDIR
			case t.kind == kDir && len(t.entries) > 0:
				e = syscall.ENOTEMPTY
			}
		}
	}
	if e == 0 && fs.tracked(op.Path, op.NewPath) {
		fs.recordTorn(op.Seq, OpRename, op.Path, n, 0, nil)
	}
	if e == 0 {
		// Renaming a name onto another name of the same inode does
		// nothing (POSIX).
		if tino, ok := dst.entries[newName]; !ok || tino != n.ino {
			if ok {
				fs.unlink(dst, newName)
			}
			fs.unlink(src, oldName)
			fs.link(dst, newName, n)
		}
	}
	return st(fs.end(op, e))
}

func (r *raw) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return fuse.OK
}

func (r *raw) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	n, ok := fs.inodes[in.NodeId]
	if !ok {
		return fuse.ENOENT
	}
	write := in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY
	op, e := fs.begin(who(&in.InHeader), OpOpen, fs.pathOf(n), "", write)
	if e == 0 && n.kind == kDir && write {
		e = syscall.EISDIR
	}
	if e := fs.end(op, e); e != 0 {
		return st(e)
	}
	if in.Flags&syscall.O_TRUNC != 0 && write && n.kind == kFile && len(n.data) > 0 {
		n.truncate(0)
	}
	out.Fh = fs.newHandle(&handle{ino: n.ino, write: write})
	return fuse.OK
}

func (r *raw) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return nil, fuse.EIO
	}
	n, ok := fs.inodes[in.NodeId]
	if !ok {
		return nil, fuse.ENOENT
	}
	if n.kind != kFile {
		return nil, fuse.Status(syscall.EISDIR)
	}
	var k int
	if off := int64(in.Offset); off < int64(len(n.data)) {
		k = copy(buf[:min(int(in.Size), len(buf))], n.data[off:])
	}
	n.atime = time.Now()
	return fuse.ReadResultData(buf[:k]), fuse.OK
}

func (r *raw) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return 0, fuse.EIO
	}
	n, ok := fs.inodes[in.NodeId]
	if !ok {
		return 0, fuse.ENOENT
	}
	if n.kind != kFile {
		return 0, fuse.Status(syscall.EISDIR)
	}
	p := fs.pathOf(n)
	op, e := fs.begin(who(&in.InHeader), OpWrite, p, "", true)
	op.Off, op.Len = int64(in.Offset), int64(len(data))
	if e == 0 && fs.spaceLimit > 0 && fs.written+int64(len(data)) > fs.spaceLimit {
		room := fs.spaceLimit - fs.written
		if room <= 0 {
			e = syscall.ENOSPC
			op.Injected = true
		} else {
			data = data[:room]
			op.Len = room
			op.Injected = true
		}
	}
	if e == 0 {
		if fs.tracked(p) {
			fs.recordTorn(op.Seq, OpWrite, p, n, int64(in.Offset), data)
		}
		n.writeAt(int64(in.Offset), data)
		fs.written += int64(len(data))
	}
	if e := fs.end(op, e); e != 0 {
		return 0, st(e)
	}
	return uint32(len(data)), fuse.OK
}

func (r *raw) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	return fuse.OK
}

func (r *raw) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.handles, in.Fh)
}

func (r *raw) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return r.fsync(in, OpFsync)
}

func (r *raw) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return r.fsync(in, OpFsyncDir)
}

func (r *raw) fsync(in *fuse.FsyncIn, kind OpKind) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	n, ok := fs.inodes[in.NodeId]
	if !ok {
		return fuse.ENOENT
	}
	if n.kind == kDir {
		kind = OpFsyncDir
	}
	op, e := fs.begin(who(&in.InHeader), kind, fs.pathOf(n), "", false)
	if op.Crash == "" {
		// A failed fsync drops the dirty state (fsyncgate); one cut off
		// by the power changes nothing.
		if n.kind == kDir {
			fs.fsyncDir(n, e)
		} else {
			fs.fsyncFile(n, e)
		}
	}
	return st(fs.end(op, e))
}

func (r *raw) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	d, e := fs.dir(in.NodeId)
	if e != 0 {
		return st(e)
	}
	op, e := fs.begin(who(&in.InHeader), OpOpen, fs.pathOf(d), "", false)
	if e := fs.end(op, e); e != 0 {
		return st(e)
	}
	out.Fh = fs.newHandle(&handle{ino: d.ino, list: fs.listing(d)})
	return fuse.OK
}

func (r *raw) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	h, ok := fs.handles[in.Fh]
	if !ok {
		return fuse.EBADF
	}
	for i := int(in.Offset); i < len(h.list); i++ {
		de := h.list[i]
		if !out.AddDirEntry(fuse.DirEntry{Name: de.name, Ino: de.ino, Mode: de.mode, Off: uint64(i + 1)}) {
			break
		}
	}
	return fuse.OK
}

func (r *raw) ReleaseDir(in *fuse.ReleaseIn) {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.handles, in.Fh)
}

func (r *raw) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	fs := r.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.off() {
		return fuse.EIO
	}
	const bsize = 4096
	total := uint64(1 << 40)
	if fs.spaceLimit > 0 {
		total = uint64(fs.spaceLimit)
	}
	used := uint64(fs.written)
	if used > total {
		used = total
	}
	out.Bsize, out.Frsize, out.NameLen = bsize, bsize, 255
	out.Blocks = total / bsize
	out.Bfree = (total - used) / bsize
	out.Bavail = out.Bfree
	out.Files = 1 << 24
	out.Ffree = out.Files - uint64(len(fs.inodes))
	return fuse.OK
}
