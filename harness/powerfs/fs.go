package powerfs

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rootIno is the root directory's inode number (FUSE's root node id).
const rootIno = 1

// kind is an inode's type.
type kind uint8

const (
	kFile kind = iota + 1
	kDir
	kSymlink
)

// ifmt returns the S_IF* bits of a kind.
func (k kind) ifmt() uint32 {
	switch k {
	case kDir:
		return syscall.S_IFDIR
	case kSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// dstate is an inode's durable state. It is never modified once made:
// fsync replaces it, and snapshots share it.
type dstate struct {
	kind     kind
	perm     uint32
	uid, gid uint32
	data     []byte            // file
	patches  []patch           // file: persisted on top (Snapshot.Persist)
	entries  map[string]uint64 // directory
	target   string            // symlink
}

// inode is one file, directory or symlink: its volatile state, and a
// pointer to its durable state.
type inode struct {
	ino      uint64
	kind     kind
	perm     uint32 // permission bits (07777)
	uid, gid uint32
	nlink    uint32
	atime    time.Time
	mtime    time.Time
	ctime    time.Time

	// File: data is the volatile content; dirty the ranges written (or
	// truncated) since they were last made durable or dropped.
	data  []byte
	dirty spans

	// Directory: entries are the volatile names. gen[name] is the
	// generation of the name's last change; changes with a generation up
	// to lostGen were dropped by a failed directory fsync.
	entries map[string]uint64
	gen     map[string]uint64
	lostGen uint64

	// Symlink target.
	target string

	// parent and name are one volatile link of the inode, for paths in
	// logs and rules.
	parent uint64
	name   string

	durable *dstate
}

// Option configures an FS.
type Option func(*FS)

// Owner makes the root directory (and directories made with MkdirAll
// without an owner) belong to uid and gid, so that an unprivileged
// pg_basebackup can write there.
func Owner(uid, gid uint32) Option {
	return func(fs *FS) { fs.uid, fs.gid = uid, gid }
}

// RootMode sets the root directory's permission bits (default 0755).
func RootMode(perm uint32) Option {
	return func(fs *FS) { fs.rootPerm = perm & 07777 }
}

// OnOp calls hook with every logged operation, synchronously and with
// the file system locked: the hook must not call the FS back.
func OnOp(hook func(Op)) Option {
	return func(fs *FS) { fs.hook = hook }
}

// Timeouts sets how long the kernel may cache entries and attributes
// (default 0: every lookup and stat reaches the layer).
func Timeouts(entry, attr time.Duration) Option {
	return func(fs *FS) { fs.entryTimeout, fs.attrTimeout = entry, attr }
}

// FS is the file system: the model, its faults and its log. Make one with
// New, prepare it (MkdirAll), Mount it, and Unmount it when done.
type FS struct {
	mu      sync.Mutex
	start   time.Time
	inodes  map[uint64]*inode
	nextIno uint64

	uid, gid     uint32
	rootPerm     uint32
	hook         func(Op)
	entryTimeout time.Duration
	attrTimeout  time.Duration

	log    []Op
	counts [numKinds]int

	rules      []*ruleState
	spaceLimit int64
	written    int64
	crashAt    []CrashPoint

	frozen  bool
	crashed chan struct{}
	crashOp *Op
	refused int

	// gen counts directory entry changes.
	gen uint64

	// tornMatch says which base names TornStates records (nil: none).
	tornMatch func(name string) bool
	torn      []tornRecord

	// journal keeps the data of writes in the log; setup lists the
	// MkdirAll calls and marks the Mark calls (see Journal).
	journal bool
	setup   []SetupDir
	marks   []Mark
	// forced is the errno a replay injects into the next operation.
	forced syscall.Errno

	mount *mount
}

// New returns an empty file system whose root is durable.
func New(opts ...Option) *FS {
	fs := &FS{
		start:    time.Now(),
		inodes:   map[uint64]*inode{},
		nextIno:  rootIno + 1,
		rootPerm: 0o755,
		crashed:  make(chan struct{}),
	}
	for _, o := range opts {
		o(fs)
	}
	now := time.Now()
	root := &inode{ino: rootIno, kind: kDir, perm: fs.rootPerm, uid: fs.uid, gid: fs.gid, nlink: 2,
		atime: now, mtime: now, ctime: now, entries: map[string]uint64{}, gen: map[string]uint64{}}
	root.durable = &dstate{kind: kDir, perm: root.perm, uid: root.uid, gid: root.gid, entries: map[string]uint64{}}
	fs.inodes[rootIno] = root
	return fs
}

// MkdirAll makes the directory rel (slash-separated, relative to the
// root) and its parents, durably, as if made and synced before the trial:
// the backup target and tablespace directories an operator prepared. Its
// last element gets perm and the FS owner.
func (fs *FS) MkdirAll(rel string, perm uint32) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	cur := fs.inodes[rootIno]
	for _, el := range strings.Split(path.Clean(rel), "/") {
		if el == "." || el == "" {
			continue
		}
		if el == ".." {
			return fmt.Errorf("powerfs: mkdir %s: no .. allowed", rel)
		}
		if ino, ok := cur.entries[el]; ok {
			n := fs.inodes[ino]
			if n.kind != kDir {
				return fmt.Errorf("powerfs: mkdir %s: %s is not a directory", rel, fs.pathOf(n))
			}
			cur = n
			continue
		}
		n := fs.newInode(kDir, perm&07777, fs.uid, fs.gid)
		fs.link(cur, el, n)
		cur.durable = fs.dirDurable(cur)
		cur = n
	}
	fs.setup = append(fs.setup, SetupDir{Path: rel, Perm: perm})
	return nil
}

// Log returns a copy of the operation log.
func (fs *FS) Log() []Op {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]Op(nil), fs.log...)
}

