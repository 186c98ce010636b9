package fault

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pgbb/pgbb/harness/status"
)

// TestRemovalNamesTheStatusFile: the removal is asked about the status
// file itself, in process and as pgbb-status's arguments.
func TestRemovalNamesTheStatusFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "status", "backup_status")
	if got := RemoveIfDeadArgs(file); !slices.Equal(got, []string{"--remove-if-dead", file}) {
		t.Errorf("args %v", got)
	}
	// Whatever the removal answers, a file that is no run's status file
	// is never removed.
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("not a status file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rm := RemoveIfDead(context.Background(), file, true)
	if rm.ExitCode == status.ExitRemoved {
		t.Fatalf("removal of an invalid status file: %+v", rm)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatal(err)
	}
}
