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
	"slices"
	"strings"
	"syscall"
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

// TombstoneSuffix is in the name something is renamed to before it is
// removed: .NAME.pgbb-removing-XXXXXXXX, in the same directory, where
// XXXXXXXX is the CHECKSUM of the status file judged.
const TombstoneSuffix = ".pgbb-removing-"

// The files a RemoveStep removes, besides recorded directories.
const (
	// StepTempFile is a temporary file of the run's status file:
	// FILE.PID.tmp (TempPath, PID the status file's), or FILE.tmp
	// (LegacyTempPath), which earlier writers used.
	StepTempFile = "temporary file"
	// StepStatusFile is the status file.
	StepStatusFile = "status file"
)

// WithLease lets RemoveIfDead judge a run written on another host dead when
// its status file stays the same while RemoveIfDead watches it for d on
// this machine's monotonic clock (it blocks that long). Without it, such a
// run is never removed. Check and Wait take no lease: judging once, they
// cannot watch, and say of such a run that they cannot tell (pgbb-status
// refuses --lease without --remove-if-dead).
func WithLease(d time.Duration) Option { return func(c *config) { c.lease = d } }

// Removal is the result of RemoveIfDead.
type Removal struct {
	// StatusFile is the status file, made absolute.
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
	// HoldsManifest says the refusal is that the target holds
	// backup_manifest (ErrHoldsManifest): the backup may be complete.
	HoldsManifest bool `json:"holds_manifest,omitempty"`
	// Steps are what was (or, with DryRun or on refusal, would be) done:
	// one per recorded directory, then the run's temporary files that
	// were there (FILE.PID.tmp, then FILE.tmp), then the status file.
	Steps []RemoveStep `json:"steps,omitempty"`
	// Error says what stopped a removal that had started.
	Error string `json:"error,omitempty"`
	// ExitCode is ExitRemoved, ExitRefused or ExitRemoveFailed.
	ExitCode int `json:"exit_code"`
}

// RemoveStep is what happens to one recorded directory, or to the status
// file or its temporary file.
type RemoveStep struct {
	// Path is the recorded directory, or the file.
	Path string `json:"path"`
	// File is StepTempFile or StepStatusFile for a file, empty for a
	// directory.
	File string `json:"file,omitempty"`
	// Created says the run created the directory: it is removed.
	// Otherwise it existed before the run: it is emptied and kept.
	Created bool `json:"created"`
	// Missing says it does not exist any more: nothing to do.
	Missing bool `json:"missing,omitempty"`
	// Tombstone is the name it was renamed to before being removed.
	Tombstone string `json:"tombstone,omitempty"`
	// Resumed says an interrupted removal had renamed it to Tombstone
	// already.
	Resumed bool `json:"resumed,omitempty"`
	// Kept says why a file was left alone: from the start, a temporary
	// file of another user than the status file's owner (never removed);
	// or, when its turn came, it was no longer the file judged (a new run
	// rewrote it). (A file gone by then is Missing.)
	Kept string `json:"kept,omitempty"`
	// Done says the step was carried out (for a kept file: that it was
	// dealt with).
	Done bool `json:"done"`
}

