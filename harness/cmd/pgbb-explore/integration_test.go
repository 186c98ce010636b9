package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationExplore runs the explorer on patched 18 (one clean run of
// a plain backup with a tablespace on the power-loss layer, then every
// crash state of its finishing part with K=4; for the real series also its
// failing runs, from their failure on): the real series breaks no
// rule, and two known-bad variants whose mistake is in the order or the
// durability of file-system operations are caught from one clean run
// each. Opt in with PGBB_INTEGRATION=1 (make integration); it needs root
// and /dev/fuse, and fails without them then.
func TestIntegrationExplore(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") != "1" {
		t.Skip("set PGBB_INTEGRATION=1 to run the explorer on real builds")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("the explorer's clean run mounts the power-loss layer and needs root (euid %d)", os.Geteuid())
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("the power-loss layer needs /dev/fuse: %v", err)
	}
	const root = "../../.."
	plain := filepath.Join(root, "scenarios/smoke/powerloss.json")
	for _, c := range []struct {
		variant string
		want    int
		rule    string
	}{
		{"", 0, ""},
		{"no-fsync-tmp", 1, "status-not-torn"},
		{"status-before-sync", 1, "completed-is-complete"},
	} {
		t.Run("series="+c.variant, func(t *testing.T) {
			args := []string{"-scenarios", plain, "-k", "4", "-oracle", "1", "-out", t.TempDir()}
			if c.variant != "" {
				// The variants' mistakes are in the clean run's finishing
				// part; the real series also makes its failing runs.
				args = append(args, "-failing", "none",
					"-patches", filepath.Join(root, "patches/pg18")+":"+filepath.Join(root, "harness/testdata/knownbad/pg18", c.variant))
			}
			var out, log bytes.Buffer
			start := time.Now()
			code, err := run(context.Background(), args, &out, &log)
			t.Logf("exit %d in %s:\n%s", code, time.Since(start).Round(time.Second), out.String())
			if err != nil {
				t.Fatalf("%v\n%s", err, log.String())
			}
			if code != c.want || (c.rule != "" && !strings.Contains(out.String(), "VIOLATION "+c.rule)) {
				t.Fatalf("exit %d, want %d with a %q violation", code, c.want, c.rule)
			}
		})
	}
}
