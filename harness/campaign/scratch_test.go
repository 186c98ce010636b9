package campaign

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/scenario"
)

func TestMakeScratch(t *testing.T) {
	sc := []scenario.Scenario{{Scale: 1}}
	dir, why, err := MakeScratch("pgbb-scratch-test-", sc, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("scratch %s not a directory: %v", dir, err)
	}
	inMemory := filepath.Dir(dir) == MemoryDir
	if inMemory != strings.HasPrefix(why, "in memory") {
		t.Errorf("scratch %s, but the reason says %q", dir, why)
	}
	t.Logf("scratch %s (%s)", dir, why)

	// A campaign too big for any memory file system goes to disk, and
	// says why.
	huge := []scenario.Scenario{{Scale: 1 << 20}}
	dir2, why2, err := MakeScratch("pgbb-scratch-test-", huge, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir2)
	if filepath.Dir(dir2) == MemoryDir || !strings.HasPrefix(why2, "on disk (") {
		t.Errorf("huge campaign: scratch %s (%s), want on disk with a reason", dir2, why2)
	}
}
