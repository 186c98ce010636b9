package powerfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
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
	srv, err := fuse.NewServer(newRaw(fs), dir, opts)
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

// raw translates FUSE requests into the model's calls (calls.go): the
// model does the work and the locking; raw converts arguments, attributes
// and errnos, and keeps the listings of open directories.
type raw struct {
	fuse.RawFileSystem
	fs *FS

	mu     sync.Mutex
	lists  map[uint64][]DirEntry
	nextFh uint64
}

func newRaw(fs *FS) *raw {
	return &raw{RawFileSystem: fuse.NewDefaultRawFileSystem(), fs: fs, lists: map[uint64][]DirEntry{}, nextFh: 1}
}

func (r *raw) String() string { return "powerfs" }

func (r *raw) Init(*fuse.Server) {}

// who returns the process behind a request.
func who(h *fuse.InHeader) Caller {
	return Caller{PID: h.Caller.Pid, UID: h.Caller.Uid, GID: h.Caller.Gid}
}

func st(e syscall.Errno) fuse.Status { return fuse.Status(e) }

// fill converts the model's attributes.
func fill(a Attr, out *fuse.Attr) {
	out.Ino = a.Ino
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Uid, out.Gid = a.UID, a.GID
	out.Size = a.Size
	out.Blocks = (a.Size + 511) / 512
	out.Blksize = 4096
	out.SetTimes(&a.Atime, &a.Mtime, &a.Ctime)
}

// entry answers a request that returns an inode: its attributes and how
// long the kernel may cache them.
func (r *raw) entry(a Attr, e syscall.Errno, out *fuse.EntryOut) fuse.Status {
	if e != 0 {
		return st(e)
	}
	out.NodeId = a.Ino
	out.Generation = 1
	fill(a, &out.Attr)
	out.SetEntryTimeout(r.fs.entryTimeout)
	out.SetAttrTimeout(r.fs.attrTimeout)
	return fuse.OK
}

// attr answers a request that returns attributes.
func (r *raw) attr(a Attr, e syscall.Errno, out *fuse.AttrOut) fuse.Status {
	if e != 0 {
		return st(e)
	}
	fill(a, &out.Attr)
	out.SetTimeout(r.fs.attrTimeout)
	return fuse.OK
}

func (r *raw) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	a, e := r.fs.Lookup(h.NodeId, name)
	return r.entry(a, e, out)
}

func (r *raw) Forget(nodeid, nlookup uint64) {}

func (r *raw) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	a, e := r.fs.GetAttr(in.NodeId)
	return r.attr(a, e, out)
}

func (r *raw) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	var ch AttrChange
	if v, ok := in.GetSize(); ok {
		ch.Size = &v
	}
	if v, ok := in.GetMode(); ok {
		ch.Mode = &v
	}
	if v, ok := in.GetUID(); ok {
		ch.UID = &v
	}
	if v, ok := in.GetGID(); ok {
		ch.GID = &v
	}
	if v, ok := in.GetMTime(); ok {
		ch.Mtime = &v
	}
	if v, ok := in.GetATime(); ok {
		ch.Atime = &v
	}
	a, e := r.fs.SetAttr(who(&in.InHeader), in.NodeId, ch)
	return r.attr(a, e, out)
}

func (r *raw) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if in.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fuse.EPERM
	}
	a, e := r.fs.Create(who(&in.InHeader), in.NodeId, name, in.Mode&07777)
	return r.entry(a, e, out)
}

func (r *raw) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	a, e := r.fs.Mkdir(who(&in.InHeader), in.NodeId, name, in.Mode&07777)
	return r.entry(a, e, out)
}

func (r *raw) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target string, name string, out *fuse.EntryOut) fuse.Status {
	a, e := r.fs.Symlink(who(h), h.NodeId, name, target)
	return r.entry(a, e, out)
}

func (r *raw) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	target, e := r.fs.Readlink(h.NodeId)
	return []byte(target), st(e)
}

func (r *raw) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	a, e := r.fs.Create(who(&in.InHeader), in.NodeId, name, in.Mode&07777)
	return r.entry(a, e, &out.EntryOut)
}

func (r *raw) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	a, e := r.fs.Link(who(&in.InHeader), in.Oldnodeid, in.NodeId, name)
	return r.entry(a, e, out)
}

func (r *raw) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return st(r.fs.Unlink(who(h), h.NodeId, name))
}

func (r *raw) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return st(r.fs.Rmdir(who(h), h.NodeId, name))
}

func (r *raw) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName string, newName string) fuse.Status {
	return st(r.fs.Rename(who(&in.InHeader), in.NodeId, oldName, in.Newdir, newName, in.Flags))
}

func (r *raw) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return fuse.OK
}

func (r *raw) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return st(r.fs.Open(who(&in.InHeader), in.NodeId, in.Flags))
}

func (r *raw) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	k, e := r.fs.Read(in.NodeId, int64(in.Offset), buf[:min(int(in.Size), len(buf))])
	if e != 0 {
		return nil, st(e)
	}
	return fuse.ReadResultData(buf[:k]), fuse.OK
}

func (r *raw) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	k, e := r.fs.Write(who(&in.InHeader), in.NodeId, int64(in.Offset), data)
	return uint32(k), st(e)
}

func (r *raw) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return st(r.fs.Alive())
}

func (r *raw) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {}

func (r *raw) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return st(r.fs.Fsync(who(&in.InHeader), in.NodeId))
}

func (r *raw) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return st(r.fs.Fsync(who(&in.InHeader), in.NodeId))
}

func (r *raw) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	list, e := r.fs.OpenDir(who(&in.InHeader), in.NodeId)
	if e != 0 {
		return st(e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out.Fh = r.nextFh
	r.nextFh++
	r.lists[out.Fh] = list
	return fuse.OK
}

func (r *raw) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if e := r.fs.Alive(); e != 0 {
		return st(e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	list, ok := r.lists[in.Fh]
	if !ok {
		return fuse.EBADF
	}
	for i := int(in.Offset); i < len(list); i++ {
		de := list[i]
		if !out.AddDirEntry(fuse.DirEntry{Name: de.Name, Ino: de.Ino, Mode: de.Mode, Off: uint64(i + 1)}) {
			break
		}
	}
	return fuse.OK
}

func (r *raw) ReleaseDir(in *fuse.ReleaseIn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.lists, in.Fh)
}

func (r *raw) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	s, e := r.fs.StatFs()
	if e != 0 {
		return st(e)
	}
	out.Bsize, out.Frsize, out.NameLen = uint32(s.Bsize), uint32(s.Bsize), 255
	out.Blocks, out.Bfree, out.Bavail = s.Blocks, s.Bfree, s.Bfree
	out.Files, out.Ffree = s.Files, s.Ffree
	return fuse.OK
}