// String says what the step does.
func (st RemoveStep) String() string {
	resumed := ""
	if st.Resumed {
		resumed = fmt.Sprintf(", found at %s, where an interrupted removal had renamed it", st.Tombstone)
	}
	what := st.Path
	if st.File != "" {
		what = "the " + st.File + " " + st.Path
	}
	switch {
	case st.Missing:
		return fmt.Sprintf("nothing to do for %s (already gone)", what)
	case st.Kept != "":
		return fmt.Sprintf("keep %s: %s", what, st.Kept)
	case st.File != "":
		return fmt.Sprintf("remove %s%s", what, resumed)
	case st.Created:
		return fmt.Sprintf("remove %s (created by the run)%s", st.Path, resumed)
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
	rm.Error, rm.ExitCode = err.Error(), ExitRemoveFailed
	return rm
}

// RemoveIfDead removes what the run of the status file at statusFile left
// behind: the directories its DIRECTORY lines record ("created" ones are
// removed, "existing" ones emptied and kept), then its temporary files, if
// any (FILE.PID.tmp, PID being the one its PID line records, and FILE.tmp,
// which earlier writers used whatever their pid), and the status file
// itself. A temporary file of another pid, FILE.OTHER.tmp, is another
// run's and is left alone. It does so only when the status file proves
// that the run is over and did not complete, and only what the status
// file's owner could remove itself:
//
//   - the status file is a regular file (not a symlink, nor a directory)
//     that parses (a torn, invalid or missing file is refused), and says
//     "in progress" or "failed" (never "completed", durable or not);
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
//     in the directories, and no pg_basebackup that may be the run's WAL
//     streaming child (which outlives its parent's SIGKILL) is a child or
//     in the process group of the recorded pid: one of the status file's
//     owner that did not start before the writer (see mayBeRunsChild);
//   - there is at least one DIRECTORY (a run with -D - or --target records
//     none: nothing is known to be its); every DIRECTORY is printable, an
//     absolute clean path other than "/", a directory and not a symlink,
//     none inside another; a tar-format run records only its target; any
//     recorded directory but the first (the target) holds only what
//     pg_basebackup puts in a --waldir (WAL segments, .partial, .history,
//     archive_status, summaries) or a tablespace directory
//     (PG_<version>_<catversion>); the status file lies in none of them
//     (pg_basebackup refuses such a --status-file); the target holds no
//     backup_manifest (pg_basebackup writes it only once the backup is
//     complete: a run that could not record its "completed" left a backup
//     that pg_verifybackup must judge, not a side file);
//   - the privilege boundary: the status file, its temporary files
//     (FILE.PID.tmp, FILE.tmp), every recorded directory and every entry
//     in them are owned by one user, the owner of the status file (a
//     temporary file of another user is kept, RemoveStep.Kept, and does
//     not stop the removal);
//     nothing in them is a mount point, a FIFO, a socket or a device, nor
//     deeper than 32 levels; a created directory is not a mount point,
//     and its parent, like the status file's, lets that user remove it. And all the file-system work, judging
//     included, runs with that user's file-system credentials (asUser),
//     so that the kernel refuses what the user could not do. Whoever runs
//     the removal (root, say), it deletes nothing that the user who wrote
//     the status file could not.
//
// The status file's directory and each recorded directory are opened
// once, before anything is judged, and everything after goes through
// those handles (os.Root): a path swapped for a symlink after the
// judgement is never followed, and a rename is checked against the
// identity judged and undone if it moved something else. The steps:
//
//  1. Every created directory is renamed to its tombstone in the same
//     parent, ".NAME.pgbb-removing-XXXXXXXX" (XXXXXXXX: the status
//     file's CHECKSUM), never replacing anything. A retry into the same
//     paths can start from then on.
//  2. The status file is read again through its directory's handle and
//     must be byte for byte the one judged, the same file (inode) with
//     the same owner; the run must still be over and no process may use
//     the directories. Otherwise every tombstone is renamed back and the
//     removal refused. (The owner, mount and permission checks are not
//     repeated: the owner's credentials cover what changes after them.)
//  3. Every directory is emptied (an existing one in place: it stays
//     non-empty, so a retry refuses it, until its last entry is gone),
//     then every tombstone removed.
//  4. The temporary files, if there were any, then the status file are
//     removed, each only if it is still the file judged (same inode; for
//     the status file, the same bytes): each is renamed to its tombstone,
//     checked there and removed. A new run that reuses the same --status-file
//     rewrites it by renaming a new file into place, so its file is never
//     the one judged and is kept (RemoveStep.Kept); one renamed in the
//     instant between the check and the rename is renamed back.
//
// What a crash (or a kill) of the removal leaves, and why running it again
// on the same status file finishes the job: the status file stays in
// place, unchanged, until step 4, so a second run judges the same file
// the same way. After step 1, a created directory is missing and its
// tombstone, named after the status file's checksum, is there: the second
// run finds it, judges it as the directory (all the same checks) and goes
// on without renaming it again; a tombstone renamed back in step 2 is
// the directory again. During step 3 a directory is partly emptied, or a
// tombstone is gone: the rest is judged and removed, and a directory gone
// with no tombstone is "already gone". In step 4, a crash between the
// rename of a file and its removal leaves its tombstone: a temporary
// file's is found by name; if the status file is missing, its tombstone (the only
// file in its directory named ".FILE.pgbb-removing-XXXXXXXX", whose
// CHECKSUM is XXXXXXXX) is judged in its place, proves the run over
// again, and is removed. What is never finished by a second run: the
// tombstones of a run whose status file a new run has rewritten since
// (their names carry the old checksum); they hold nothing but the dead
// run's files and can be removed by hand.
//
// With dryRun nothing is changed: the Removal says what would be done.
func RemoveIfDead(ctx context.Context, statusFile string, dryRun bool, opts ...Option) *Removal {
	c := newConfig(opts)
	rm := &Removal{StatusFile: statusFile, DryRun: dryRun}
	abs, err := filepath.Abs(statusFile)
	if err != nil {
		return rm.refuse("cannot make %s absolute: %v", statusFile, err)
	}
	rm.StatusFile = abs
	// Who may delete what: the owner of the status file, whose
	// credentials everything below runs with.
	name, fi, err := findStatus(abs)
	if err := checkStatusLstat(abs, fi, err); err != nil {
		return rm.refuse("%v", err)
	}
	u, err := ownerWithGroups(fi)
	if err != nil {
		return rm.refuse("cannot tell who owns the status file %s: %v", abs, err)
	}
	rm.Owner = userName(u.uid)
	if err := asUser(u, func() error { rm.removeAs(ctx, c, u, name, fi); return nil }); err != nil {
		return rm.refuse("%v", err)
	}
	return rm
}

// removeAs is RemoveIfDead with the file-system credentials of u, on the
// status file called name in its directory, as Lstat saw it before.
func (rm *Removal) removeAs(ctx context.Context, c config, u owner, name string, seen fs.FileInfo) *Removal {
	sf, err := openStatusRef(rm.StatusFile, name, seen)
	if err != nil {
		return rm.refuse("%s cannot open the directory of the status file: %v", userName(u.uid), err)
	}
	defer sf.Close()
	p := &plan{ids: map[FileID]bool{}}
	defer p.close()

	data, s, err := sf.judge(u.uid)
	if err != nil {
		return rm.refuse("%v", err)
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
		rm.HoldsManifest = errors.Is(err, ErrHoldsManifest)
		return rm.refuse("%v", err)
	}
	if err := p.judgeFiles(sf, data, s.PID, s.Checksum, u); err != nil {
		return rm.refuse("%v", err)
	}
	rm.Steps = p.steps
	if lease {
		seen, err := observe(ctx, sf, data, c)
		if err != nil {
			return rm.refuse("%v", err)
		}
		rm.Over += ", and " + seen
	}
	if err := checkUsers(p.paths(), s, u.uid, c, p.ids); err != nil {
		return rm.refuse("%v", err)
	}
	if rm.DryRun {
		rm.ExitCode = ExitRemoved
		return rm
	}
	c.hook("judged")
	return rm.execute(p, sf, data, s.Checksum, u.uid, c)
}

// judge reads the status file through its directory's handle: a regular
// file (no symlink at all), the one Lstat saw, owned by uid, that parses;
// under a tombstone's name, one whose CHECKSUM the name carries. It
// returns the file and its parse.
func (r *statusRef) judge(uid uint32) ([]byte, *Status, error) {
	data, fi, err := r.read(r.name)
	switch {
	case err != nil:
		return nil, nil, err
	case !os.SameFile(fi, r.info):
		return nil, nil, fmt.Errorf("the status file %s was replaced while it was being judged", r.where(r.name))
	}
	if owner, err := ownerOf(fi); err != nil || owner != uid {
		return nil, nil, fmt.Errorf("the status file %s changed owner (now %s) while it was being judged", r.where(r.name), ownerName(fi))
	}
	s, err := Parse(data)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Path = r.where(r.name)
			withholdUnlessOwn(pe, fi)
		}
		return nil, nil, fmt.Errorf("status file cannot be used: %v", err)
	}
	if r.resumed() {
		if sum, ok := r.tombstoneSum(); !ok || sum != s.Checksum {
			return nil, nil, fmt.Errorf("no status file %s, and %s, named as its tombstone, is not (its CHECKSUM is %08X)", r.path, r.where(r.name), s.Checksum)
		}
	}
	return data, s, nil
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

