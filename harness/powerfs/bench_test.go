package powerfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// backupLike writes a tree shaped like a small plain-format base backup
// into dir: about 250 relation files of 8-40 kB in three databases, a
// 4 MB WAL segment written in 128 kB pieces, a manifest written as .tmp
// and renamed, and a status file; then syncs it as pg_basebackup does
// (every file, then every directory, then the renames with their
// directory fsyncs). It returns the bytes written.
func backupLike(dir string) (int64, error) {
	var total int64
	writeSync := func(p string, data []byte, chunk int) error {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		for off := 0; off < len(data); off += chunk {
			end := min(off+chunk, len(data))
			if _, err := f.Write(data[off:end]); err != nil {
				f.Close()
				return err
			}
		}
		total += int64(len(data))
		return f.Close()
	}
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var files, dirs []string
	dirs = append(dirs, dir)
	for _, sub := range []string{"base", "base/1", "base/4", "base/5", "global", "pg_wal", "pg_xact"} {
		p := filepath.Join(dir, sub)
		if err := os.Mkdir(p, 0o700); err != nil {
			return total, err
		}
		dirs = append(dirs, p)
	}
	for i := 0; i < 250; i++ {
		db := []string{"1", "4", "5"}[i%3]
		p := filepath.Join(dir, "base", db, fmt.Sprint(1000+i))
		if err := writeSync(p, buf[:8192*(1+i%5)], 8192); err != nil {
			return total, err
		}
		files = append(files, p)
	}
	wal := filepath.Join(dir, "pg_wal", "000000010000000000000002")
	if err := writeSync(wal, buf, 128<<10); err != nil {
		return total, err
	}
	files = append(files, wal)
	for _, p := range []string{"global/pg_control", "pg_xact/0000", "backup_label"} {
		if err := writeSync(filepath.Join(dir, p), buf[:8192], 8192); err != nil {
			return total, err
		}
		files = append(files, filepath.Join(dir, p))
	}
	for _, p := range append(files, dirs...) {
		if err := fsyncPath(p); err != nil {
			return total, err
		}
	}
	for _, name := range []string{"backup_manifest", "backup_status"} {
		tmp := filepath.Join(dir, name+".tmp")
		if err := writeSync(tmp, buf[:2000], 2000); err != nil {
			return total, err
		}
		if err := fsyncPath(tmp); err != nil {
			return total, err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return total, err
		}
		if err := fsyncPath(dir); err != nil {
			return total, err
		}
	}
	return total, nil
}

// BenchmarkPowerLossCycle measures whole power-loss cycles: make and
// mount a file system, write and sync a backup-like tree of about 9 MB,
// cut the power at a crash point in the finishing part (the 200th
// fsync), materialise the durable state into a directory, remove it,
// unmount. It reports cycles per minute.
func BenchmarkPowerLossCycle(b *testing.B) {
	var phases [4]time.Duration
	var bytes int64
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		dir := b.TempDir()
		fs := New()
		if err := fs.Mount(context.Background(), dir); err != nil {
			b.Fatalf("powerfs needs root and /dev/fuse: %v", err)
		}
		t1 := time.Now()
		fs.SetCrashPoints(CrashPoint{Op: OpFsync, N: 200})
		n, err := backupLike(dir)
		bytes += n
		select {
		case <-fs.Crashed():
		default:
			b.Fatalf("the crash point was not reached (%v)", err)
		}
		t2 := time.Now()
		out := filepath.Join(b.TempDir(), "durable")
		if err := fs.PowerLoss().Materialise(out); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(out)
		t3 := time.Now()
		if err := fs.Unmount(); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		for j, d := range []time.Duration{t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3)} {
			phases[j] += d
		}
	}
	per := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(60/per, "cycles/min")
	b.ReportMetric(float64(bytes)/float64(b.N)/1e6, "MB/cycle")
	n := time.Duration(b.N)
	b.Logf("per cycle: mount %v, write+sync until the crash point %v, materialise %v, unmount %v",
		phases[0]/n, phases[1]/n, phases[2]/n, phases[3]/n)
}

// BenchmarkFullSyncCycle is the same cycle without a crash point: the
// whole tree is written and synced, then the power is cut.
func BenchmarkFullSyncCycle(b *testing.B) {
	var opts []Option
	if os.Getenv("POWERFS_BENCH_TIMEOUTS") != "" {
		opts = append(opts, Timeouts(time.Second, time.Second))
	}
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		fs := New(opts...)
		if err := fs.Mount(context.Background(), dir); err != nil {
			b.Fatalf("powerfs needs root and /dev/fuse: %v", err)
		}
		if _, err := backupLike(dir); err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(b.TempDir(), "durable")
		if err := fs.PowerLoss().Materialise(out); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(out)
		if err := fs.Unmount(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(60/(b.Elapsed().Seconds()/float64(b.N)), "cycles/min")
}
