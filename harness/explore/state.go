package explore

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pgbb/pgbb/harness/powerfs"
)

// StateID names a crash state: after the operation numbered Prefix (its
// Seq in the log), the durable state, with the unsynced operations
// numbered Persisted made durable too, and the write numbered Torn cut
// to its first TornLen bytes. Its text form is "p1234", "p1234+1201,1230"
// or "p1234+1230~1230:17".
type StateID struct {
	Prefix    int
	Persisted []int
	Torn      int
	TornLen   int
}

// String renders the id.
func (id StateID) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "p%d", id.Prefix)
	for i, s := range id.Persisted {
		if i == 0 {
			b.WriteByte('+')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s))
	}
	if id.Torn > 0 {
		fmt.Fprintf(&b, "~%d:%d", id.Torn, id.TornLen)
	}
	return b.String()
}

// ParseStateID parses the text form of a StateID.
func ParseStateID(s string) (StateID, error) {
	var id StateID
	bad := func() (StateID, error) {
		return StateID{}, fmt.Errorf("state %q: want p<op>[+<op>,...][~<op>:<bytes>]", s)
	}
	rest, ok := strings.CutPrefix(s, "p")
	if !ok {
		return bad()
	}
	if i := strings.IndexByte(rest, '~'); i >= 0 {
		t, l, ok := strings.Cut(rest[i+1:], ":")
		var err1, err2 error
		id.Torn, err1 = strconv.Atoi(t)
		id.TornLen, err2 = strconv.Atoi(l)
		if !ok || err1 != nil || err2 != nil || id.Torn < 1 || id.TornLen < 0 {
			return bad()
		}
		rest = rest[:i]
	}
	prefix, persisted, _ := strings.Cut(rest, "+")
	var err error
	if id.Prefix, err = strconv.Atoi(prefix); err != nil || id.Prefix < 1 {
		return bad()
	}
	if persisted != "" {
		for _, f := range strings.Split(persisted, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				return bad()
			}
			id.Persisted = append(id.Persisted, n)
		}
	}
	if id.Torn > 0 && !slices.Contains(id.Persisted, id.Torn) {
		return bad()
	}
	return id, nil
}

// Build replays the journal up to the state's prefix and returns the
// state.
func Build(j *powerfs.Journal, id StateID) (*powerfs.Snapshot, error) {
	rp, err := powerfs.NewReplayer(j)
	if err != nil {
		return nil, err
	}
	for !rp.Done() {
		op, err := rp.Step()
		if err != nil {
			return nil, err
		}
		if op.Seq == id.Prefix {
			return persisted(rp, id)
		}
	}
	return nil, fmt.Errorf("state %s: the log has no operation #%d", id, id.Prefix)
}

// persisted returns the durable state with the id's unsynced operations
// persisted.
func persisted(rp *powerfs.Replayer, id StateID) (*powerfs.Snapshot, error) {
	var sel []powerfs.Op
	for _, op := range rp.Unsynced(0) {
		if !slices.Contains(id.Persisted, op.Seq) {
			continue
		}
		if op.Seq == id.Torn {
			op = op.Torn(id.TornLen)
		}
		sel = append(sel, op)
	}
	if len(sel) != len(id.Persisted) {
		return nil, fmt.Errorf("state %s: not every persisted operation is unsynced at #%d", id, id.Prefix)
	}
	return rp.Durable().Persist(sel...), nil
}

// Materialise writes the state into out (which must not exist or be
// empty), as the layer's root would hold it after a reboot. Symbolic
// links into the run's mount point (a plain backup's tablespace links)
// are pointed at the same place under out.
func Materialise(j *powerfs.Journal, id StateID, out string) error {
	s, err := Build(j, id)
	if err != nil {
		return err
	}
	if err := s.Materialise(out); err != nil {
		return fmt.Errorf("state %s: %w", id, err)
	}
	mp := j.Meta["mountpoint"]
	if mp == "" {
		return nil
	}
	return filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return err
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(mp, target)
		if err != nil || !filepath.IsAbs(target) || strings.HasPrefix(rel, "..") {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		return os.Symlink(filepath.Join(out, rel), p)
	})
}