// observe watches the status file for the lease, on this machine's
// monotonic clock; every read must be the file judged, data.
func observe(ctx context.Context, sf *statusRef, data []byte, c config) (string, error) {
	read := func(string) ([]byte, error) {
		b, _, err := sf.read(sf.name)
		if err == nil && !bytes.Equal(b, data) {
			return nil, fmt.Errorf("the status file changed since it was judged: the run rewrote it and is alive")
		}
		return b, err
	}
	return observeLease(ctx, sf.where(sf.name), c.lease, leasePoll(c.lease), read, c.leaseClock)
}

// walName and tablespaceName are what pg_basebackup puts into a --waldir
// and a tablespace directory.
var (
	walName        = regexp.MustCompile(`^([0-9A-F]{24}(\.[0-9A-F]{8}\.backup)?(\.gz|\.lz4|\.zst)?(\.partial)?(\.tmp)?|[0-9A-F]{8}\.history(\.tmp)?|archive_status|summaries)$`)
	tablespaceName = regexp.MustCompile(`^PG_[0-9]+_[0-9]+$`)
)

// A plan is what RemoveIfDead is to do: a step and an open handle per
// recorded directory (nil for one already gone), in file order, then the
// steps of the files.
type plan struct {
	steps   []RemoveStep
	handles []*dirHandle
	// files are the files to remove last: the temporary files, if any
	// (FILE.PID.tmp, FILE.tmp), then the status file; their steps follow
	// the directories'.
	files []fileStep
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

// paths are the current paths of the directories that exist: recorded,
// or their tombstones'.
func (p *plan) paths() []string {
	var out []string
	for _, h := range p.handles {
		if h != nil {
			out = append(out, h.where())
		}
	}
	return out
}

// judge checks the DIRECTORY lines of s and the privilege boundary of
// owner, opens every recorded directory (or, for a created one that an
// interrupted removal renamed, its tombstone), and fills in a step for
// each.
func (p *plan) judge(s *Status, u owner) error {
	owner := u.uid
	if err := checkDirectoryLines(s); err != nil {
		return err
	}
	for i, d := range s.Directories {
		step := RemoveStep{Path: d.Path, Created: d.Created}
		name := filepath.Base(d.Path)
		fi, err := os.Lstat(d.Path)
		if d.Created {
			tomb := tombstone(d.Path, s.Checksum)
			_, terr := os.Lstat(tomb)
			switch {
			case terr == nil && err == nil:
				return fmt.Errorf("DIRECTORY %s and %s, its tombstone from an interrupted removal of this run, both exist: %s may be a new run's; remove the tombstone by hand once sure", d.Path, tomb, d.Path)
			case terr == nil:
				step.Tombstone, step.Resumed = tomb, true
				name = filepath.Base(tomb)
				fi, err = os.Lstat(tomb)
			}
		}
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
		h, err := openDirHandle(d.Path, name)
		switch {
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("DIRECTORY %s: %s cannot reach it (%v): only what that user could remove is removed", d.Path, userName(owner), err)
		case err != nil:
			return fmt.Errorf("DIRECTORY %s: %v", d.Path, err)
		}
		p.handles = append(p.handles, h)
		p.steps = append(p.steps, step)
		if err := ownedBy(h.where(), h.info, owner); err != nil {
			return err
		}
		if i > 0 {
			if err := looksLikeOurs(h); err != nil {
				return err
			}
		} else if !step.Resumed {
			if err := checkNoManifest(h); err != nil {
				return err
			}
		}
	}
	if err := checkOverlap(p.steps, p.paths()); err != nil {
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

// judgeFiles checks the status file's place and its temporary files, and
// adds their steps: the status file must lie in none of the recorded
// directories (pg_basebackup refuses such a --status-file), and its
// directory must let u remove it; each temporary file of the run of pid
// (FILE.PID.tmp and FILE.tmp, see statusRef.tempNames) that is there (or
// its tombstone, left by an interrupted removal) must be a regular file
// of u.
func (p *plan) judgeFiles(sf *statusRef, data []byte, pid int, sum uint32, u owner) error {
	for _, st := range p.steps {
		if within(st.Path, sf.path) {
			return fmt.Errorf("the status file %s lies inside DIRECTORY %s: pg_basebackup refuses such a --status-file, so it did not write this file", sf.path, st.Path)
		}
	}
	if id, ok := fileID(sf.dirInfo); ok && p.ids[id] {
		return fmt.Errorf("the status file %s lies inside one of the recorded directories (%s is one of them or in one): pg_basebackup refuses such a --status-file, so it did not write this file",
			sf.path, filepath.Dir(sf.path))
	}
	if !mayRemoveFrom(sf.dirInfo, u) {
		return fmt.Errorf("%s cannot remove the status file %s from %s (mode %s, owned by %s)",
			userName(u.uid), sf.path, filepath.Dir(sf.path), sf.dirInfo.Mode().Perm(), ownerName(sf.dirInfo))
	}
	for _, name := range sf.tempNames(pid) {
		if err := p.judgeTemp(sf, name, sum, u); err != nil {
			return err
		}
	}
	p.files = append(p.files, fileStep{name: sf.name, info: sf.info, data: data, resumed: sf.resumed()})
	st := RemoveStep{Path: sf.path, File: StepStatusFile}
	if sf.resumed() {
		st.Tombstone, st.Resumed = sf.where(sf.name), true
	}
	p.steps = append(p.steps, st)
	return nil
}

// judgeTemp judges the temporary file called name in the status file's
// directory and, if there is one (or its tombstone, left by an interrupted
// removal), adds its step: a file of another user than u is kept (see
// keepForeign); one of u's must be a regular file.
func (p *plan) judgeTemp(sf *statusRef, name string, sum uint32, u owner) error {
	tmp := fileStep{name: name}
	fi, err := sf.dir.Lstat(tmp.name)
	if errors.Is(err, syscall.ENAMETOOLONG) {
		// FILE.PID.tmp of a FILE whose name is nearly as long as a name
		// may be: no writer can have made it.
		err = fs.ErrNotExist
	}
	if errors.Is(err, fs.ErrNotExist) {
		tomb := tombstoneName(tmp.name, sum)
		if fi, err = sf.dir.Lstat(tomb); err == nil {
			tmp.name, tmp.resumed = tomb, true
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("cannot examine the temporary file %s: %v", sf.where(tmp.name), err)
	case p.keepForeign(sf, tmp, fi, u):
		return nil
	case !fi.Mode().IsRegular():
		return fmt.Errorf("the temporary file %s is not a regular file (mode %s): pg_basebackup writes one", sf.where(tmp.name), fi.Mode())
	}
	if err := ownedBy(sf.where(tmp.name), fi, u.uid); err != nil {
		return err
	}
	data, rfi, err := sf.read(tmp.name)
	switch {
	case err != nil:
		return fmt.Errorf("the temporary file: %v", err)
	case !os.SameFile(rfi, fi):
		return fmt.Errorf("the temporary file %s was replaced while it was being judged", sf.where(tmp.name))
	}
	tmp.info, tmp.data = fi, data
	p.files = append(p.files, tmp)
	st := RemoveStep{Path: sf.where(name), File: StepTempFile}
	if tmp.resumed {
		st.Tombstone, st.Resumed = sf.where(tmp.name), true
	}
	p.steps = append(p.steps, st)
	return nil
}

// keepForeign adds the step of a temporary file (or tombstone) tmp that
// fi says another user than u owns, and says whether it did: another
// user's file, which is never removed, and which does not stop the
// removal either (in a shared directory anyone may make a file of that
// name).
func (p *plan) keepForeign(sf *statusRef, tmp fileStep, fi fs.FileInfo, u owner) bool {
	uid, err := ownerOf(fi)
	if err != nil || uid == u.uid {
		return false
	}
	tmp.foreign = true
	p.files = append(p.files, tmp)
	p.steps = append(p.steps, RemoveStep{Path: sf.where(tmp.name), File: StepTempFile,
		Kept: fmt.Sprintf("owned by %s, not by %s, the owner of the status file: another user's file, never removed", userName(uid), userName(u.uid))})
	return true
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
	if s.Format == "tar" && len(s.Directories) > 1 {
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

// checkOverlap makes the overlap check on resolved paths (paths: the
// current paths of the directories that exist, in step order): a symlink
// in a parent must not make one directory the other, or put one inside
// another.
func checkOverlap(steps []RemoveStep, paths []string) error {
	var resolved, names []string
	k := 0
	for _, st := range steps {
		if st.Missing {
			continue
		}
		p := paths[k]
		k++
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			return fmt.Errorf("resolve DIRECTORY %s: %v", st.Path, err)
		}
		for j, q := range resolved {
			if within(q, r) || within(r, q) {
				return fmt.Errorf("DIRECTORY %s and %s resolve to %s and %s, the same or one inside the other", names[j], st.Path, q, r)
			}
		}
		resolved, names = append(resolved, r), append(names, st.Path)
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

// ErrHoldsManifest is the refusal of a target that holds backup_manifest.
var ErrHoldsManifest = errors.New("holds backup_manifest")

// checkNoManifest refuses a target that holds backup_manifest.
// pg_basebackup puts it there (renamed from backup_manifest.tmp) only
// after every file and the final sync, just before its final status: a
// run whose "completed" could not be recorded (its last version failed to
// write and the file could not be removed, or a power loss undid the
// rename of an unsynced directory) left a backup that is probably complete.
// Only pg_verifybackup can tell; a side file must not decide its fate.
func checkNoManifest(h *dirHandle) error {
	fi, err := h.dir.Lstat("backup_manifest")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("DIRECTORY %s: %v", h.path, err)
	case fi.Mode().IsRegular():
		return fmt.Errorf("DIRECTORY %s %w, which pg_basebackup writes only once the backup is complete: the run may have completed without recording it; check it with pg_verifybackup %s, then keep it or remove it by hand", h.path, ErrHoldsManifest, h.path)
	}
	return nil
}

// checkUsers refuses if a process of this host may still write into the
// directories, now at paths: one that uses them, or one that may be the
// WAL streaming child of the run of s, whose status file owner owns
// (mayBeRunsChild).
func checkUsers(paths []string, s *Status, owner uint32, c config, ids map[FileID]bool) error {
	du, ok := c.procs.(DirUsers)
	if !ok {
		return fmt.Errorf("cannot tell which processes use the directories (%T cannot list them)", c.procs)
	}
	var dirs []string
	for _, p := range paths {
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
	users = slices.DeleteFunc(users, func(u DirUser) bool { return u.WALChild && !mayBeRunsChild(u, owner, s) })
	if len(users) > 0 {
		u := users[0]
		return fmt.Errorf("pid %d (%s) may still write into the backup: %s (%d such processes)", u.PID, u.Name, u.Why, len(users))
	}
	return nil
}

// mayBeRunsChild says whether u, a process tied to the run of s only by
// its parent or process group (DirUser.WALChild), may be the run's WAL
// streaming child: a process of owner, the status file's owner (by any of
// its uids; unknown uids count), that did not start before the writer in
// clock ticks since boot (START TICKS, where they compare). Another
// user's process may have taken the dead pid's number as its process
// group; it is not the run's. Without START TICKS the start is not
// judged: a wall clock set back since the run started would make the
// run's own child seem to have started before it.
func mayBeRunsChild(u DirUser, owner uint32, s *Status) bool {
	if len(u.UIDs) > 0 && !slices.Contains(u.UIDs, owner) {
		return false
	}
	return !ticksDecide(s, u.StartTicks, u.TicksAsOwn) || u.StartTicks >= s.StartTicks
}

// maxNameLen is the longest file name the file systems pg_basebackup
// writes to take (NAME_MAX).
const maxNameLen = 255

// tombstoneName is the name something called name is renamed to before it
// is removed, for the status file whose CHECKSUM is sum:
// .NAME.pgbb-removing-XXXXXXXX, with NAME cut short (and marked with "~")
// when the whole would be longer than a file name may be. A second
// removal over the same status file finds it by that name.
func tombstoneName(name string, sum uint32) string {
	tail := fmt.Sprintf("%s%08X", TombstoneSuffix, sum)
	if room := maxNameLen - 1 - len(tail); len(name) > room {
		name = name[:room-1] + "~"
	}
	return "." + name + tail
}

// tombstone is the path path is renamed to before it is removed.
func tombstone(path string, sum uint32) string {
	return filepath.Join(filepath.Dir(path), tombstoneName(filepath.Base(path), sum))
}

// execute carries out the plan; data is the status file that was judged,
// sum its CHECKSUM, owner its owner.
func (rm *Removal) execute(p *plan, sf *statusRef, data []byte, sum uint32, owner uint32, c config) *Removal {
	dirs := rm.Steps[:len(p.handles)]
	// Every created directory out of the way of a retry, then everything
	// checked again.
	for i := range dirs {
		st, h := &dirs[i], p.handles[i]
		if h == nil || !st.Created || st.Resumed {
			continue
		}
		if err := h.renameTo(tombstoneName(h.name, sum)); err != nil {
			return rm.undoRenames(p, fmt.Errorf("cannot rename %s out of the way: %w", st.Path, err))
		}
		st.Tombstone = tombstone(st.Path, sum)
	}
	c.hook("renamed")
	if err := rm.recheck(p, sf, data, owner, c); err != nil {
		return rm.undoRenames(p, fmt.Errorf("%w (checked again after renaming the created directories)", err))
	}
	c.hook("checked")

	// Empty every directory, then remove the tombstones.
	for i := range dirs {
		st, h := &dirs[i], p.handles[i]
		if st.Missing {
			st.Done = true
			continue
		}
		c.hook("emptying " + st.Path)
		if err := h.empty(); err != nil {
			return rm.fail(err)
		}
		if !st.Created {
			st.Done = true
		}
	}
	for i := range dirs {
		st, h := &dirs[i], p.handles[i]
		if st.Tombstone == "" {
			continue
		}
		c.hook("removing " + st.Path)
		if err := h.removeEmptied(); err != nil {
			return rm.fail(fmt.Errorf("%w (was %s)", err, st.Path))
		}
		st.Done = true
	}

	// The files last, each only if it is still the one judged.
	for i, f := range p.files {
		st := &rm.Steps[len(dirs)+i]
		if f.foreign {
			st.Done = true // kept: another user's
			continue
		}
		c.hook("removing " + st.Path)
		kept, err := sf.remove(f, sum, c.hook)
		switch {
		case err != nil:
			return rm.fail(err)
		case kept == alreadyGone:
			st.Missing = true
		default:
			st.Kept = kept
		}
		st.Done = true
	}
	rm.ExitCode = ExitRemoved
	return rm
}

// undoRenames renames back every directory this removal renamed, since
// err stopped it before anything was removed: a refusal if that worked.
func (rm *Removal) undoRenames(p *plan, err error) *Removal {
	var failed []string
	for i, h := range p.handles {
		st := &rm.Steps[i]
		if h == nil || st.Tombstone == "" || st.Resumed {
			continue
		}
		if rerr := h.renameTo(filepath.Base(st.Path)); rerr != nil {
			failed = append(failed, fmt.Sprintf("%s left at %s: %v", st.Path, st.Tombstone, rerr))
			continue
		}
		st.Tombstone = ""
	}
	if len(failed) > 0 {
		return rm.refuse("%v; renaming back failed, so a directory holding only the dead run's files was left at its tombstone: %s", err, strings.Join(failed, "; "))
	}
	return rm.refuse("%v (nothing removed, every directory renamed back)", err)
}

// recheck reads the status file again through its directory's handle and
// repeats the checks that may change by themselves.
func (rm *Removal) recheck(p *plan, sf *statusRef, data []byte, owner uint32, c config) error {
	again, fi, err := sf.read(sf.name)
	if err != nil {
		return err
	}
	ownerNow, oerr := ownerOf(fi)
	if !bytes.Equal(again, data) || !os.SameFile(fi, sf.info) || oerr != nil || ownerNow != owner {
		return fmt.Errorf("the status file %s changed since it was judged (a new run may have rewritten it)", sf.where(sf.name))
	}
	s, err := Parse(again)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			withholdUnlessOwn(pe, fi)
		}
		return err
	}
	// Another host's run was watched for the lease already: the file is
	// still the one judged, which is all a lease can tell.
	if err := asCaller(func() error { _, _, err := runOver(s, c); return err }); err != nil {
		return err
	}
	return checkUsers(p.paths(), s, owner, c, p.ids)
}
