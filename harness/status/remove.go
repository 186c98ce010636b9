package status

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Exit codes of pgbb-status --remove-if-dead.
const (
	// ExitRemoved: everything was removed (with DryRun: would be).
	ExitRemoved = 0
	// ExitRefused: nothing was removed; Removal.Refused says why.
	ExitRefused = 1
	// ExitRemoveFailed: the removal started but did not finish;
	// Removal.Steps say what was done, Removal.Error what failed.
	ExitRemoveFailed = 2
)

// TombstoneSuffix is in the name a directory is renamed to before it is
// removed: .NAME.pgbb-removing-PID, in the same parent.
const TombstoneSuffix = ".pgbb-removing-"

// WithLease lets RemoveIfDead judge a run written on another host dead when
// its status file stays the same while RemoveIfDead watches it for d on
// this machine's monotonic clock (it blocks that long). Without it, such a
// run is never removed.
func WithLease(d time.Duration) Option { return func(c *config) { c.lease = d } }

// Removal is the result of RemoveIfDead.
type Removal struct {
	// Dir is the backup directory, made absolute.
	Dir string `json:"dir"`
	// StatusFile is Dir's status file.
	StatusFile string `json:"status_file"`
	// Status is the parsed status file, if it was read.
	Status *Status `json:"status,omitempty"`
	// DryRun says nothing was to be removed, only planned.
	DryRun bool `json:"dry_run,omitempty"`
	// Over says why the run is over, when that was proven.
	Over string `json:"over,omitempty"`
	// Owner is the owner of the status file: nothing that user could not
	// remove is removed.
	Owner string `json:"owner,omitempty"`
	// Refused says why nothing was removed; empty if the removal went
	// ahead.
	Refused string `json:"refused,omitempty"`
	// Steps are what was (or, with DryRun or on refusal, would be) done,
	// one per recorded directory.
	Steps []RemoveStep `json:"steps,omitempty"`
	// Err is what stopped a removal that had started; Error its text.
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`
	// ExitCode is ExitRemoved, ExitRefused or ExitRemoveFailed.
	ExitCode int `json:"exit_code"`
}

// RemoveStep is what happens to one recorded directory.
type RemoveStep struct {
	// Path is the recorded directory.
	Path string `json:"path"`
	// Created says the run created it: it is removed. Otherwise it
	// existed before the run: it is emptied and kept.
	Created bool `json:"created"`
	// Missing says it does not exist any more: nothing to do.
	Missing bool `json:"missing,omitempty"`
	// Tombstone is the name it was renamed to before being removed.
	Tombstone string `json:"tombstone,omitempty"`
	// Done says the step was carried out.
	Done bool `json:"done"`
}

// String says what the step does.
func (st RemoveStep) String() string {
	switch {
	case st.Missing:
		return fmt.Sprintf("nothing to do for %s (already gone)", st.Path)
	case st.Created:
		return fmt.Sprintf("remove %s (created by the run)", st.Path)
	}
	return fmt.Sprintf("empty %s (it existed before the run; kept)", st.Path)
}

// refuse fills in a refusal.
func (rm *Removal) refuse(format string, args ...any) *Removal {
	rm.Refused = fmt.Sprintf(format, args...)
	rm.ExitCode = ExitRefused
	return rm
}

// fail fills in a removal that stopped part way.
func (rm *Removal) fail(err error) *Removal {
	rm.Err, rm.Error, rm.ExitCode = err, err.Error(), ExitRemoveFailed
	return rm
}

// RemoveIfDead removes the backup directory dir and the other directories
// its status file records (DIRECTORY lines: "created" ones are removed,
// "existing" ones emptied and kept), but only when the status file proves
// that the run is over and did not complete, and only what the status
// file's owner could remove itself:
//
//   - the file is dir's own backup_status, a regular file that parses
//     (a torn, invalid or missing file is refused), and says "in
//     progress" or "failed" (never "completed", durable or not);
//   - written on this host: its pid is gone, a zombie, or another program
//     or a later process (start time checked: a reused pid does not count
//     as alive); a live run, stalled or not, is refused, as is a check
//     that cannot tell;
//   - written on another host: a lease is given (WithLease; none by
//     default, so refused), no shorter than StallAge, and the file stays
//     byte for byte the same while it is watched for that long on this
//     machine's monotonic clock (the writer's clock plays no part: a live
//     run whose clock lags still rewrites its file); ctx ends the watch,
//     refusing;
//   - no process of this host has its working directory or an open file
//     in the directories, and no pg_basebackup is a child or in the
//     process group of the recorded pid (the WAL streaming child outlives
//     its parent's SIGKILL);
//   - the first DIRECTORY is dir itself; every DIRECTORY is printable, an
//     absolute clean path other than "/", a directory and not a symlink,
//     none inside another; a tar-format run records only its target; any
//     other recorded directory holds only what pg_basebackup puts in a
//     --waldir (WAL segments, .partial, .history, archive_status,
//     summaries) or a tablespace directory (PG_<version>_<catversion>);
//   - the privilege boundary: the status file, every recorded directory
//     and every entry in them are owned by one user, the owner of the
//     status file; nothing in them is a mount point, a FIFO, a socket or
//     a device, nor deeper than 32 levels; a created directory is not a
//     mount point, and its parent lets that user remove it. And all the
//     file-system work, judging included, runs with that user's
//     file-system credentials (asUser), so that the kernel refuses what
//     the user could not do. Whoever runs the removal (root, say), it
//     deletes nothing that the user who wrote the status file could not.
//
// Each recorded directory is opened once, before anything is judged, and
// everything after goes through those handles (os.Root): a path swapped
// for a symlink after the judgement is never followed, and a rename is
// checked against the identity judged and undone if it moved something
// else. Races with a run starting into the same directory are closed
// thus: a created directory is first renamed to a tombstone in the same
// parent (".NAME.pgbb-removing-PID", without replacing anything), the
// status file is read again from inside it and must be byte for byte the
// one judged (with the same owner), the run must still be over and no
// process may use the directories, and only then is anything removed (the
// owner's credentials cover what changes after the other checks); if a check fails, the tombstone is
// renamed back. A retry into dir can start as soon as dir was renamed. An
// "existing" directory is emptied in place, the status file last, so that
// it stays non-empty (and a retry refuses it) until the last entry is
// gone.
//
// With dryRun nothing is changed: the Removal says what would be done.
func RemoveIfDead(ctx context.Context, dir string, dryRun bool, opts ...Option) *Removal {
	c := newConfig(opts)
	rm := &Removal{Dir: dir, DryRun: dryRun}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return rm.refuse("cannot make %s absolute: %v", dir, err)
	}
	rm.Dir = abs
	rm.StatusFile = filepath.Join(abs, FileName)

	fi, err := os.Lstat(abs)
	switch {
	case err != nil:
		return rm.refuse("cannot examine the directory: %v", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return rm.refuse("%s is a symlink: give the directory itself", abs)
	case !fi.IsDir():
		return rm.refuse("%s is not a directory", abs)
	}
	// Who may delete what: the owner of the status file, whose
	// credentials everything below runs with.
	u, err := statusOwner(rm.StatusFile)
	if err != nil {
		return rm.refuse("%v", err)
	}
	rm.Owner = userName(u.uid)
	if err := asUser(u, func() error { rm.removeAs(ctx, c, u); return nil }); err != nil {
		return rm.refuse("%v", err)
	}
	return rm
}

// removeAs is RemoveIfDead with the file-system credentials of u.
func (rm *Removal) removeAs(ctx context.Context, c config, u owner) *Removal {
	target, err := openDirHandle(rm.Dir)
	if err != nil {
		return rm.refuse("%s cannot open the directory: %v", userName(u.uid), err)
	}
	p := &plan{handles: []*dirHandle{target}, ids: map[FileID]bool{}}
	defer p.close()

	data, s, fileOwner, err := readForRemoval(target)
	switch {
	case err != nil:
		return rm.refuse("%v", err)
	case fileOwner != u.uid:
		return rm.refuse("the status file %s changed owner (now %s) while it was being judged", rm.StatusFile, userName(fileOwner))
	}
	rm.Status = s
	var over string
	var lease bool
	err = asCaller(func() (err error) { over, lease, err = runOver(s, c); return err })
	if err != nil {
		return rm.refuse("%v", err)
	}
	rm.Over = over
	if err := p.judge(s, u); err != nil {
		return rm.refuse("%v", err)
	}
	rm.Steps = p.steps
	if lease {
		seen, err := observe(ctx, target, data, c)
		if err != nil {
			return rm.refuse("%v", err)
		}
		rm.Over += ", and " + seen
	}
	if err := checkUsers(rm.Steps, s, c, rm.Dir, rm.Dir, p.ids); err != nil {
		return rm.refuse("%v", err)
	}
	if rm.DryRun {
		rm.ExitCode = ExitRemoved
		return rm
	}
	c.hook("judged")
	return rm.execute(p, data, u.uid, c)
}

// statusOwner returns the owner of the status file at path (a regular
// file, not a symlink) and that user's groups.
func statusOwner(path string) (owner, error) {
	fi, err := os.Lstat(path)
	if err := checkStatusLstat(path, fi, err); err != nil {
		return owner{}, err
	}
	u, err := ownerWithGroups(fi)
	if err != nil {
		return owner{}, fmt.Errorf("cannot tell who owns the status file %s: %v", path, err)
	}
	return u, nil
}

// asCaller runs f on a goroutine of its own, hence with the caller's
// credentials, not those asUser gave the current thread (the liveness
// checks read other users' /proc entries), and returns its error.
func asCaller(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		err := errExited
		defer func() { errc <- err }()
		err = f()
	}()
	return <-errc
}

// errExited is what asCaller and asUser return when f ended its goroutine
// (runtime.Goexit) instead of returning.
var errExited = errors.New("the work ended before it returned")

// readForRemoval reads the status file in the target through its handle:
// a regular file (no symlink at all) that parses. It returns the file, its
// parse and its owner.
func readForRemoval(target *dirHandle) ([]byte, *Status, uint32, error) {
	data, fi, err := target.readStatus()
	if err != nil {
		return nil, nil, 0, err
	}
	owner, err := ownerOf(fi)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("cannot tell who owns the status file %s: %v", filepath.Join(target.path, FileName), err)
	}
	s, err := Parse(data)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Path = filepath.Join(target.path, FileName)
		}
		return nil, nil, 0, fmt.Errorf("status file cannot be used: %v", err)
	}
	return data, s, owner, nil
}

// runOver proves that the run of s is over and did not complete, or says
// why that cannot be proven. For a run written on another host it says
// only whether a lease may decide: observe is then true, and the caller
// must watch the file for the lease (observeLease) before the run counts
// as over.
func runOver(s *Status, c config) (over string, observe bool, err error) {
	if s.State == StateCompleted {
		return "", false, fmt.Errorf("the status file says completed (DURABLE: %s): a completed backup is never removed", yesNo(s.Durable))
	}
	host, err := c.procs.Hostname()
	if err != nil {
		return "", false, fmt.Errorf("cannot tell whether the run is over: this machine's host name: %v", err)
	}
	what := "in progress"
	if s.State == StateFailed {
		what = "failed (" + s.Reason + ")"
	}
	if host == s.Host {
		l := liveness(s, c.procs, c.slack)
		switch {
		case l.Alive:
			return "", false, fmt.Errorf("the run is alive (%s): a live run, stalled or not, is never removed", l.Reason)
		case !l.Certain:
			return "", false, fmt.Errorf("cannot tell whether the run is over: %s", l.Reason)
		}
		return fmt.Sprintf("%s, and %s", what, l.Reason), false, nil
	}

	if c.lease <= 0 {
		return "", false, fmt.Errorf("written on host %q, this is %q: whether pid %d still runs cannot be seen from here; give a lease (--lease) to watch the file for that long", s.Host, host, s.PID)
	}
	if s.State == StateInProgress && s.Progress && s.Phase.Heartbeat() {
		if stall := StallAge(s.UpdateInterval); c.lease < stall {
			return "", false, fmt.Errorf("the lease %s is shorter than %s, the silence after which even a live run is only stalled (%d intervals of %ds)",
				c.lease, stall, StallIntervals, s.UpdateInterval)
		}
	}
	return fmt.Sprintf("%s, written on host %q", what, s.Host), true, nil
}

// leasePoll is how often the file is read while a lease is observed.
func leasePoll(lease time.Duration) time.Duration {
	return max(min(lease/10, time.Second), time.Millisecond)
}

// observe watches the status file in the target for the lease, on this
// machine's monotonic clock; every read must be the file judged, data.
func observe(ctx context.Context, target *dirHandle, data []byte, c config) (string, error) {
	read := func(string) ([]byte, error) {
		b, _, err := target.readStatus()
		if err == nil && !bytes.Equal(b, data) {
			return nil, fmt.Errorf("the status file changed since it was judged: the run rewrote it and is alive")
		}
		return b, err
	}
	return observeLease(ctx, filepath.Join(target.path, FileName), c.lease, leasePoll(c.lease), read, c.leaseClock)
}

// walName and tablespaceName are what pg_basebackup puts into a --waldir
// and a tablespace directory.
var (
	walName        = regexp.MustCompile(`^([0-9A-F]{24}(\.[0-9A-F]{8}\.backup)?(\.gz|\.lz4|\.zst)?(\.partial)?(\.tmp)?|[0-9A-F]{8}\.history(\.tmp)?|archive_status|summaries)$`)
	tablespaceName = regexp.MustCompile(`^PG_[0-9]+_[0-9]+$`)
)

// A plan is what RemoveIfDead is to do: a step and an open handle per
// recorded directory (nil for one already gone), the target first.
type plan struct {
	steps   []RemoveStep
	handles []*dirHandle
	// ids are the identities of the directories and everything in them,
	// for the check of the processes that use them.
	ids map[FileID]bool
}

func (p *plan) close() {
	for _, h := range p.handles {
		if h != nil {
			h.Close()
		}
	}
}

// judge checks the DIRECTORY lines of s against the target (p.handles[0],
// the directory the status file was found in) and the privilege boundary
// of owner, opens every other recorded directory, and fills in the steps,
// target first.
func (p *plan) judge(s *Status, u owner) error {
	owner := u.uid
	if err := checkDirectoryLines(s); err != nil {
		return err
	}
	target := p.handles[0]
	if err := ownedBy(target.path, target.info, owner); err != nil {
		return err
	}
	for i, d := range s.Directories {
		step := RemoveStep{Path: d.Path, Created: d.Created}
		if i == 0 {
			fi, err := os.Lstat(d.Path)
			if err != nil {
				return fmt.Errorf("DIRECTORY %s: %v", d.Path, err)
			}
			if !os.SameFile(fi, target.info) {
				return fmt.Errorf("the first DIRECTORY (the target) is %s, not %s: the status file is not this directory's own", d.Path, target.path)
			}
			p.steps = append(p.steps, step)
			continue
		}
		fi, err := os.Lstat(d.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			step.Missing = true
			p.steps = append(p.steps, step)
			p.handles = append(p.handles, nil)
			continue
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("DIRECTORY %s: %s cannot reach it (%v): only what that user could remove is removed", d.Path, userName(owner), err)
		case err != nil:
			return fmt.Errorf("DIRECTORY %s: %v", d.Path, err)
		}
		if err := ownedBy(d.Path, fi, owner); err != nil && fi.Mode()&fs.ModeSymlink == 0 {
			return err
		}
		h, err := openDirHandle(d.Path)
		switch {
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("DIRECTORY %s: %s cannot reach it (%v): only what that user could remove is removed", d.Path, userName(owner), err)
		case err != nil:
			return fmt.Errorf("DIRECTORY %s: %v", d.Path, err)
		}
		p.handles = append(p.handles, h)
		p.steps = append(p.steps, step)
		if err := ownedBy(h.path, h.info, owner); err != nil {
			return err
		}
		if err := looksLikeOurs(h); err != nil {
			return err
		}
	}
	if err := checkOverlap(p.steps); err != nil {
		return err
	}
	for i, h := range p.handles {
		if h == nil {
			continue
		}
		if err := checkRemovable(h, p.steps[i].Created, u); err != nil {
			return err
		}
		if err := h.checkContents(owner, p.ids); err != nil {
			return err
		}
	}
	return nil
}

// checkDirectoryLines checks what can be told of the DIRECTORY lines of s
// without looking at the disk.
func checkDirectoryLines(s *Status) error {
	if !s.Progress {
		return fmt.Errorf("the status file has no DIRECTORY lines (written by a pg_basebackup without patch 0003): what the run created cannot be known")
	}
	if len(s.Directories) == 0 {
		return fmt.Errorf("the status file records no directory (written with -D - or --target): nothing is known to belong to the run")
	}
	if s.Format != "plain" && len(s.Directories) > 1 {
		return fmt.Errorf("a %s-format run records only its target, this file records %d directories", s.Format, len(s.Directories))
	}
	for i, d := range s.Directories {
		switch {
		case d.Unprintable:
			return fmt.Errorf("DIRECTORY %d is unprintable (its path has a control character): the run cannot be cleaned up automatically", i+1)
		case !filepath.IsAbs(d.Path):
			return fmt.Errorf("DIRECTORY %q is not an absolute path", d.Path)
		case filepath.Clean(d.Path) != d.Path:
			return fmt.Errorf("DIRECTORY %q is not a clean path (it would be %q)", d.Path, filepath.Clean(d.Path))
		case d.Path == "/":
			return fmt.Errorf("DIRECTORY is the root directory")
		}
		for _, e := range s.Directories[:i] {
			if within(e.Path, d.Path) || within(d.Path, e.Path) {
				return fmt.Errorf("DIRECTORY %s and %s are the same or one is inside the other: pg_basebackup does not record such directories", e.Path, d.Path)
			}
		}
	}
	return nil
}

// checkOverlap makes the overlap check on resolved paths: a symlink in a
// parent must not make one directory the other, or put one inside
// another.
func checkOverlap(steps []RemoveStep) error {
	resolved := make([]string, len(steps))
	for i, st := range steps {
		if st.Missing {
			continue
		}
		r, err := filepath.EvalSymlinks(st.Path)
		if err != nil {
			return fmt.Errorf("resolve DIRECTORY %s: %v", st.Path, err)
		}
		resolved[i] = r
		for j := range i {
			if resolved[j] != "" && (within(resolved[j], r) || within(r, resolved[j])) {
				return fmt.Errorf("DIRECTORY %s and %s resolve to %s and %s, the same or one inside the other", steps[j].Path, st.Path, resolved[j], r)
			}
		}
	}
	return nil
}

// checkRemovable refuses a recorded directory that is a mount point when
// the run is said to have created it (pg_basebackup cannot have), or whose
// parent would not let owner remove it.
func checkRemovable(h *dirHandle, created bool, u owner) error {
	if !created {
		return nil
	}
	if devOf(h.info) != devOf(h.parentInfo) {
		return fmt.Errorf("DIRECTORY %s is recorded as created by the run, but it is a mount point: never removed", h.path)
	}
	if !mayRemoveFrom(h.parentInfo, u) {
		return fmt.Errorf("DIRECTORY %s: %s cannot remove it from %s (mode %s, owned by %s)",
			h.path, userName(u.uid), filepath.Dir(h.path), h.parentInfo.Mode().Perm(), ownerName(h.parentInfo))
	}
	return nil
}

// ownerName names the owner of what fi describes.
func ownerName(fi fs.FileInfo) string {
	uid, err := ownerOf(fi)
	if err != nil {
		return "an unknown user"
	}
	return userName(uid)
}

// looksLikeOurs checks that a recorded directory other than the target
// holds only what pg_basebackup puts into a --waldir or a tablespace
// directory.
func looksLikeOurs(h *dirHandle) error {
	names, err := h.names()
	if err != nil {
		return fmt.Errorf("DIRECTORY %s: %v", h.path, err)
	}
	wal, ts := true, true
	var odd string
	for _, n := range names {
		fi, err := h.dir.Lstat(n)
		if err != nil {
			return fmt.Errorf("DIRECTORY %s: %v", h.path, err)
		}
		w, t := walName.MatchString(n), tablespaceName.MatchString(n) && fi.IsDir()
		wal, ts = wal && w, ts && t
		if !w && !t && odd == "" {
			odd = n
		}
	}
	if !wal && !ts {
		if odd == "" {
			odd = names[0]
		}
		return fmt.Errorf("DIRECTORY %s holds %q and does not look like a WAL or tablespace directory pg_basebackup made", h.path, odd)
	}
	return nil
}

// checkUsers refuses if a process of this host may still write into the
// directories; the target, recorded as target, is now at targetNow.
func checkUsers(steps []RemoveStep, s *Status, c config, target, targetNow string, ids map[FileID]bool) error {
	du, ok := c.procs.(DirUsers)
	if !ok {
		return fmt.Errorf("cannot tell which processes use the directories (%T cannot list them)", c.procs)
	}
	var dirs []string
	for _, st := range steps {
		if st.Missing {
			continue
		}
		p := st.Path
		if p == target {
			p = targetNow
		}
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			return fmt.Errorf("resolve %s: %v", p, err)
		}
		dirs = append(dirs, r)
	}
	pid := 0
	if host, err := c.procs.Hostname(); err == nil && host == s.Host {
		pid = s.PID
	}
	var users []DirUser
	err := asCaller(func() (err error) { users, err = du.DirUsers(dirs, ids, pid); return err })
	if err != nil {
		return fmt.Errorf("cannot tell which processes use the directories: %v", err)
	}
	if len(users) > 0 {
		u := users[0]
		return fmt.Errorf("pid %d (%s) may still write into the backup: %s (%d such processes)", u.PID, u.Name, u.Why, len(users))
	}
	return nil
}

// maxNameLen is the longest file name the file systems pg_basebackup
// writes to take (NAME_MAX).
const maxNameLen = 255

// tombstoneName is the name a directory called name is renamed to before
// it is removed: .NAME.pgbb-removing-PID, with NAME cut short (and marked
// with "~") when the whole would be longer than a file name may be.
func tombstoneName(name string) string {
	tail := TombstoneSuffix + strconv.Itoa(os.Getpid())
	if room := maxNameLen - 1 - len(tail); len(name) > room {
		name = name[:room-1] + "~"
	}
	return "." + name + tail
}

// tombstone is the path path is renamed to before it is removed.
func tombstone(path string) string {
	return filepath.Join(filepath.Dir(path), tombstoneName(filepath.Base(path)))
}

// execute carries out the plan; data is the status file that was judged,
// owner its owner.
func (rm *Removal) execute(p *plan, data []byte, owner uint32, c config) *Removal {
	target, th := &rm.Steps[0], p.handles[0]
	targetNow := rm.Dir

	// The target first: out of the way of a retry, then everything
	// checked again from where it is now.
	if target.Created {
		if err := th.renameTo(tombstoneName(th.name)); err != nil {
			return rm.refuse("cannot rename the target out of the way: %v", err)
		}
		targetNow = filepath.Join(filepath.Dir(rm.Dir), th.name)
		target.Tombstone = tombstone(target.Path)
		c.hook("renamed")
	}
	if err := rm.recheck(p, data, owner, c, targetNow); err != nil {
		if target.Created {
			if rerr := th.renameTo(filepath.Base(rm.Dir)); rerr != nil {
				return rm.refuse("%v; the target was left at %s, since renaming it back failed: %v", err, targetNow, rerr)
			}
			target.Tombstone = ""
		}
		return rm.refuse("%v (checked again after renaming the target; nothing removed)", err)
	}
	c.hook("checked")

	// The other created directories out of the way too, then empty every
	// directory, then remove the tombstones.
	for i := range rm.Steps[1:] {
		st, h := &rm.Steps[1+i], p.handles[1+i]
		if st.Missing || !st.Created {
			continue
		}
		if err := h.renameTo(tombstoneName(h.name)); err != nil {
			return rm.undoRenames(p, err)
		}
		st.Tombstone = tombstone(st.Path)
	}
	for i := range rm.Steps {
		st, h := &rm.Steps[i], p.handles[i]
		if st.Missing {
			st.Done = true
			continue
		}
		c.hook("emptying " + st.Path)
		if err := h.empty(i == 0); err != nil {
			return rm.fail(err)
		}
		if !st.Created {
			st.Done = true
		}
	}
	for i := range rm.Steps {
		st, h := &rm.Steps[i], p.handles[i]
		if st.Tombstone == "" {
			continue
		}
		c.hook("removing " + st.Path)
		if err := h.removeEmptied(); err != nil {
			return rm.fail(fmt.Errorf("%w (was %s)", err, st.Path))
		}
		st.Done = true
	}
	rm.ExitCode = ExitRemoved
	return rm
}

// undoRenames renames every tombstone back, since err stopped the
// removal before anything was removed: a refusal if that worked.
func (rm *Removal) undoRenames(p *plan, err error) *Removal {
	var failed []string
	for i := range rm.Steps {
		st, h := &rm.Steps[i], p.handles[i]
		if st.Tombstone == "" {
			continue
		}
		name := filepath.Base(st.Path)
		if i == 0 {
			name = filepath.Base(rm.Dir)
		}
		if rerr := h.renameTo(name); rerr != nil {
			failed = append(failed, fmt.Sprintf("%s left at %s: %v", st.Path, st.Tombstone, rerr))
			continue
		}
		st.Tombstone = ""
	}
	if len(failed) > 0 {
		return rm.fail(fmt.Errorf("%v; renaming back failed: %s", err, strings.Join(failed, "; ")))
	}
	return rm.refuse("%v (nothing removed, every directory renamed back)", err)
}

// recheck reads the status file again through the target's handle and
// repeats the checks; the target is now at targetNow.
func (rm *Removal) recheck(p *plan, data []byte, owner uint32, c config, targetNow string) error {
	again, s, ownerNow, err := readForRemoval(p.handles[0])
	if err != nil {
		return err
	}
	if !bytes.Equal(again, data) || ownerNow != owner {
		return fmt.Errorf("the status file %s changed since it was judged", rm.StatusFile)
	}
	// Another host's run was watched for the lease already: the file is
	// still the one judged, which is all a lease can tell.
	if err := asCaller(func() error { _, _, err := runOver(s, c); return err }); err != nil {
		return err
	}
	return checkUsers(rm.Steps, s, c, rm.Steps[0].Path, targetNow, p.ids)
}
