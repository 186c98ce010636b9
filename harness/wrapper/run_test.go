package wrapper

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbb/pgbb/harness/status"
)

// fakeSystemID is the system identifier in the fake backup's pg_control.
const fakeSystemID = 7441234567890123456

// fake is a run of the stand-in pg_basebackup (testdata/pg_basebackup)
// under Run, in this process.
type fake struct {
	dir, statusFile, target, seen string
	stderr                        bytes.Buffer
	refresh                       time.Duration // default: a second
}

// newFake lays out a run in mode (FAKE_MODE of the stand-in).
func newFake(t *testing.T, mode string) *fake {
	t.Helper()
	f := &fake{dir: t.TempDir()}
	f.statusFile = filepath.Join(f.dir, "b1.status")
	f.target = filepath.Join(f.dir, "b1")
	f.seen = filepath.Join(f.dir, "seen")
	control := filepath.Join(f.dir, "pg_control")
	b := binary.LittleEndian.AppendUint64(nil, fakeSystemID)
	b = binary.LittleEndian.AppendUint32(b, 1800)
	if err := os.WriteFile(control, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKE_MODE", mode)
	t.Setenv("FAKE_CONTROL", control)
	t.Setenv("FAKE_STATUS", f.statusFile)
	t.Setenv("FAKE_SEEN", f.seen)
	return f
}

// run runs the stand-in with -D target under Run.
func (f *fake) run(t *testing.T, fsys SyncFS, extra ...string) int {
	t.Helper()
	prog, err := filepath.Abs("testdata/pg_basebackup")
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{prog, "-D", f.target}, extra...)
	refresh := f.refresh
	if refresh == 0 {
		refresh = time.Second
	}
	return Run(t.Context(), Config{
		StatusFile: f.statusFile, Refresh: refresh, Argv: argv,
		Stdout: &bytes.Buffer{}, Stderr: &f.stderr, SyncFS: fsys, Grace: 2 * time.Second,
	})
}

// final reads and parses the status file.
func (f *fake) final(t *testing.T) *status.Status {
	t.Helper()
	s, err := status.ReadFile(f.statusFile)
	if err != nil {
		t.Fatalf("status file: %v\nstderr:\n%s", err, f.stderr.String())
	}
	return s
}

func TestCompleted(t *testing.T) {
	f := newFake(t, "ok")
	if code := f.run(t, nil); code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, f.stderr.String())
	}
	seen, err := os.ReadFile(f.seen)
	if err != nil {
		t.Fatal(err)
	}
	first, err := status.Parse(seen)
	if err != nil || first.State != status.StateInProgress || first.PID != os.Getpid() {
		t.Fatalf("when pg_basebackup started the file was %+v (%v), want in progress of pid %d", first, err, os.Getpid())
	}
	s := f.final(t)
	if s.State != status.StateCompleted || !s.Durable || s.SystemID != fakeSystemID ||
		s.StartLSN != 0x2000028 || s.EndLSN != 0x2000100 || s.Timeline != 1 {
		t.Fatalf("final status %+v, want completed, durable, with the fake's WAL range and system identifier", s)
	}
	if len(s.Directories) != 1 || s.Directories[0] != (status.Directory{Path: f.target, Created: true}) {
		t.Errorf("directories %+v, want created %s", s.Directories, f.target)
	}
	if s.ProgramVersion != "pg_basebackup (PostgreSQL) 18.6" || s.Label != DefaultLabel {
		t.Errorf("program version %q, label %q", s.ProgramVersion, s.Label)
	}
	r := status.Check(f.statusFile)
	if r.Verdict != status.Completed {
		t.Errorf("pgbb-status verdict %v (%s), want completed", r.Verdict, r.Summary)
	}
}

// watchingFS is the OS's SyncFS that reads the status file at every sync.
type watchingFS struct {
	OSFS
	statusFile string
	states     []status.State
	samples    []*status.Status
	fail       func(path string) error
}

func (w *watchingFS) Sync(path string) error {
	if s, err := status.ReadFile(w.statusFile); err == nil {
		w.states = append(w.states, s.State)
		w.samples = append(w.samples, s)
	}
	if w.fail != nil {
		if err := w.fail(path); err != nil {
			return err
		}
	}
	return w.OSFS.Sync(path)
}

