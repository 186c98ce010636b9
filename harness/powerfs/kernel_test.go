package powerfs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRealProgramsOnTheMount runs ordinary programs, as an unprivileged
// user, on the mount: the kernel's path (open, write, fsync through the
// page cache in write-through mode, directory fsync, rename) reaches the
// layer, and only what they synced survives.
func TestRealProgramsOnTheMount(t *testing.T) {
	const nobody = 65534
	fs, dir := mountFS(t, Owner(nobody, nobody))
	// The temporary directory above the mount must let the user through.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	// coreutils sync with arguments fsyncs each (files and directories).
	script := `set -e
cd "$1"
dd if=/dev/zero of=synced bs=4096 count=4 conv=fsync status=none
mkdir sub
printf completed > sub/status.tmp
mv sub/status.tmp sub/status
sync sub/status sub .
echo lost > unsynced
ln -s synced link
printf x >> synced
`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Not cmd.Dir: the child would chdir into the mount between fork and
	// exec, while the forking thread holds one of this process's Ps; a
	// garbage collection then waits for it, and the file system that
	// must answer the chdir never runs (see Mount).
	cmd := exec.CommandContext(ctx, "sh", "-c", script, "sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script as uid %d on the mount: %v\n%s", nobody, err, out)
	}
	// The page cache above the layer shows everything.
	if b, err := os.ReadFile(filepath.Join(dir, "unsynced")); err != nil || string(b) != "lost\n" {
		t.Fatalf("before power loss unsynced reads %q, %v", b, err)
	}
	st, err := os.Stat(filepath.Join(dir, "sub", "status"))
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != nobody {
		t.Fatalf("sub/status should belong to uid %d: %v", nobody, err)
	}

	s := fs.PowerLoss()
	wantFile(t, s, "synced", make([]byte, 16384))
	wantFile(t, s, "sub/status", []byte("completed"))
	wantGone(t, s, "sub/status.tmp", "renamed, directory synced")
	wantGone(t, s, "unsynced", "written after the last sync")
	wantGone(t, s, "link", "made after the last sync")

	var pids = map[uint32]bool{}
	var kinds []string
	for _, op := range fs.Log() {
		pids[op.PID] = true
		if op.Kind == OpFsync || op.Kind == OpFsyncDir || op.Kind == OpRename {
			kinds = append(kinds, op.Kind.String()+" "+op.Path)
		}
	}
	want := "fsync synced,rename sub/status.tmp,fsync sub/status,fsyncdir sub,fsyncdir ."
	if got := strings.Join(kinds, ","); got != want {
		t.Fatalf("synchronising operations seen by the layer:\n got %s\nwant %s", got, want)
	}
	if len(pids) < 3 {
		t.Fatalf("operations came from %d processes, want several (dd, mv, sync, sh)", len(pids))
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := s.Materialise(out); err != nil {
		t.Fatal(err)
	}
	st, err = os.Stat(filepath.Join(out, "sub", "status"))
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != nobody || st.Mode().Perm() != 0o644 {
		t.Fatalf("materialised sub/status keeps owner and mode: %v, %v", st, err)
	}
}

// TestUnmountWithOpenFile: unmounting while a process holds a file open
// cuts the power and detaches the mount, so the harness never hangs on a
// killed tree's leftovers.
func TestUnmountWithOpenFile(t *testing.T) {
	fs, dir := mountFS(t)
	f, err := os.Create(filepath.Join(dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan error, 1)
	go func() { done <- fs.Unmount() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("unmount with an open file: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("unmount with an open file hangs")
	}
	if !fs.Frozen() {
		t.Fatal("a forced unmount must cut the power")
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("a write after the forced unmount succeeded")
	}
}
