package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/trial"
)

// keptTrials are the trial directories a campaign kept (failing trials,
// or all of them with -keep), once the campaign is over.
type keptTrials struct {
	// Dir holds them; From is where they were kept during the campaign,
	// if they were moved out of memory since.
	Dir, From string
	// Count is the number of entries directly in Dir, Bytes what
	// everything under it takes.
	Count int
	Bytes int64
}

// keepOnDisk makes the trials kept in scratch outlive the campaign
// without holding RAM: a scratch of the campaign's own in memory (a
// tmpfs such as /dev/shm) is emptied into dest, on disk, with cp -a
// (owners, modes and symlinks kept: the trials are clusters and backups
// of another user). A scratch the user gave, or one on disk, stays where
// it is. Empty directories are removed first; nothing kept is nothing
// reported.
// An interrupted campaign keeps its trials too.
func keepOnDisk(scratch string, own bool, dest string) (*keptTrials, error) {
	removeEmpty(scratch, false)
	entries, err := os.ReadDir(scratch)
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	k := &keptTrials{Dir: scratch, Count: len(entries)}
	if own && inMemory(scratch) {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return nil, fmt.Errorf("keep the trials on disk: %w", err)
		}
		out, err := exec.Command("cp", "-a", "--", scratch+"/.", dest).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("keep the trials on disk: cp -a %s %s: %v: %s", scratch, dest, err, strings.TrimSpace(string(out)))
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(scratch, e.Name())); err != nil {
				return nil, fmt.Errorf("keep the trials on disk: %w", err)
			}
		}
		k.Dir, k.From = dest, scratch
	}
	k.Bytes, err = diskUsage(k.Dir)
	return k, err
}

// relocate points the records whose trial directory was moved out of
// memory (k.From) at where it is now (k.Dir), and returns them.
func (k *keptTrials) relocate(recs []*trial.Record) []*trial.Record {
	if k == nil || k.From == "" {
		return nil
	}
	var moved []*trial.Record
	for _, rec := range recs {
		rel, err := filepath.Rel(k.From, rec.Dir)
		if rec.Dir == "" || err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if _, err := os.Lstat(filepath.Join(k.Dir, rel)); err != nil {
			continue // not kept
		}
		rec.Dir = filepath.Join(k.Dir, rel)
		moved = append(moved, rec)
	}
	return moved
}

// inMemory says whether dir lies in campaign.MemoryDir.
func inMemory(dir string) bool {
	rel, err := filepath.Rel(campaign.MemoryDir, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// diskUsage adds up the sizes of the regular files under dir.
func diskUsage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

// write says where the kept trials are and what they take.
func (k *keptTrials) write(w io.Writer) {
	if k == nil {
		fmt.Fprintln(w, "kept trials: none left on disk or in memory")
		return
	}
	fmt.Fprintf(w, "kept trials: %d directories, %.1f MB, in %s", k.Count, float64(k.Bytes)/(1<<20), k.Dir)
	if k.From != "" {
		fmt.Fprintf(w, " (moved out of memory, from %s)", k.From)
	}
	fmt.Fprintln(w)
}