func TestCompletedOnlyAfterSyncPass(t *testing.T) {
	f := newFake(t, "ok")
	w := &watchingFS{statusFile: f.statusFile}
	if code := f.run(t, w); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, f.stderr.String())
	}
	if len(w.states) < 5 {
		t.Fatalf("the sync pass synced %d paths, want every file and directory", len(w.states))
	}
	for i, st := range w.states {
		if st != status.StateInProgress {
			t.Fatalf("sync %d: the status file said %v during the sync pass", i, st)
		}
	}
	final := f.final(t)
	if final.State != status.StateCompleted {
		t.Fatal("not completed after the sync pass")
	}
	var samples []*status.Status
	for _, p := range []string{f.seen, f.seen + ".end"} {
		b, _ := os.ReadFile(p)
		s, err := status.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		samples = append(samples, s)
	}
	if samples[1].Phase != status.PhaseFinishing {
		t.Errorf("once pg_basebackup was done the phase was %q, want finishing", samples[1].Phase)
	}
	samples = append(append(samples, w.samples...), final)
	if err := status.PhasesForward(samples); err != nil {
		t.Errorf("the writer's promises: %v", err)
	}
}

// TestSyncPassEIO: an EIO on open or fsync of one file during the
// wrapper's own sync pass fails the run.
func TestSyncPassEIO(t *testing.T) {
	f := newFake(t, "ok")
	w := &watchingFS{statusFile: f.statusFile, fail: func(path string) error {
		if filepath.Base(path) == "123" {
			return &fs.PathError{Op: "open", Path: path, Err: syscall.EIO}
		}
		return nil
	}}
	if code := f.run(t, w); code != ExitSyncFailed {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitSyncFailed, f.stderr.String())
	}
	s := f.final(t)
	if s.State != status.StateFailed || !strings.Contains(s.Reason, "input/output error") {
		t.Fatalf("status %v, reason %q; want failed for the EIO", s.State, s.Reason)
	}
	if r := status.Check(f.statusFile); r.Verdict != status.Failed {
		t.Errorf("verdict %v, want failed", r.Verdict)
	}
}

