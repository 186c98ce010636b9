package status

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// writeFile writes data to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// statusName is the name the tests give a status file: pg_basebackup
// writes one only where --status-file says.
const statusName = "b1.status"

func TestReadFile(t *testing.T) {
	path := writeFile(t, t.TempDir(), statusName, completedStatus().Encode())
	s, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != StateCompleted {
		t.Errorf("state %v", s.State)
	}
}

func TestReadFileMissing(t *testing.T) {
	dir := t.TempDir()
	// The temporary files alone are no status file.
	writeFile(t, dir, filepath.Base(TempPath(statusName, 1234)), completedStatus().Encode())
	writeFile(t, dir, filepath.Base(LegacyTempPath(statusName)), completedStatus().Encode())
	_, err := ReadFile(filepath.Join(dir, statusName))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want fs.ErrNotExist", err)
	}
}

// TestTempPath: the writer's temporary file is FILE.PID.tmp; earlier
// writers' was FILE.tmp. ParseTempPath knows both, and nothing else.
func TestTempPath(t *testing.T) {
	if got := TempPath("/s/b1.status", 4321); got != "/s/b1.status.4321.tmp" {
		t.Errorf("TempPath %q", got)
	}
	if got := LegacyTempPath("/s/b1.status"); got != "/s/b1.status.tmp" || TempFileName != FileName+".tmp" {
		t.Errorf("LegacyTempPath %q, TempFileName %q", got, TempFileName)
	}
	for p, want := range map[string]int{
		"/s/b1.status.4321.tmp": 4321,
		"/s/b1.status.1.tmp":    1,
		"/s/b1.status.tmp":      0,
	} {
		if pid, ok := ParseTempPath("/s/b1.status", p); !ok || pid != want {
			t.Errorf("ParseTempPath(%q) = %d, %t; want %d, true", p, pid, ok, want)
		}
	}
	for _, p := range []string{"/s/b1.status", "/s/b1.status.", "/s/b1.status..tmp", "/s/b1.status.0.tmp", "/s/b1.status.012.tmp",
		"/s/b1.status.-1.tmp", "/s/b1.status.+1.tmp", "/s/b1.status.12a.tmp", "/s/b1.status.12.tmp.tmp", "/s/b1.statusx.12.tmp",
		"/s/b1.status.99999999999999999999.tmp", "/s/b2.status.12.tmp", "/t/b1.status.12.tmp", "/s/b1.status.12.tmpx"} {
		if pid, ok := ParseTempPath("/s/b1.status", p); ok {
			t.Errorf("ParseTempPath(%q) = %d, true; want false", p, pid)
		}
	}
	if pid, ok := ParseTempPath("b1.status", "b1.status.77.tmp"); !ok || pid != 77 {
		t.Errorf("base names: %d %t", pid, ok)
	}
	dir := t.TempDir()
	for _, name := range []string{"b1.status", "b1.status.77.tmp", "b1.status.tmp", "b1.status.x.tmp", "b2.status.5.tmp", "b1.status.5.tmp"} {
		writeFile(t, dir, name, nil)
	}
	got, err := TempFiles(filepath.Join(dir, "b1.status"))
	want := []string{filepath.Join(dir, "b1.status.5.tmp"), filepath.Join(dir, "b1.status.77.tmp"), filepath.Join(dir, "b1.status.tmp")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("TempFiles %q %v, want %q", got, err, want)
	}
	if _, err := TempFiles(filepath.Join(dir, "nowhere", "b1.status")); err == nil {
		t.Error("TempFiles in a missing directory: no error")
	}
}

// TestReadDirDeprecated: the deprecated ReadDir still reads dir/FileName.
func TestReadDirDeprecated(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, FileName, completedStatus().Encode())
	if s, err := ReadDir(dir); err != nil || s.State != StateCompleted {
		t.Fatalf("%v %v", s, err)
	}
}

func TestReadFileParseErrorHasPath(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "elsewhere_status", []byte("BACKUP STATUS FORMAT: 2\n"))
	_, err := ReadFile(path)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Path != path || pe.Line != 1 {
		t.Fatalf("error %v, want a ParseError at %s:1", err, path)
	}
	// The version is shown to the file's owner, unless root.
	want := path + ":1: unsupported format version 2 (this reader knows 1)"
	if os.Geteuid() == 0 {
		want = path + ":1: unsupported format version [not shown] (this reader knows 1)"
	}
	if err.Error() != want || pe.Withheld != (os.Geteuid() == 0) {
		t.Errorf("error text %q (withheld %v), want %q", err, pe.Withheld, want)
	}
}

