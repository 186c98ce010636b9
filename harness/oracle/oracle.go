// Package oracle is the crash harness's ground truth: it decides whether
// the directory a pg_basebackup run left behind is a complete backup.
// Stages run in order, each with a result: pg_verifybackup where there is
// a manifest; a copy of the backup (tar extracted, pg_wal.tar into
// pg_wal, tablespaces relinked); a server started on the copy as the
// unprivileged user, which must reach consistency; pg_amcheck; the canary
// rows, which must be exactly those committed before the backup began
// (plus possibly later ones, never a gap and never one attempted after the
// run ended); and pgbench's balance invariant.
package oracle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgbb/pgbb/harness/cluster"
	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/proc"
	"github.com/pgbb/pgbb/harness/workload"
)

// Stage status values.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// Stage is the result of one check.
type Stage struct {
	Name    string        `json:"name"`
	Status  string        `json:"status"`
	Message string        `json:"message,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Verdict is the oracle's answer for one backup.
type Verdict struct {
	// Complete says every stage passed (or was skipped for a reason that
	// does not count against the backup).
	Complete bool `json:"complete"`
	// Reason names the first failed stage and why.
	Reason string `json:"reason,omitempty"`
	// Stages are the stage results in order.
	Stages []Stage `json:"stages"`
	// CanaryDiff is go-cmp's diff of the canary ids wanted and found (as
	// ranges), when they differ.
	CanaryDiff string `json:"canary_diff,omitempty"`
}

// Input describes a backup to judge.
type Input struct {
	// BinDir holds the PostgreSQL programs; Acct runs them.
	BinDir string
	Acct   osuser.Account
	// Target is the backup directory.
	Target string
	// Format is "plain" or "tar"; WALMethod "stream", "fetch" or "none".
	Format    string
	WALMethod string
	// Stdout says the run wrote its tar archive to standard output (-D
	// -), saved as Target/base.tar: the manifest is then the archive's
	// member backup_manifest, which pg_verifybackup checks on the
	// extracted copy.
	Stdout bool
	// Manifest says the run was asked for a backup manifest (no
	// --no-manifest): then a backup without backup_manifest is not
	// complete, whatever a server started on it does. pg_basebackup
	// renames backup_manifest.tmp into place as its last step, and
	// pg_verifybackup and pg_combinebackup cannot use the backup without
	// it.
	Manifest bool
	// Scratch is an empty directory for the restored copy, owned by the
	// account's reach.
	Scratch string
	// Before is the canary position before pg_basebackup started; After
	// is the position once its process tree was gone.
	Before, After workload.Mark
	// Timeout bounds the restored server's start (recovery).
	Timeout time.Duration
}

// Judge runs the stages on in and returns the verdict. An error means the
// oracle itself could not work (scratch space, programs), never that the
// backup is bad.
func Judge(ctx context.Context, in Input) (Verdict, error) {
	j := &judge{in: in}
	return j.run(ctx)
}

type judge struct {
	in      Input
	v       Verdict
	restore string
	srv     *cluster.Cluster
}

func (j *judge) stage(name string, fn func() (string, error, bool)) bool {
	start := time.Now()
	msg, err, ok := fn()
	st := Stage{Name: name, Status: Pass, Message: msg, Elapsed: time.Since(start)}
	switch {
	case err != nil:
		st.Status = Fail
		st.Message = err.Error()
		if j.v.Reason == "" {
			j.v.Reason = name + ": " + firstLine(err.Error())
		}
	case !ok:
		st.Status = Skip
	}
	j.v.Stages = append(j.v.Stages, st)
	return err == nil
}

func (j *judge) skip(name, why string) {
	j.v.Stages = append(j.v.Stages, Stage{Name: name, Status: Skip, Message: why})
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// ErrScratchFull is returned when the oracle's own scratch space ran out:
// a harness problem, never a verdict on the backup.
var ErrScratchFull = errors.New("oracle scratch space is full")

func (j *judge) run(ctx context.Context) (Verdict, error) {
	v, err := j.stages(ctx)
	if err == nil {
		for _, st := range v.Stages {
			if st.Status == Fail && (st.Name == "restore" || st.Name == "start") && strings.Contains(st.Message, "No space left on device") {
				return v, fmt.Errorf("%w (%s): %s", ErrScratchFull, j.in.Scratch, firstLine(st.Message))
			}
		}
	}
	return v, err
}

func (j *judge) stages(ctx context.Context) (Verdict, error) {
	in := j.in
	if _, err := os.Stat(in.Target); err != nil {
		j.stage("files", func() (string, error, bool) { return "", fmt.Errorf("no backup directory: %w", err), true })
		return j.v, nil
	}
	if in.Format == "tar" && len(globTar(in.Target, "base")) == 0 {
		j.stage("files", func() (string, error, bool) { return "", fmt.Errorf("no base.tar* in %s", in.Target), true })
		return j.v, nil
	}
	if !in.Stdout {
		j.stage("verifybackup", func() (string, error, bool) { return j.verify(in.Target, in.Format) })
	}
	if err := os.MkdirAll(in.Scratch, 0o755); err != nil {
		return j.v, fmt.Errorf("oracle scratch %s: %w", in.Scratch, err)
	}
	defer j.cleanupServer()
	ok := j.stage("restore", func() (string, error, bool) { return j.restoreCopy(ctx) })
	if !ok {
		if in.Stdout {
			j.skip("verifybackup", "restore failed")
		}
		j.skip("start", "restore failed")
		return j.finish(), nil
	}
	if in.Stdout {
		// The archive's own manifest, against the extracted copy.
		j.stage("verifybackup", func() (string, error, bool) { return j.verify(j.restore, "plain") })
	}
	if in.WALMethod == "none" {
		j.skip("start", "no WAL in the backup (wal_method none): cannot recover without an archive")
		return j.finish(), nil
	}
	if !j.stage("start", func() (string, error, bool) { return j.start(ctx) }) {
		return j.finish(), nil
	}
	j.stage("amcheck", func() (string, error, bool) { return j.amcheck(ctx) })
	j.stage("canary", func() (string, error, bool) { return j.canary(ctx) })
	j.stage("balance", func() (string, error, bool) { return j.balance(ctx) })
	return j.finish(), nil
}

func (j *judge) finish() Verdict {
	j.v.Complete = j.v.Reason == ""
	if j.v.Complete && j.in.WALMethod == "none" {
		// Without WAL nothing but the manifest check says anything.
		j.v.Complete = false
		j.v.Reason = "unverifiable: wal_method none"
	}
	return j.v
}

func (j *judge) cleanupServer() {
	if j.srv != nil {
		j.srv.Cleanup()
	}
}

// verify runs pg_verifybackup on the backup in dir (of format) where
// there is a manifest; a manifest that was asked for and is missing fails
// the stage.
func (j *judge) verify(dir, format string) (string, error, bool) {
	if _, err := os.Stat(filepath.Join(dir, "backup_manifest")); err != nil {
		if j.in.Manifest {
			tmp := ""
			if _, err := os.Stat(filepath.Join(dir, "backup_manifest.tmp")); err == nil {
				tmp = " (backup_manifest.tmp is there: the run never renamed it)"
			}
			return "", fmt.Errorf("no backup_manifest although the run was asked for one%s", tmp), true
		}
		return "no backup_manifest (--no-manifest)", nil, false
	}
	if format == "tar" && !verifiesTar(j.in.BinDir) {
		// Tar-format backups can be verified from PostgreSQL 18 on; the
		// server started on the extracted copy still judges them.
		return "pg_verifybackup of this version cannot read tar-format backups", nil, false
	}
	args := []string{filepath.Join(j.in.BinDir, "pg_verifybackup"), "--quiet"}
	if format == "tar" || j.in.WALMethod == "none" {
		// WAL inside pg_wal.tar cannot be parsed; without WAL there is
		// none to parse.
		args = append(args, "--no-parse-wal")
	}
	args = append(args, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := proc.Run(ctx, j.in.Acct, nil, args...)
	if err != nil {
		return "", fmt.Errorf("pg_verifybackup: %s", strings.TrimSpace(out)), true
	}
	return "", nil, true
}

// verifiesTar says whether the pg_verifybackup in binDir reads tar-format
// backups (PostgreSQL 18 and later: it has --format).
func verifiesTar(binDir string) bool {
	out, err := exec.Command(filepath.Join(binDir, "pg_verifybackup"), "--help").CombinedOutput()
	return err == nil && strings.Contains(string(out), "--format")
}

// globTar returns the archives of a name (base.tar, base.tar.gz, ...).
func globTar(dir, name string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, name+".tar*"))
	return m
}

// restoreCopy makes the copy the server will run on.
func (j *judge) restoreCopy(ctx context.Context) (string, error, bool) {
	in := j.in
	j.restore = filepath.Join(in.Scratch, "data")
	run := func(args ...string) error {
		_, err := proc.Run(ctx, in.Acct, nil, args...)
		return err
	}
	if err := in.Acct.Chown(in.Scratch); err != nil {
		return "", err, true
	}
	if in.Format == "plain" {
		if err := run("cp", "-a", in.Target, j.restore); err != nil {
			return "", fmt.Errorf("copy backup: %w", err), true
		}
		os.Remove(filepath.Join(j.restore, "backup_status"))
		// Tablespace symlinks point into the trial's mapping directories,
		// and pg_wal into a --waldir: copy each and point the link at the
		// copy, so that the server on the copy changes nothing of the
		// backup.
		links, _ := filepath.Glob(filepath.Join(j.restore, "pg_tblspc", "*"))
		if fi, err := os.Lstat(filepath.Join(j.restore, "pg_wal")); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			links = append(links, filepath.Join(j.restore, "pg_wal"))
		}
		for _, l := range links {
			dst, err := os.Readlink(l)
			if err != nil {
				continue
			}
			cp := filepath.Join(in.Scratch, "ts-"+filepath.Base(l))
			if err := run("cp", "-a", dst, cp); err != nil {
				return "", fmt.Errorf("copy tablespace %s: %w", dst, err), true
			}
			if err := os.Remove(l); err != nil {
				return "", err, true
			}
			if err := os.Symlink(cp, l); err != nil {
				return "", err, true
			}
			in.Acct.Chown(l)
		}
		return "copied", nil, true
	}
	// Tar format: base.tar*, pg_wal.tar*, <oid>.tar* for tablespaces.
	if err := run("mkdir", "-m", "0700", j.restore); err != nil {
		return "", err, true
	}
	base := globTar(in.Target, "base")
	if err := run("tar", "-xf", base[0], "-C", j.restore); err != nil {
		return "", fmt.Errorf("extract %s: %w", filepath.Base(base[0]), err), true
	}
	if w := globTar(in.Target, "pg_wal"); len(w) > 0 {
		if err := run("tar", "-xf", w[0], "-C", filepath.Join(j.restore, "pg_wal")); err != nil {
			return "", fmt.Errorf("extract %s: %w", filepath.Base(w[0]), err), true
		}
	}
	all, _ := filepath.Glob(filepath.Join(in.Target, "*.tar*"))
	var mapLines []string
	for _, a := range all {
		oid, _, _ := strings.Cut(filepath.Base(a), ".")
		if oid == "base" || oid == "pg_wal" {
			continue
		}
		dst := filepath.Join(in.Scratch, "ts-"+oid)
		if err := run("mkdir", "-m", "0700", dst); err != nil {
			return "", err, true
		}
		if err := run("tar", "-xf", a, "-C", dst); err != nil {
			return "", fmt.Errorf("extract %s: %w", filepath.Base(a), err), true
		}
		mapLines = append(mapLines, oid+" "+dst)
	}
	if len(mapLines) > 0 {
		sort.Strings(mapLines)
		tm := filepath.Join(j.restore, "tablespace_map")
		if err := in.Acct.WriteFile(tm, []byte(strings.Join(mapLines, "\n")+"\n"), 0o600); err != nil {
			return "", err, true
		}
	}
	return fmt.Sprintf("extracted %d archives", len(all)), nil, true
}

// start starts a server on the copy, unix socket only; pg_ctl -w returns
// once recovery reached consistency and the server accepts connections.
func (j *judge) start(ctx context.Context) (string, error, bool) {
	// The copy is thrown away after the checks, and nothing it is asked
	// depends on its own durability: without fsync the server skips the
	// sync of the whole data directory a crashed cluster's start begins
	// with, and the end-of-recovery checkpoint's syncs.
	j.srv = cluster.New(j.in.BinDir, j.in.Acct, j.in.Scratch, j.restore, cluster.WithTCP(false), cluster.WithSettings("fsync=off"))
	timeout := j.in.Timeout
	if timeout == 0 {
		timeout = 120 * time.Second
	}
	if err := j.srv.Start(ctx, timeout); err != nil {
		return "", err, true
	}
	return "", nil, true
}

func (j *judge) amcheck(ctx context.Context) (string, error, bool) {
	out, err := proc.Run(ctx, j.in.Acct, nil, filepath.Join(j.in.BinDir, "pg_amcheck"),
		"-h", j.srv.SocketDir, "-p", fmt.Sprint(j.srv.Port), "-U", "postgres",
		"--install-missing", "--all")
	if err != nil {
		return "", fmt.Errorf("pg_amcheck: %s", proc.Tail(strings.TrimSpace(out), 10)), true
	}
	return "", nil, true
}

// Range is an inclusive run of canary ids.
type Range struct{ Lo, Hi int64 }

// Ranges compresses sorted ids into runs.
func Ranges(ids []int64) []Range {
	var rs []Range
	for _, id := range ids {
		if n := len(rs); n > 0 && rs[n-1].Hi+1 == id {
			rs[n-1].Hi = id
			continue
		}
		rs = append(rs, Range{id, id})
	}
	return rs
}

// CheckCanary compares the canary ids found in a restored backup with the
// marks: every id up to before.Committed must be there (as one run from
// 1), and no id above after.Attempted may be. It returns a go-cmp diff of
// the wanted and found runs up to before.Committed, and a description of
// any other problem.
func CheckCanary(ids []int64, before, after workload.Mark) (diff string, problem string) {
	var upTo []int64
	var max int64
	for _, id := range ids {
		if id <= before.Committed {
			upTo = append(upTo, id)
		}
		if id > max {
			max = id
		}
	}
	want := []Range{{1, before.Committed}}
	got := Ranges(upTo)
	if d := cmp.Diff(want, got); d != "" {
		diff = d
		problem = fmt.Sprintf("canary rows committed before the backup began are missing (want ids 1-%d, found %d of them)", before.Committed, len(upTo))
	}
	if max > after.Attempted {
		p := fmt.Sprintf("canary id %d is newer than any attempted before the run ended (%d)", max, after.Attempted)
		if problem != "" {
			problem += "; " + p
		} else {
			problem = p
		}
	}
	return diff, problem
}

func (j *judge) canary(ctx context.Context) (string, error, bool) {
	conn, err := j.srv.Connect(ctx, cluster.Database)
	if err != nil {
		return "", err, true
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT id FROM "+cluster.CanaryTable+" ORDER BY id")
	if err != nil {
		return "", fmt.Errorf("read canary: %w", err), true
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return "", err, true
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read canary: %w", err), true
	}
	diff, problem := CheckCanary(ids, j.in.Before, j.in.After)
	j.v.CanaryDiff = diff
	if problem != "" {
		return "", fmt.Errorf("%s", problem), true
	}
	var max int64
	if len(ids) > 0 {
		max = ids[len(ids)-1]
	}
	return fmt.Sprintf("%d rows, max id %d (committed before start %d, attempted by end %d)", len(ids), max, j.in.Before.Committed, j.in.After.Attempted), nil, true
}

// balance checks pgbench's invariant: the sums of account, teller and
// branch balances and of history deltas are equal, as every transaction
// adds the same delta to each.
func (j *judge) balance(ctx context.Context) (string, error, bool) {
	conn, err := j.srv.Connect(ctx, cluster.Database)
	if err != nil {
		return "", err, true
	}
	defer conn.Close(context.Background())
	var a, t, b, h int64
	err = conn.QueryRow(ctx, `SELECT (SELECT coalesce(sum(abalance),0) FROM pgbench_accounts),
		(SELECT coalesce(sum(tbalance),0) FROM pgbench_tellers),
		(SELECT coalesce(sum(bbalance),0) FROM pgbench_branches),
		(SELECT coalesce(sum(delta),0) FROM pgbench_history)`).Scan(&a, &t, &b, &h)
	if err != nil {
		return "", fmt.Errorf("balance query: %w", err), true
	}
	if a != t || t != b || b != h {
		return "", fmt.Errorf("pgbench balances differ: accounts %d, tellers %d, branches %d, history %d", a, t, b, h), true
	}
	return fmt.Sprintf("balances %d", a), nil, true
}
