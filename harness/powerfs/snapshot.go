package powerfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Snapshot is the durable state of the file system at one moment: what a
// power loss then would have left on disk. It is immutable.
type Snapshot struct {
	// Seq is the number of operations logged when it was taken.
	Seq   int
	nodes map[uint64]*dstate
	// base, when set, holds the inodes nodes does not (Persist).
	base *Snapshot
}

// node returns an inode's durable state, nil when it has none.
func (s *Snapshot) node(ino uint64) *dstate {
	if d, ok := s.nodes[ino]; ok {
		return d
	}
	if s.base != nil {
		return s.base.nodes[ino]
	}
	return nil
}

// snapshot takes the durable state; fs.mu is held.
func (fs *FS) snapshot() *Snapshot {
	s := &Snapshot{Seq: len(fs.log), nodes: make(map[uint64]*dstate, len(fs.inodes))}
	for ino, n := range fs.inodes {
		s.nodes[ino] = n.durable
	}
	return s
}

// walk calls fn for every durable path, parents before children, in name
// order; a directory reached again below itself is not entered.
func (s *Snapshot) walk(fn func(rel string, ino uint64, d *dstate) error) error {
	var rec func(rel string, ino uint64, stack map[uint64]bool) error
	rec = func(rel string, ino uint64, stack map[uint64]bool) error {
		d := s.node(ino)
		if d.kind != kDir {
			return nil
		}
		if stack[ino] {
			return nil
		}
		stack[ino] = true
		defer delete(stack, ino)
		names := make([]string, 0, len(d.entries))
		for name := range d.entries {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			cino := d.entries[name]
			child := path.Join(rel, name)
			cd := s.node(cino)
			if cd == nil {
				continue
			}
			if cd.kind == kDir && stack[cino] {
				continue
			}
			if err := fn(child, cino, cd); err != nil {
				return err
			}
			if err := rec(child, cino, stack); err != nil {
				return err
			}
		}
		return nil
	}
	return rec("", rootIno, map[uint64]bool{})
}

// Paths lists the durable paths (slash-separated, relative to the root),
// directories with a trailing slash.
func (s *Snapshot) Paths() []string {
	var out []string
	s.walk(func(rel string, ino uint64, d *dstate) error {
		if d.kind == kDir {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	return out
}

// ReadFile returns the durable content of a file (rel is slash-separated,
// relative to the root); fs.ErrNotExist when the path is not durable.
func (s *Snapshot) ReadFile(rel string) ([]byte, error) {
	d, ok := s.lookup(rel)
	if !ok {
		return nil, fmt.Errorf("powerfs snapshot: %s: %w", rel, fs.ErrNotExist)
	}
	if d.kind != kFile {
		return nil, fmt.Errorf("powerfs snapshot: %s: not a regular file", rel)
	}
	return append([]byte(nil), d.content()...), nil
}

// ReadDir returns the names in the durable directory rel, sorted;
// fs.ErrNotExist when rel is not a durable path.
func (s *Snapshot) ReadDir(rel string) ([]string, error) {
	d, ok := s.lookup(rel)
	if !ok {
		return nil, fmt.Errorf("powerfs snapshot: %s: %w", rel, fs.ErrNotExist)
	}
	if d.kind != kDir {
		return nil, fmt.Errorf("powerfs snapshot: %s: not a directory", rel)
	}
	names := make([]string, 0, len(d.entries))
	for name, ino := range d.entries {
		if s.node(ino) != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Exists says whether rel is a durable path.
func (s *Snapshot) Exists(rel string) bool {
	_, ok := s.lookup(rel)
	return ok
}

// lookup resolves rel through durable entries (no symlinks followed).
func (s *Snapshot) lookup(rel string) (*dstate, bool) {
	d := s.node(rootIno)
	for _, el := range strings.Split(path.Clean(rel), "/") {
		if el == "." || el == "" {
			continue
		}
		if d.kind != kDir {
			return nil, false
		}
		ino, ok := d.entries[el]
		if !ok {
			return nil, false
		}
		d = s.node(ino)
		if d == nil {
			return nil, false
		}
	}
	return d, d != nil
}

// Materialise writes the durable state into dst, which must not exist or
// be an empty directory: files with their durable content, directories,
// symlinks, hard links between durable names of one inode, modes, and
// (when run as root) owners.
func (s *Snapshot) Materialise(dst string) error {
	return s.materialise(dst, nil, nil)
}

// MaterialiseHollow writes the durable state into dst as Materialise
// does, but every regular file for which full returns false is written
// empty: the same names, kinds, links, modes and owners, without the
// bytes. It is for judges that look at a tree's shape, not its data
// (pgbb-status --remove-if-dead).
func (s *Snapshot) MaterialiseHollow(dst string, full func(rel string) bool) error {
	return s.materialise(dst, nil, full)
}

// materialise writes the snapshot, with overlay's files replacing or
// adding to it; with full set, the regular files it returns false for
// are written empty.
func (s *Snapshot) materialise(dst string, overlay map[string][]byte, full func(rel string) bool) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("materialise: %w", err)
	}
	ents, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("materialise: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("materialise: %s is not empty", dst)
	}
	root := os.Geteuid() == 0
	type dirMode struct {
		path     string
		perm     uint32
		uid, gid uint32
	}
	var dirs []dirMode
	linked := map[uint64]string{}
	err = s.walk(func(rel string, ino uint64, d *dstate) error {
		p := filepath.Join(dst, filepath.FromSlash(rel))
		switch d.kind {
		case kDir:
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{p, d.perm, d.uid, d.gid})
			return nil
		case kSymlink:
			if err := os.Symlink(d.target, p); err != nil {
				return err
			}
			if root {
				return os.Lchown(p, int(d.uid), int(d.gid))
			}
			return nil
		}
		if first, ok := linked[ino]; ok {
			if _, over := overlay[rel]; !over {
				return os.Link(first, p)
			}
		}
		linked[ino] = p
		data := d.content()
		if full != nil && !full(rel) {
			data = nil
		}
		if o, ok := overlay[rel]; ok {
			data = o
		}
		return writeFile(p, data, d.perm, d.uid, d.gid, root)
	})
	if err != nil {
		return fmt.Errorf("materialise: %w", err)
	}
	if err := s.writeOverlay(dst, overlay, root); err != nil {
		return fmt.Errorf("materialise: %w", err)
	}
	root0 := s.node(rootIno)
	dirs = append(dirs, dirMode{dst, root0.perm, root0.uid, root0.gid})
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if root {
			if err := os.Lchown(d.path, int(d.uid), int(d.gid)); err != nil {
				return fmt.Errorf("materialise: %w", err)
			}
		}
		if err := os.Chmod(d.path, fs.FileMode(d.perm&0o777)); err != nil {
			return fmt.Errorf("materialise: %w", err)
		}
	}
	return nil
}

// writeOverlay writes the overlay files at paths that are not durable:
// their parents may not be durable either.
func (s *Snapshot) writeOverlay(dst string, overlay map[string][]byte, chown bool) error {
	for rel, data := range overlay {
		if s.Exists(rel) {
			continue
		}
		p := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		uid, gid := s.node(rootIno).uid, s.node(rootIno).gid
		if err := writeFile(p, data, 0o600, uid, gid, chown); err != nil {
			return err
		}
	}
	return nil
}

// writeFile creates a file with data, perm and owner.
func writeFile(p string, data []byte, perm, uid, gid uint32, chown bool) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return err
	}
	if chown {
		if err := os.Lchown(p, int(uid), int(gid)); err != nil {
			return err
		}
	}
	return os.Chmod(p, fs.FileMode(perm&0o777))
}