func TestFailedWithReason(t *testing.T) {
	f := newFake(t, "fail")
	// An earlier run's completed must not stand for this one.
	earlier := &status.Status{Version: 1, State: status.StateCompleted, PID: 1, Host: "h", Label: "x",
		ProgramVersion: "v", Format: "plain", WALMethod: "stream", Sync: true, Started: true,
		StartLSN: 1, Timeline: 1, EndLSN: 2, Durable: true}
	if err := os.WriteFile(f.statusFile, earlier.Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := f.run(t, nil); code != 1 {
		t.Fatalf("exit %d, want pg_basebackup's 1", code)
	}
	seen, _ := os.ReadFile(f.seen)
	if first, err := status.Parse(seen); err != nil || first.State != status.StateInProgress {
		t.Fatalf("when pg_basebackup started the file said %v (%v), want this run's in progress", first, err)
	}
	s := f.final(t)
	want := "error while starting: could not connect to server: boom"
	if s.State != status.StateFailed || s.Reason != want || s.PID != os.Getpid() {
		t.Fatalf("status %v pid %d reason %q, want failed, pid %d, %q", s.State, s.PID, s.Reason, os.Getpid(), want)
	}
	if r := status.Check(f.statusFile); r.ExitCode != 2 {
		t.Errorf("pgbb-status exit %d, want 2 (failed)", r.ExitCode)
	}
}

// TestSyncErrorInStderr: a stock pg_basebackup logs some errors of its
// final sync walk and goes on (src/common/file_utils.c: walkdir,
// fsync_fname, pre_sync_fname, get_dirent_type, as of 13 to 18), exiting
// 0 over a file it never synced. The stand-in prints each of those lines,
// word for word, and exits 0 with every file of its backup intact, so the
// wrapper's own sync pass succeeds: only the watch on its standard error
// can fail the run, and must, with the line as REASON and never DURABLE.
// The fsync lines are fatal in 13 to 18 (exit 1); the stand-in exits 0 on
// them too, for a pg_basebackup that would only log them.
func TestSyncErrorInStderr(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string // printed during the sync; %s is the target
	}{
		// fsync_fname (and pre_sync_fname) on a file, 13-18: EIO on open.
		{"open", `pg_basebackup: error: could not open file "%s/base/1/123": Input/output error`},
		// walkdir, 13-18: opendir and readdir.
		{"opendir", `pg_basebackup: error: could not open directory "%s/base/1": Input/output error`},
		{"readdir", `pg_basebackup: error: could not read directory "%s/base/1": Input/output error`},
		// get_dirent_type (15-18) and walkdir's lstat (13, 14).
		{"stat", `pg_basebackup: error: could not stat file "%s/base/1/123": Input/output error`},
		// fsync_fname's fsync: pg_log_error and exit in 15-18,
		// pg_log_fatal and exit in 13 and 14.
		{"fsync", `pg_basebackup: error: could not fsync file "%s/base/1/123": Input/output error`},
		{"fsync-13", `pg_basebackup: fatal: could not fsync file "%s/base/1/123": Input/output error`},
		// do_syncfs, --sync-method=syncfs (17, 18): open, then syncfs.
		{"syncfs", `pg_basebackup: error: could not synchronize file system for file "%s": Input/output error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, "ok")
			line := fmt.Sprintf(tc.line, f.target)
			t.Setenv("FAKE_SYNC_LINE", line)
			w := &watchingFS{statusFile: f.statusFile}
			if code := f.run(t, w); code != ExitSyncFailed {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitSyncFailed, f.stderr.String())
			}
			s := f.final(t)
			_, msg, _ := strings.Cut(line, "pg_basebackup: ")
			_, msg, _ = strings.Cut(msg, ": ")
			want := "error while syncing: pg_basebackup reported: " + msg
			if s.State != status.StateFailed || s.Reason != want || s.Durable {
				t.Fatalf("status %v, reason %q, durable %v; want failed, reason %q, not durable", s.State, s.Reason, s.Durable, want)
			}
			if r := status.Check(f.statusFile); r.Verdict != status.Failed || r.ExitCode != 2 {
				t.Errorf("pgbb-status verdict %v exit %d, want failed, exit 2", r.Verdict, r.ExitCode)
			}
			if !strings.Contains(f.stderr.String(), line+"\n") {
				t.Errorf("pg_basebackup's line is not passed on unchanged; stderr:\n%s", f.stderr.String())
			}
		})
	}
	// The control: the same stand-in without the line completes, its
	// backup synced by the wrapper's own pass, which found nothing wrong.
	t.Run("none", func(t *testing.T) {
		f := newFake(t, "ok")
		w := &watchingFS{statusFile: f.statusFile}
		if code := f.run(t, w); code != 0 {
			t.Fatalf("exit %d, want 0; stderr:\n%s", code, f.stderr.String())
		}
		if s := f.final(t); s.State != status.StateCompleted || !s.Durable || len(w.states) == 0 {
			t.Fatalf("status %v durable %v after %d syncs; want completed and durable after the sync pass", s.State, s.Durable, len(w.states))
		}
	})
}

func TestNoSyncNotDurable(t *testing.T) {
	f := newFake(t, "ok")
	w := &watchingFS{statusFile: f.statusFile}
	if code := f.run(t, w, "--no-sync"); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, f.stderr.String())
	}
	s := f.final(t)
	if s.State != status.StateCompleted || s.Durable || s.Sync || len(w.states) != 0 {
		t.Fatalf("status %v durable %v sync %v, %d syncs; want completed, not durable, no sync pass", s.State, s.Durable, s.Sync, len(w.states))
	}
	if r := status.Check(f.statusFile); r.ExitCode != 4 {
		t.Errorf("pgbb-status exit %d, want 4", r.ExitCode)
	}
}

// TestTempLeftovers: a temporary file left by a dead run with this pid
// (longer than the new version, read-only) or another pid never blocks.
func TestTempLeftovers(t *testing.T) {
	f := newFake(t, "ok")
	own := status.TempPath(f.statusFile, os.Getpid())
	other := status.TempPath(f.statusFile, 999999)
	junk := bytes.Repeat([]byte("junk\n"), 2000)
	for _, p := range []string{own, other} {
		if err := os.WriteFile(p, junk, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if code := f.run(t, nil); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, f.stderr.String())
	}
	if f.final(t).State != status.StateCompleted {
		t.Fatal("not completed")
	}
	if _, err := os.Stat(own); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("own temporary file still there: %v", err)
	}
	if b, err := os.ReadFile(other); err != nil || !bytes.Equal(b, junk) {
		t.Errorf("another pid's temporary file was touched")
	}
}

func TestStatusFileInsideTarget(t *testing.T) {
	f := newFake(t, "ok")
	f.statusFile = filepath.Join(f.target, "status")
	if code := f.run(t, nil); code != 64 {
		t.Fatalf("exit %d, want 64", code)
	}
}

func TestWriterUnwritable(t *testing.T) {
	f := newFake(t, "ok")
	f.statusFile = filepath.Join(f.dir, "missing", "b1.status")
	if code := f.run(t, nil); code != 0 {
		t.Fatalf("exit %d, want 0: a status file that cannot be written never fails the backup", code)
	}
	if !strings.Contains(f.stderr.String(), status.WarnCompleteUnsaid) {
		t.Errorf("stderr lacks %q:\n%s", status.WarnCompleteUnsaid, f.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(f.target, "base", "1", "123")); err != nil {
		t.Errorf("the backup was harmed: %v", err)
	}
}

// TestNonEmptyTargetNotRecorded: a target that is not empty (an earlier
// backup, say) is not the run's: pg_basebackup refuses it, and the failed
// file must not record it, or --remove-if-dead would empty it.
func TestNonEmptyTargetNotRecorded(t *testing.T) {
	f := newFake(t, "fail")
	if err := os.MkdirAll(f.target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.target, "PG_VERSION"), []byte("18\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := f.run(t, nil); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if s := f.final(t); s.State != status.StateFailed || len(s.Directories) != 0 {
		t.Fatalf("status %v with directories %+v, want failed with none", s.State, s.Directories)
	}
}

// TestEmptyTargetRecordedExisting: an empty target that existed is
// recorded as existing from the first version on.
func TestEmptyTargetRecordedExisting(t *testing.T) {
	f := newFake(t, "ok")
	if err := os.MkdirAll(f.target, 0o700); err != nil {
		t.Fatal(err)
	}
	if code := f.run(t, nil); code != 0 {
		t.Fatalf("exit %d", code)
	}
	seen, _ := os.ReadFile(f.seen)
	first, err := status.Parse(seen)
	want := []status.Directory{{Path: f.target}}
	if err != nil || !slices.Equal(first.Directories, want) || !slices.Equal(f.final(t).Directories, want) {
		t.Fatalf("first %+v (%v), want directories %+v", first, err, want)
	}
}

// TestStatusFileModeFollowsBackup: the status file is group-readable
// exactly when pg_basebackup makes the backup's files so (a source
// cluster with group access: umask 0027), as the patched pg_basebackup's
// is, so that a reader in the owner's group can read it; else 0600.
func TestStatusFileModeFollowsBackup(t *testing.T) {
	for _, tc := range []struct {
		umask string
		want  fs.FileMode
	}{
		{"0027", 0o640},
		{"0077", 0o600},
	} {
		t.Run(tc.umask, func(t *testing.T) {
			f := newFake(t, "ok")
			t.Setenv("FAKE_UMASK", tc.umask)
			if code := f.run(t, nil); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, f.stderr.String())
			}
			if s := f.final(t); s.State != status.StateCompleted {
				t.Fatalf("final state %v", s.State)
			}
			fi, err := os.Stat(f.statusFile)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.want {
				t.Errorf("status file mode %o, want %o", got, tc.want)
			}
		})
	}
}

// TestFinishingVersionHasLastProgress: the versions written once
// pg_basebackup is done (the sync pass's, in progress) carry the bytes of
// its last progress line, not those of the wrapper's last look before it:
// after the data, BYTES RECEIVED is all that was received.
func TestFinishingVersionHasLastProgress(t *testing.T) {
	f := newFake(t, "ok")
	t.Setenv("FAKE_PROGRESS", "1")
	t.Setenv("FAKE_SEEN", "") // pg_basebackup exits as soon as it is done
	w := &watchingFS{statusFile: f.statusFile}
	if code := f.run(t, w); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, f.stderr.String())
	}
	if len(w.samples) == 0 {
		t.Fatal("no version read during the sync pass")
	}
	for i, s := range w.samples {
		if s.State == status.StateInProgress && s.BytesReceived != 200<<10 {
			t.Fatalf("sync %d: in phase %q BYTES RECEIVED %d, want %d (the last progress line)", i, s.Phase, s.BytesReceived, 200<<10)
		}
	}
}

// TestMessagesUntranslated runs pg_basebackup in a user's German locale:
// it must get LC_MESSAGES=C, since the watcher reads its English messages
// (a pg_basebackup built with NLS would otherwise print "konnte Datei ...
// nicht öffnen" for the sync error that fails the run), and keep the
// user's locale for everything else.
func TestMessagesUntranslated(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"LANG", map[string]string{"LANG": "de_DE.UTF-8", "LANGUAGE": "de", "LC_MESSAGES": "de_DE.UTF-8"},
			"LC_ALL= LC_MESSAGES=C LANGUAGE= LANG=de_DE.UTF-8"},
		{"LC_ALL", map[string]string{"LC_ALL": "de_DE.UTF-8", "LANG": "fr_FR.UTF-8"},
			"LC_ALL= LC_MESSAGES=C LANGUAGE= LANG=de_DE.UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, "ok")
			for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANGUAGE", "LANG"} {
				t.Setenv(k, tc.env[k])
				if tc.env[k] == "" {
					os.Unsetenv(k)
				}
			}
			seen := filepath.Join(f.dir, "locale")
			t.Setenv("FAKE_LOCALE", seen)
			if code := f.run(t, nil); code != 0 {
				t.Fatalf("exit %d, want 0; stderr:\n%s", code, f.stderr.String())
			}
			got, err := os.ReadFile(seen)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(got)) != tc.want {
				t.Errorf("pg_basebackup ran with %q, want %q", strings.TrimSpace(string(got)), tc.want)
			}
		})
	}
}

// runStall runs the stand-in in mode stall (writing for busy seconds,
// then idle for idle seconds) at refresh, and returns when it stopped
// writing and what the status file said at the end of the idle time.
func runStall(t *testing.T, refresh time.Duration, busy, idle int) (time.Time, *status.Status) {
	t.Helper()
	f := newFake(t, "stall")
	f.refresh = refresh
	stalled := filepath.Join(f.dir, "stalled")
	t.Setenv("FAKE_BUSY", strconv.Itoa(busy))
	t.Setenv("FAKE_STALL", strconv.Itoa(idle))
	t.Setenv("FAKE_STALLED", stalled)
	if code := f.run(t, nil); code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, f.stderr.String())
	}
	data, err := os.ReadFile(stalled)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := os.ReadFile(stalled + ".status")
	if err != nil {
		t.Fatal(err)
	}
	s, err := status.Parse(seen)
	if err != nil {
		t.Fatalf("status file at the end of the idle time: %v", err)
	}
	return time.Unix(0, int64(secs*float64(time.Second))), s
}

// TestUpdateTimeIsLastProgress stops the stand-in's I/O a second after a
// periodic rewrite fell due: the file's UPDATE TIME must be when the run
// was last seen making progress, not when the next rewrite noticed it
// had, or a reader sees the stall up to an interval late.
func TestUpdateTimeIsLastProgress(t *testing.T) {
	// The rewrite due after the stop is done by the end of the idle time.
	stoppedAt, s := runStall(t, 5*time.Second, 6, 9)
	// The I/O counters are looked at five times a second and UPDATE
	// TIME is whole seconds; a loaded machine may look late, so a second
	// and a half is allowed after the stop, and 1.2 s before it.
	late := s.UpdateTime.Sub(stoppedAt)
	if s.Phase != status.PhaseReceiving || late > 1500*time.Millisecond || late < -1200*time.Millisecond {
		t.Errorf("during the stall: phase %s, UPDATE TIME %s, %s after the run stopped writing at %s",
			s.Phase, s.UpdateTime.Format(time.TimeOnly), late.Round(time.Millisecond), stoppedAt.Format("15:04:05.000"))
	}
}

// TestUpdateTimeAdvancesWithProgress keeps the stand-in writing for
// several intervals: the file is rewritten meanwhile, its UPDATE TIME
// never older than an interval and a bit, or a reader calls a healthy
// run stalled.
func TestUpdateTimeAdvancesWithProgress(t *testing.T) {
	stoppedAt, s := runStall(t, 2*time.Second, 9, 0)
	// Due every 2 s: at most 2 s, a look and the truncation behind.
	if age := stoppedAt.Sub(s.UpdateTime); s.Phase != status.PhaseReceiving || age > 3500*time.Millisecond {
		t.Errorf("after 9 s of writing: phase %s, UPDATE TIME %s, %s before the last write at %s",
			s.Phase, s.UpdateTime.Format(time.TimeOnly), age.Round(time.Millisecond), stoppedAt.Format("15:04:05.000"))
	}
}
