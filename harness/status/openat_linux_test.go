//go:build linux

package status

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenWithoutOpenat2: where the kernel has no openat2 (before Linux
// 5.6, or a seccomp filter that does not know it), the status file is
// opened with openat and O_NOFOLLOW: a regular file reads, a symlink and
// a FIFO are refused.
func TestOpenWithoutOpenat2(t *testing.T) {
	for _, errno := range []syscall.Errno{unix.ENOSYS, unix.EPERM} {
		calls := 0
		openat2 = func(int, string, *unix.OpenHow) (int, error) { calls++; return -1, errno }
		t.Cleanup(func() { openat2 = unix.Openat2 })
		dir := t.TempDir()
		path := writeFile(t, dir, statusName, completedStatus().Encode())
		if s, err := ReadFile(path); err != nil || s.State != StateCompleted {
			t.Errorf("%v: regular file: %v %v", errno, s, err)
		}
		link := filepath.Join(dir, "link")
		if err := os.Symlink(statusName, link); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(link); !errors.Is(err, ErrSymlink) {
			t.Errorf("%v: symlink: %v, want ErrSymlink", errno, err)
		}
		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(fifo); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%v: FIFO: %v, want ErrNotRegular", errno, err)
		}
		if calls == 0 {
			t.Errorf("%v: openat2 was not tried", errno)
		}
	}
}