// TornState is one state a tracked file could be in after a power loss
// in the middle of an operation on it (see FS.TrackTorn): the durable
// state at that operation, plus the file at Path with Content.
type TornState struct {
	// Seq is the operation's number in the log; Op its kind ("write" or
	// "rename").
	Seq int
	Op  OpKind
	// Kind is "prefix" (the first Prefix of Of bytes of a write reached
	// the disk, with everything written before it) or "unrenamed" (the
	// temporary file fully written and durable, the rename lost).
	Kind    string
	Prefix  int
	Of      int
	Path    string
	Content []byte
	Base    *Snapshot
}

// String names the state.
func (t TornState) String() string {
	if t.Kind == "prefix" {
		return fmt.Sprintf("#%d %s: %d of %d bytes of a write", t.Seq, t.Path, t.Prefix, t.Of)
	}
	return fmt.Sprintf("#%d %s: written, not renamed", t.Seq, t.Path)
}

// Materialise writes the torn state into dst: the durable state with the
// tracked file's content at Path.
func (t TornState) Materialise(dst string) error {
	return t.Base.materialise(dst, map[string][]byte{t.Path: t.Content}, nil)
}

// tornRecord is a write or rename of a tracked file.
type tornRecord struct {
	seq    int
	op     OpKind
	path   string
	before []byte // rename: the full content
	off    int64
	data   []byte
	base   *Snapshot
}

// TornStates expands the recorded operations on tracked files into their
// torn states: for each write, every non-empty prefix of it over the file
// as it was; for each rename, the source file not renamed.
func (fs *FS) TornStates() []TornState {
	fs.mu.Lock()
	recs := append([]tornRecord(nil), fs.torn...)
	fs.mu.Unlock()
	var out []TornState
	for _, r := range recs {
		if r.op == OpRename {
			out = append(out, TornState{Seq: r.seq, Op: r.op, Kind: "unrenamed", Path: r.path,
				Content: r.before, Base: r.base})
			continue
		}
		for k := 1; k <= len(r.data); k++ {
			end := r.off + int64(k)
			size := int64(len(r.before))
			if end > size {
				size = end
			}
			c := make([]byte, size)
			copy(c, r.before)
			copy(c[r.off:], r.data[:k])
			out = append(out, TornState{Seq: r.seq, Op: r.op, Kind: "prefix", Prefix: k, Of: len(r.data),
				Path: r.path, Content: c, Base: r.base})
		}
	}
	return out
}

// recordTorn notes a write or rename of a tracked file; fs.mu is held.
func (fs *FS) recordTorn(seq int, op OpKind, p string, n *inode, off int64, data []byte) {
	if n.kind != kFile {
		return
	}
	r := tornRecord{seq: seq, op: op, path: p, before: append([]byte(nil), n.data...),
		off: off, data: append([]byte(nil), data...), base: fs.snapshot()}
	fs.torn = append(fs.torn, r)
}

// tracked says whether any of the paths has a tracked base name; fs.mu is
// held.
func (fs *FS) tracked(paths ...string) bool {
	for _, p := range paths {
		if fs.tornMatch != nil && fs.tornMatch(path.Base(p)) {
			return true
		}
	}
	return false
}
