package powerfs

import (
	"bytes"
	"maps"
	"path"
	"slices"
	"sort"
)

// Volatile returns what the programs see now as a snapshot: every file's
// current content, every directory's current names.
func (fs *FS) Volatile() *Snapshot {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	s := &Snapshot{Seq: len(fs.log), nodes: make(map[uint64]*dstate, len(fs.inodes))}
	for ino, n := range fs.inodes {
		d := &dstate{kind: n.kind, perm: n.perm, uid: n.uid, gid: n.gid, target: n.target}
		switch n.kind {
		case kFile:
			d.data = append([]byte(nil), n.data...)
		case kDir:
			d.entries = maps.Clone(n.entries)
		}
		s.nodes[ino] = d
	}
	return s
}

// Persist returns the snapshot with the effects of ops, in order, made
// durable on top of it, as if the kernel had written them back before the
// power went although nothing synced them: a write's bytes (or, given a
// Torn op, a prefix of them), a truncate, a truncating open, a directory
// entry made, removed or renamed (a rename both ways at once). The
// snapshot itself is not changed; the result shares what ops leave alone.
func (s *Snapshot) Persist(ops ...Op) *Snapshot {
	out := &Snapshot{Seq: s.Seq, nodes: map[uint64]*dstate{}, base: s}
	if s.base != nil {
		out.base = s.base
		maps.Copy(out.nodes, s.nodes)
	}
	for _, op := range ops {
		out.persist(op)
	}
	return out
}

// persist applies one operation to the durable state in place (out of
// Persist, whose nodes map is its own).
func (s *Snapshot) persist(op Op) {
	switch op.Kind {
	case OpWrite:
		s.resize(op.Ino, false, 0, op.Off, op.data)
	case OpTruncate:
		s.resize(op.Ino, true, op.Off, 0, nil)
	case OpOpen:
		if op.Trunc {
			s.resize(op.Ino, true, 0, 0, nil)
		}
	case OpCreate, OpMkdir, OpSymlink, OpLink:
		s.entry(op.Dir, op.Name, op.Ino)
	case OpUnlink, OpRmdir:
		s.entry(op.Dir, op.Name, 0)
	case OpRename:
		if s.lookupIn(op.NewDir, op.NewName) == op.Ino {
			return
		}
		s.entry(op.Dir, op.Name, 0)
		s.entry(op.NewDir, op.NewName, op.Ino)
	}
}

// resize sets a durable file's size (trunc) or writes data at off. The
// bytes are not copied: the new state is the old one with a patch (a
// write-ahead of many megabytes persisted in many states costs nothing
// until a checker reads the file).
func (s *Snapshot) resize(ino uint64, trunc bool, size, off int64, data []byte) {
	d := s.node(ino)
	if d == nil || d.kind != kFile {
		return
	}
	nd := *d
	nd.patches = append(slices.Clip(d.patches), patch{trunc: trunc, size: size, off: off, data: data})
	s.nodes[ino] = &nd
}

// patch is a write or a truncate persisted on top of a durable file.
type patch struct {
	trunc bool
	size  int64
	off   int64
	data  []byte
}

// content returns a durable file's bytes, its patches applied.
func (d *dstate) content() []byte {
	if len(d.patches) == 0 {
		return d.data
	}
	buf := append([]byte(nil), d.data...)
	for _, p := range d.patches {
		end := p.off + int64(len(p.data))
		if p.trunc {
			end = p.size
		}
		if end > int64(len(buf)) {
			buf = append(buf, make([]byte, end-int64(len(buf)))...)
		}
		if p.trunc {
			buf = buf[:p.size]
			continue
		}
		copy(buf[p.off:], p.data)
	}
	return buf
}

// entry sets name in a durable directory to ino, or removes it (ino 0).
func (s *Snapshot) entry(dir uint64, name string, ino uint64) {
	d := s.node(dir)
	if d == nil || d.kind != kDir {
		return
	}
	nd := *d
	nd.entries = maps.Clone(d.entries)
	if ino == 0 {
		delete(nd.entries, name)
	} else {
		nd.entries[name] = ino
	}
	s.nodes[dir] = &nd
}

// lookupIn returns the inode of name in a durable directory, 0 if none.
func (s *Snapshot) lookupIn(dir uint64, name string) uint64 {
	if d := s.node(dir); d != nil && d.kind == kDir {
		return d.entries[name]
	}
	return 0
}

// Torn returns a write cut to its first k bytes: what reached the disk of
// a write the power interrupted.
func (o Op) Torn(k int) Op {
	if o.Kind != OpWrite || k < 0 || k >= len(o.data) {
		return o
	}
	o.data = o.data[:k]
	o.Len = int64(k)
	return o
}

// Diff is how a snapshot differs from a reference.
type Diff struct {
	// Missing are reference paths absent or of another kind; Changed
	// files with other bytes or symlinks with another target; Extra
	// paths the reference does not have (the first of a missing subtree
	// only).
	Missing, Changed, Extra []string
}

// Empty says the snapshot holds the reference exactly.
func (d Diff) Empty() bool { return len(d.Missing)+len(d.Changed)+len(d.Extra) == 0 }

// Differ compares snapshots with one reference snapshot, fast when they
// share most of their states: file contents and listings found equal
// once are not compared again.
type Differ struct {
	ref   []refPath
	skip  func(rel string) bool
	same  map[[2]*dstate]bool
	clean map[[2]*dstate]bool
}

// refPath is one path of the reference.
type refPath struct {
	rel string
	d   *dstate
}

// NewDiffer returns a Differ against ref; paths for which skip returns
// true are compared neither way (the status file, say).
func NewDiffer(ref *Snapshot, skip func(rel string) bool) *Differ {
	if skip == nil {
		skip = func(string) bool { return false }
	}
	df := &Differ{skip: skip, same: map[[2]*dstate]bool{}, clean: map[[2]*dstate]bool{}}
	df.ref = append(df.ref, refPath{".", ref.node(rootIno)})
	ref.walk(func(rel string, ino uint64, d *dstate) error {
		if !skip(rel) {
			df.ref = append(df.ref, refPath{rel, d})
		}
		return nil
	})
	return df
}

// Diff compares s with the reference; it stops after max differences (0:
// no bound).
func (df *Differ) Diff(s *Snapshot, max int) Diff {
	var out Diff
	full := func() bool {
		return max > 0 && len(out.Missing)+len(out.Changed)+len(out.Extra) >= max
	}
	for _, r := range df.ref {
		if full() {
			break
		}
		got, ok := s.lookup(r.rel)
		switch {
		case !ok || got.kind != r.d.kind:
			out.Missing = append(out.Missing, r.rel)
		case r.d.kind == kDir:
			out.Extra = append(out.Extra, df.extra(r, got)...)
		case !df.equal(r.d, got):
			out.Changed = append(out.Changed, r.rel)
		}
	}
	return out
}

// equal compares a file's or symlink's content.
func (df *Differ) equal(ref, got *dstate) bool {
	if ref == got {
		return true
	}
	k := [2]*dstate{ref, got}
	eq, ok := df.same[k]
	if !ok {
		eq = ref.target == got.target && bytes.Equal(ref.content(), got.content())
		df.same[k] = eq
	}
	return eq
}

// extra lists the names of a directory the reference's does not have.
func (df *Differ) extra(r refPath, got *dstate) []string {
	k := [2]*dstate{r.d, got}
	if df.clean[k] {
		return nil
	}
	var out []string
	for name := range got.entries {
		rel := path.Join(r.rel, name)
		if _, ok := r.d.entries[name]; !ok && !df.skip(rel) {
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		df.clean[k] = true
	}
	return out
}
