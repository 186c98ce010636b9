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

// TestIntegrationTaskflow runs scenarios/taskflow/short.json, the seed's
// task flow in small, with real stock and patched 18.6 builds: every
// patched flow must keep its promises (exit 0), and the table must set
// stock and patched side by side. Opt in with PGBB_INTEGRATION=1 (make
// integration).
func TestIntegrationTaskflow(t *testing.T) {
	if os.Getenv("PGBB_INTEGRATION") != "1" {
		t.Skip("set PGBB_INTEGRATION=1 to run the task flows on real builds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-scenarios", filepath.Join("..", "..", "..", "scenarios", "taskflow", "short.json")}, &stdout, &stderr)
	t.Logf("table:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("pgbb-taskflow exit %d\n%s", code, stderr.String())
	}
	for _, want := range []string{"task flows of short", "stock-leave", "patched-kill", "patched-stall", "stock: ", "patched: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the table lacks %q", want)
		}
	}
}

// TestUsage: a bad command line or scenario is exit 64, with the file
// named.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"scale": 1, "deadline": "5s", "max_rate": "1M", "policies": ["nohup"]}`), 0o644)
	for _, args := range [][]string{{"-nosuchflag"}, {"-scenarios", filepath.Join(dir, "missing.json")}, {"-scenarios", bad}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 64 {
			t.Errorf("%v: exit %d, want 64 (%s)", args, code, stderr.String())
		}
		if args[0] == "-scenarios" && args[1] == bad && !strings.Contains(stderr.String(), `bad.json: policy "nohup"`) {
			t.Errorf("the error does not name the file and the policy: %s", stderr.String())
		}
	}
}
