package wrapper

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// faultFS is the OS's SyncFS that records each sync and fails the
// operations fail says to.
type faultFS struct {
	OSFS
	synced []string
	fail   func(op, path string) error
}

func (f *faultFS) ReadDir(path string) ([]fs.DirEntry, error) {
	if err := f.fail("readdir", path); err != nil {
		return nil, err
	}
	return f.OSFS.ReadDir(path)
}

func (f *faultFS) Sync(path string) error {
	if err := f.fail("sync", path); err != nil {
		return err
	}
	f.synced = append(f.synced, path)
	return f.OSFS.Sync(path)
}

// backupTree makes a plain backup's shape: a target with a pg_wal link
// to a --waldir and a pg_tblspc link to a tablespace directory.
func backupTree(t *testing.T) (root, target, wal, ts string) {
	t.Helper()
	root = t.TempDir()
	target, wal, ts = filepath.Join(root, "b1"), filepath.Join(root, "wal"), filepath.Join(root, "ts")
	for _, d := range []string{filepath.Join(target, "base", "1"), filepath.Join(target, "pg_tblspc"), wal, filepath.Join(ts, "PG_18_1")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(target, "base", "1", "123"), filepath.Join(wal, "000000010000000000000002"), filepath.Join(ts, "PG_18_1", "f")} {
		if err := os.WriteFile(f, []byte("x"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(wal, filepath.Join(target, "pg_wal")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts, filepath.Join(target, "pg_tblspc", "16384")); err != nil {
		t.Fatal(err)
	}
	return root, target, wal, ts
}

func TestSyncPassFollowsLinks(t *testing.T) {
	root, target, wal, ts := backupTree(t)
	f := &faultFS{fail: func(string, string) error { return nil }}
	if err := SyncPass(f, []string{target}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		filepath.Join(target, "base", "1", "123"), filepath.Join(target, "base", "1"), target,
		filepath.Join(wal, "000000010000000000000002"), wal,
		filepath.Join(ts, "PG_18_1", "f"), ts, root,
	} {
		if !slices.Contains(f.synced, p) {
			t.Errorf("%s not synced", p)
		}
	}
	// A directory after its entries.
	if slices.Index(f.synced, target) < slices.Index(f.synced, filepath.Join(target, "base", "1", "123")) {
		t.Errorf("target synced before its files: %q", f.synced)
	}
}

func TestSyncPassFailures(t *testing.T) {
	for _, c := range []struct{ op, base string }{
		{"sync", "123"}, {"sync", "000000010000000000000002"}, {"sync", "b1"}, {"readdir", "1"}, {"readdir", "wal"},
	} {
		_, target, _, _ := backupTree(t)
		f := &faultFS{fail: func(op, path string) error {
			if op == c.op && filepath.Base(path) == c.base {
				return &fs.PathError{Op: "open", Path: path, Err: syscall.EIO}
			}
			return nil
		}}
		if err := SyncPass(f, []string{target}); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s of %s failing with EIO: SyncPass returned %v", c.op, c.base, err)
		}
	}
}

func TestReadBackupInfoTar(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	control := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, 42), 1300)
	for _, m := range []struct {
		name string
		data []byte
	}{{"backup_label", []byte("START WAL LOCATION: 0/2000028\n")}, {"global/pg_control", control}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o600, Size: int64(len(m.data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.data)
	}
	tw.Close()
	if err := os.WriteFile(filepath.Join(dir, "base.tar"), b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := ReadBackupInfo(dir, "tar")
	if err != nil || !info.HaveSystemID || info.SystemID != 42 {
		t.Fatalf("%+v %v", info, err)
	}
}

func TestReadBackupInfoManifest(t *testing.T) {
	dir := t.TempDir()
	m := `{"PostgreSQL-Backup-Manifest-Version": 2, "System-Identifier": 7441234567890123456, "Files": [],
"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/3000000"}, {"Timeline": 2, "Start-LSN": "0/3000000", "End-LSN": "0/3000100"}]}`
	if err := os.WriteFile(filepath.Join(dir, "backup_manifest"), []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := ReadBackupInfo(dir, "plain")
	want := BackupInfo{SystemID: 7441234567890123456, HaveSystemID: true, Started: true, StartLSN: 0x2000028, Timeline: 1, Ended: true, EndLSN: 0x3000100}
	if err != nil || info != want {
		t.Fatalf("got %+v %v, want %+v", info, err, want)
	}
}
