package osuser

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestWriteFileMode: WriteFile gives the file the mode asked for, whatever
// the umask, and without a switch leaves its owner alone.
func TestWriteFileMode(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	a := Account{Name: "me", UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	p := filepath.Join(t.TempDir(), "f")
	if err := a.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", st.Mode().Perm())
	}
	if a.Credential() != nil {
		t.Fatal("a credential for an account without a switch")
	}
}

// TestEnv: the environment names the account and keeps what is added.
func TestEnv(t *testing.T) {
	env := Account{Name: "pgbb", Home: "/nonexistent"}.Env("TZ=Asia/Kathmandu")
	for _, want := range []string{"USER=pgbb", "LOGNAME=pgbb", "HOME=" + os.TempDir(), "TZ=Asia/Kathmandu"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %q", env, want)
		}
	}
}