// Count returns how many operations of a kind were attempted.
func (fs *FS) Count(k OpKind) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if k <= 0 || k >= numKinds {
		return 0
	}
	return fs.counts[k]
}

// Counts returns the number of operations of every kind, by name.
func (fs *FS) Counts() map[string]int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := map[string]int{}
	for k := OpOpen; k < numKinds; k++ {
		if fs.counts[k] > 0 {
			out[k.String()] = fs.counts[k]
		}
	}
	return out
}

// Written returns the number of bytes written so far.
func (fs *FS) Written() int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.written
}

// SetRules replaces the fault rules (their counts start again).
func (fs *FS) SetRules(rules ...Rule) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rules = nil
	for _, r := range rules {
		fs.rules = append(fs.rules, &ruleState{Rule: r})
	}
}

// AddRule adds a fault rule.
func (fs *FS) AddRule(r Rule) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rules = append(fs.rules, &ruleState{Rule: r})
}

// RuleHits returns, per rule in order, how many operations it failed.
func (fs *FS) RuleHits() []int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]int, len(fs.rules))
	for i, r := range fs.rules {
		out[i] = r.fired
	}
	return out
}

// SetSpaceLimit makes writes fail with ENOSPC once n bytes in all were
// written through the layer (the write that crosses n is short); 0
// removes the limit.
func (fs *FS) SetSpaceLimit(n int64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.spaceLimit = n
}

// SetCrashPoints replaces the crash points; the first one reached cuts
// the power.
func (fs *FS) SetCrashPoints(cps ...CrashPoint) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.crashAt = append([]CrashPoint(nil), cps...)
}

// Crashed is closed when the power is cut (by PowerLoss or a crash point).
func (fs *FS) Crashed() <-chan struct{} { return fs.crashed }

// CrashOp returns the operation a crash point cut the power at.
func (fs *FS) CrashOp() (Op, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.crashOp == nil {
		return Op{}, false
	}
	return *fs.crashOp, true
}

// Refused returns how many operations failed because the power was off.
func (fs *FS) Refused() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.refused
}

// PowerLoss cuts the power: from now on every operation fails with EIO.
// It returns the durable state. Calling it again returns the same state.
func (fs *FS) PowerLoss() *Snapshot {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.freeze()
	return fs.snapshot()
}

// Frozen says whether the power was cut.
func (fs *FS) Frozen() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.frozen
}

// Durable returns the durable state as of now (without cutting the power).
func (fs *FS) Durable() *Snapshot {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.snapshot()
}

// TrackTorn records torn states (see TornStates) of files whose base name
// is one of names.
func (fs *FS) TrackTorn(names ...string) {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	fs.TrackTornFunc(func(name string) bool { return set[name] })
}

// TrackTornFunc records torn states (see TornStates) of files whose base
// name match accepts: for the status file, "backup_status" and its
// temporary files, "backup_status.PID.tmp" of a pid not known in advance
// (and "backup_status.tmp", which earlier writers used). match is called
// with the layer's lock held, and must not call back into the layer.
func (fs *FS) TrackTornFunc(match func(name string) bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.tornMatch = match
}

// freeze cuts the power; fs.mu is held.
func (fs *FS) freeze() {
	if !fs.frozen {
		fs.frozen = true
		close(fs.crashed)
	}
}

// newInode makes an inode with its initial durable state (empty); fs.mu
// is held.
func (fs *FS) newInode(k kind, perm, uid, gid uint32) *inode {
	now := time.Now()
	n := &inode{ino: fs.nextIno, kind: k, perm: perm & 07777, uid: uid, gid: gid, atime: now, mtime: now, ctime: now}
	fs.nextIno++
	d := &dstate{kind: k, perm: n.perm, uid: uid, gid: gid}
	if k == kDir {
		n.entries = map[string]uint64{}
		n.gen = map[string]uint64{}
		d.entries = map[string]uint64{}
	}
	n.durable = d
	fs.inodes[n.ino] = n
	return n
}