// TestSymlinks: a status file that is a symlink is refused, wherever it
// leads: the reader opens the file named, never what a link leads to
// (it used to follow one that stayed in its directory, by resolving the
// link itself and opening the result by path).
func TestSymlinks(t *testing.T) {
	outside := t.TempDir()
	good := writeFile(t, outside, "status", completedStatus().Encode())
	tests := []struct {
		name   string
		target func(dir string) string // what the status file, a symlink, points to
	}{
		{"to a file in the same directory", func(dir string) string {
			writeFile(t, dir, "real_status", completedStatus().Encode())
			return "real_status"
		}},
		{"to a file in a subdirectory", func(dir string) string {
			writeFile(t, dir, "sub/status", completedStatus().Encode())
			return "sub/status"
		}},
		{"absolute, to a file in the same directory", func(dir string) string {
			return writeFile(t, dir, "real_status", completedStatus().Encode())
		}},
		{"to a file in another directory", func(string) string { return good }},
		{"relative, out of the directory", func(dir string) string {
			rel, err := filepath.Rel(dir, good)
			if err != nil {
				t.Fatal(err)
			}
			return rel
		}},
		{"through a symlink in the directory that leads out", func(dir string) string {
			if err := os.Symlink(outside, filepath.Join(dir, "sub")); err != nil {
				t.Fatal(err)
			}
			return "sub/status"
		}},
		{"dangling", func(string) string { return "nonexistent" }},
		{"to itself", func(string) string { return statusName }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, statusName)
			if err := os.Symlink(tc.target(dir), path); err != nil {
				t.Fatal(err)
			}
			s, err := ReadFile(path)
			switch {
			case err == nil:
				t.Fatalf("followed the symlink: state %v", s.State)
			case !errors.Is(err, ErrSymlink) || !errors.Is(err, ErrSymlinkOutside):
				t.Fatalf("error %v, want ErrSymlink", err)
			case errors.Is(err, fs.ErrNotExist):
				t.Fatalf("error %v is taken for a missing status file", err)
			case !strings.Contains(err.Error(), path+": status file is a symlink"):
				t.Fatalf("error %q does not say which file is a symlink", err)
			}
			if r := Check(path); r.Verdict != NotComplete || r.ExitCode != 1 || r.Final {
				t.Errorf("Check: %v exit %d final %v", r.Verdict, r.ExitCode, r.Final)
			}
		})
	}
}

// TestStatusDirectoryIsSymlink: the directory the status file is in may
// be reached through a symlink (a "latest" link); the file itself may not
// be one.
func TestStatusDirectoryIsSymlink(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "s1/"+statusName, completedStatus().Encode())
	if err := os.Symlink("s1", filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(statusName, filepath.Join(root, "s1", "alias")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(filepath.Join(root, "latest", statusName)); err != nil {
		t.Errorf("through a linked directory: %v", err)
	}
	if _, err := ReadFile(filepath.Join(root, "latest", "alias")); !errors.Is(err, ErrSymlink) {
		t.Errorf("a link in a linked directory: %v, want ErrSymlink", err)
	}
}

// TestReadFileNamesNoEntry: a path whose last component is not a name
// (".", "..", a trailing slash) is no status file.
func TestReadFileNamesNoEntry(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir + "/", dir + "/.", dir + "/..", "."} {
		if _, err := ReadFile(p); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%q: %v, want ErrNotRegular", p, err)
		}
	}
}

func TestSizeLimit(t *testing.T) {
	dir := t.TempDir()
	s := inProgressStatus(true)
	// Just at the limit: a valid file still parses.
	s.Label = ""
	s.Label = strings.Repeat("x", MaxSize-len(s.Encode()))
	if n := len(s.Encode()); n != MaxSize {
		t.Fatalf("test bug: %d bytes", n)
	}
	writeFile(t, dir, statusName, s.Encode())
	if _, err := ReadFile(filepath.Join(dir, statusName)); err != nil {
		t.Fatalf("file of %d bytes: %v", MaxSize, err)
	}
	// One byte more is refused before parsing.
	s.Label += "x"
	writeFile(t, dir, statusName, s.Encode())
	if _, err := ReadFile(filepath.Join(dir, statusName)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("file of %d bytes: error %v, want ErrTooLarge", MaxSize+1, err)
	}
	// A huge sparse file is refused without reading it.
	f, err := os.Create(filepath.Join(dir, statusName))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("cannot make a sparse file: %v", err)
	}
	f.Close()
	if _, err := ReadFile(filepath.Join(dir, statusName)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("sparse file: error %v, want ErrTooLarge", err)
	}
}

func TestNotRegular(t *testing.T) {
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, statusName), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(filepath.Join(dir, statusName)); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("error %v, want ErrNotRegular", err)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		dir := t.TempDir()
		if err := syscall.Mkfifo(filepath.Join(dir, statusName), 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		// Must not block waiting for a writer.
		if _, err := ReadFile(filepath.Join(dir, statusName)); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("error %v, want ErrNotRegular", err)
		}
	})
}

func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	dir := t.TempDir()
	path := writeFile(t, dir, statusName, completedStatus().Encode())
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(filepath.Join(dir, statusName)); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want permission denied", err)
	}
}
