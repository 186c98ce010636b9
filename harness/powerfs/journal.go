package powerfs

import (
	"bufio"
	"compress/gzip"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
)

// The journal is the operation log of a run with everything needed to
// replay it through the model offline (Replayer): the set-up (owner, root
// mode, MkdirAll), every logged operation in order with what it changed
// (inodes, names, offsets, the bytes written, the attributes made
// durable), and named marks between operations. It is written as a gzip
// stream of gob values: a JournalHeader, then one Op per operation.

// JournalVersion is the format version WriteJournal writes.
const JournalVersion = 1

// SetupDir is one MkdirAll call made before the run.
type SetupDir struct {
	Path string
	Perm uint32
}

// Mark names a moment of the run: Seq operations were logged before it.
type Mark struct {
	Name string
	Seq  int
}

// JournalHeader is the start of a journal.
type JournalHeader struct {
	Version  int
	UID, GID uint32
	RootPerm uint32
	Setup    []SetupDir
	Marks    []Mark
	// Meta holds what the writer wants to say about the run (mount
	// point, target directory...).
	Meta map[string]string
	// Ops is the number of operations that follow.
	Ops int
}

// Journal is a run's operation log with its set-up: the input of a
// Replayer.
type Journal struct {
	JournalHeader
	Log []Op
}

// Journaled makes the file system keep the bytes of every write in its
// log, so that Journal can be written and the run replayed offline. It
// costs a copy of everything written.
func Journaled() Option {
	return func(fs *FS) { fs.journal = true }
}

// Journaling says whether the file system was made Journaled.
func (fs *FS) Journaling() bool { return fs.journal }

// Mark records a named moment between two operations in the journal (the
// finishing part of a run starts, say).
func (fs *FS) Mark(name string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.marks = append(fs.marks, Mark{Name: name, Seq: len(fs.log)})
}

// Journal returns the journal so far. The log's write data is shared
// with the file system: do not modify it.
func (fs *FS) Journal(meta map[string]string) (*Journal, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.journal {
		return nil, errors.New("powerfs: journal: the file system was not made with Journaled")
	}
	j := &Journal{JournalHeader: JournalHeader{Version: JournalVersion, UID: fs.uid, GID: fs.gid,
		RootPerm: fs.rootPerm, Setup: append([]SetupDir(nil), fs.setup...),
		Marks: append([]Mark(nil), fs.marks...), Meta: meta, Ops: len(fs.log)}}
	j.Log = append([]Op(nil), fs.log...)
	return j, nil
}

// journalOp is an Op as written: its data is unexported.
type journalOp struct {
	Op   Op
	Data []byte
}

// Write writes the journal to w.
func (j *Journal) Write(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	enc := gob.NewEncoder(zw)
	h := j.JournalHeader
	h.Ops = len(j.Log)
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	for _, op := range j.Log {
		if err := enc.Encode(journalOp{Op: op, Data: op.data}); err != nil {
			return fmt.Errorf("journal: op #%d: %w", op.Seq, err)
		}
	}
	return zw.Close()
}

// WriteFile writes the journal into the file path.
func (j *Journal) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = j.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal %s: %w", path, err)
	}
	return nil
}

// ReadJournal reads a journal written by Journal.Write.
func ReadJournal(r io.Reader) (*Journal, error) {
	zr, err := gzip.NewReader(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	dec := gob.NewDecoder(zr)
	j := &Journal{}
	if err := dec.Decode(&j.JournalHeader); err != nil {
		return nil, fmt.Errorf("journal: header: %w", err)
	}
	if j.Version != JournalVersion {
		return nil, fmt.Errorf("journal: format version %d, want %d", j.Version, JournalVersion)
	}
	j.Log = make([]Op, 0, j.Ops)
	for i := 0; i < j.Ops; i++ {
		var jo journalOp
		if err := dec.Decode(&jo); err != nil {
			return nil, fmt.Errorf("journal: op %d of %d: %w", i+1, j.Ops, err)
		}
		jo.Op.data = jo.Data
		j.Log = append(j.Log, jo.Op)
	}
	return j, nil
}

// ReadJournalFile reads the journal in the file path.
func ReadJournalFile(path string) (*Journal, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	j, err := ReadJournal(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return j, nil
}

// MarkSeq returns the Seq of the first mark named name.
func (j *Journal) MarkSeq(name string) (int, bool) {
	for _, m := range j.Marks {
		if m.Name == name {
			return m.Seq, true
		}
	}
	return 0, false
}