// touch marks a directory entry changed; fs.mu is held.
func (fs *FS) touch(dir *inode, name string) {
	fs.gen++
	dir.gen[name] = fs.gen
	now := time.Now()
	dir.mtime, dir.ctime = now, now
}

// link adds name -> n in dir (volatile); fs.mu is held.
func (fs *FS) link(dir *inode, name string, n *inode) {
	dir.entries[name] = n.ino
	fs.touch(dir, name)
	n.nlink++
	if n.kind == kDir {
		n.nlink++ // "."
		dir.nlink++
	}
	n.parent, n.name = dir.ino, name
	n.ctime = time.Now()
}

// unlink removes name from dir (volatile); fs.mu is held.
func (fs *FS) unlink(dir *inode, name string) {
	ino, ok := dir.entries[name]
	if !ok {
		return
	}
	delete(dir.entries, name)
	fs.touch(dir, name)
	n := fs.inodes[ino]
	if n.nlink > 0 {
		n.nlink--
	}
	if n.kind == kDir {
		n.nlink = 0
		if dir.nlink > 2 {
			dir.nlink--
		}
	}
	if n.parent == dir.ino && n.name == name {
		// Find another link for its path, if any.
		n.parent, n.name = 0, name
	}
	n.ctime = time.Now()
}

// dirDurable returns a directory's new durable state after an fsync:
// its volatile entries, except changes a failed fsync dropped; fs.mu is
// held.
func (fs *FS) dirDurable(dir *inode) *dstate {
	old := dir.durable
	ents := make(map[string]uint64, len(dir.entries))
	decide := func(name string) {
		if g, ok := dir.gen[name]; ok && g > dir.lostGen {
			if ino, ok := dir.entries[name]; ok {
				ents[name] = ino
			}
		} else if ino, ok := old.entries[name]; ok {
			ents[name] = ino
		}
	}
	for name := range dir.entries {
		decide(name)
	}
	for name := range old.entries {
		decide(name)
	}
	return &dstate{kind: kDir, perm: dir.perm, uid: dir.uid, gid: dir.gid, entries: ents}
}

// fileDurable returns a file's new durable state after an fsync: the old
// durable bytes with the dirty ranges of the volatile data over them, at
// the volatile size; fs.mu is held.
func fileDurable(n *inode) *dstate {
	size := int64(len(n.data))
	data := make([]byte, size)
	d := n.dirty.clip(size)
	if !d.covers(size) {
		copy(data, n.durable.data)
	}
	for _, s := range d {
		copy(data[s.off:s.end], n.data[s.off:s.end])
	}
	return &dstate{kind: kFile, perm: n.perm, uid: n.uid, gid: n.gid, data: data}
}

// pathOf returns an inode's path relative to the root ("." for the
// root); fs.mu is held.
func (fs *FS) pathOf(n *inode) string {
	if n.ino == rootIno {
		return "."
	}
	var parts []string
	for i := 0; n != nil && n.ino != rootIno && i < 4096; i++ {
		if n.parent == 0 {
			parts = append(parts, "(unlinked)/"+n.name)
			break
		}
		parts = append(parts, n.name)
		n = fs.inodes[n.parent]
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "/")
}

// childPath joins a directory's path and a name; fs.mu is held.
func (fs *FS) childPath(dir *inode, name string) string {
	p := fs.pathOf(dir)
	if p == "." {
		return name
	}
	return p + "/" + name
}

// listing returns a directory's entries sorted by name; fs.mu is held.
func (fs *FS) listing(dir *inode) []DirEntry {
	out := []DirEntry{{".", dir.ino, syscall.S_IFDIR}, {"..", dir.parent, syscall.S_IFDIR}}
	if dir.ino == rootIno {
		out[1].Ino = rootIno
	}
	names := make([]string, 0, len(dir.entries))
	for name := range dir.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := fs.inodes[dir.entries[name]]
		out = append(out, DirEntry{name, n.ino, n.kind.ifmt()})
	}
	return out
}

// Stats returns how many regular files and directories (the root
// included) are linked in the volatile state: what a sync walk would
// visit.
func (fs *FS) Stats() (files, dirs int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, n := range fs.inodes {
		if n.nlink == 0 && n.ino != rootIno {
			continue
		}
		switch n.kind {
		case kFile:
			files++
		case kDir:
			dirs++
		}
	}
	return files, dirs
}

// Rules returns the fault rules in force.
func (fs *FS) Rules() []Rule {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]Rule, len(fs.rules))
	for i, r := range fs.rules {
		out[i] = r.Rule
	}
	return out
}

// SpaceLimit returns the byte count at which writes fail with ENOSPC (0:
// none).
func (fs *FS) SpaceLimit() int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.spaceLimit
}
