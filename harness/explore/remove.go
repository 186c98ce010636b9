package explore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgbb/pgbb/harness/powerfs"
	"github.com/pgbb/pgbb/harness/status"
)

// TreeRemover is the Remover that runs the reader's own
// status.RemoveIfDead (a dry run) on the crash state written to disk, at
// the paths the status file's DIRECTORY lines record: the layer's mount
// point at the time of the run, which must not exist then (the run's
// scratch directory is gone). The files are written hollow (empty, but
// for the status file and its temporary files): the removal judges
// names, kinds and owners, not bytes. The process table it is given is
// the one of a machine on which the run is dead: this host, this boot,
// its pid gone, nobody in its directories.
type TreeRemover struct {
	// Root is the layer's mount point during the run.
	Root string
	// Status is the status file's path relative to Root.
	Status string
	// Dirs are the backup directories, relative to Root: each that holds
	// something must be one the removal clears.
	Dirs []string
}

// Removes writes s at Root, runs RemoveIfDead on it as a dry run, and
// removes what it wrote.
func (r *TreeRemover) Removes(ctx context.Context, s *powerfs.Snapshot) (bool, string, error) {
	if r.Root == "" || !filepath.IsAbs(r.Root) {
		return false, "", fmt.Errorf("remove-if-dead: the run's mount point %q is not an absolute path", r.Root)
	}
	if _, err := os.Lstat(r.Root); !errors.Is(err, os.ErrNotExist) {
		return false, "", fmt.Errorf("remove-if-dead: the run's mount point %s exists: the state cannot be written at the paths its status file records", r.Root)
	}
	made, err := mkdirParents(filepath.Dir(r.Root))
	if err != nil {
		return false, "", fmt.Errorf("remove-if-dead: %w", err)
	}
	defer removeMade(r.Root, made)
	full := func(rel string) bool {
		_, tmp := status.ParseTempPath(r.Status, rel)
		return rel == r.Status || tmp
	}
	if err := s.MaterialiseHollow(r.Root, full); err != nil {
		return false, "", fmt.Errorf("remove-if-dead: %w", err)
	}
	host := ""
	if data, err := s.ReadFile(r.Status); err == nil {
		if st, err := status.Parse(data); err == nil {
			host = st.Host
		}
	}
	rm := status.RemoveIfDead(ctx, filepath.Join(r.Root, filepath.FromSlash(r.Status)), true,
		status.WithProcesses(deadRun{host: host}))
	if rm.ExitCode != status.ExitRemoved {
		return false, strings.TrimSpace(rm.Refused + " " + rm.Error), nil
	}
	var steps []string
	covered := map[string]bool{}
	for _, st := range rm.Steps {
		steps = append(steps, st.String())
		if st.File == "" {
			covered[st.Path] = true
		}
	}
	// A removal that goes ahead clears only what the status file
	// records: every backup directory that holds something must be
	// among its steps.
	for _, d := range r.Dirs {
		names, err := s.ReadDir(d)
		if err == nil && len(names) > 0 && !covered[filepath.Join(r.Root, filepath.FromSlash(d))] {
			return false, fmt.Sprintf("it would go ahead (%s) but leave %s, which the status file does not record", strings.Join(steps, "; "), d), nil
		}
	}
	return true, strings.Join(steps, "; "), nil
}

// mkdirParents makes dir and its missing parents and returns those it
// made, deepest first.
func mkdirParents(dir string) ([]string, error) {
	var made []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		made = append(made, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return made, nil
}

// removeMade removes the tree written at root and the parents made for
// it, if they are empty.
func removeMade(root string, made []string) {
	os.RemoveAll(root)
	for _, d := range made {
		if os.Remove(d) != nil {
			return
		}
	}
}

// deadRun is a machine on which the run is over: its host name is the
// run's, its pid is gone, and no process uses the directories.
type deadRun struct{ host string }

var (
	_ status.Processes = deadRun{}
	_ status.DirUsers  = deadRun{}
)

func (d deadRun) Hostname() (string, error) { return d.host, nil }

func (deadRun) Process(pid int) (status.ProcessInfo, error) { return status.ProcessInfo{}, nil }

func (deadRun) DirUsers(dirs []string, ids map[status.FileID]bool, pid int) ([]status.DirUser, error) {
	return nil, nil
}
