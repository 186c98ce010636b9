package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseDefaultsAndValues(t *testing.T) {
	s, err := Parse("x/tar-gz.json", []byte(`{
  "format": "tar",
  "wal_method": "fetch",
  "compression": "client-gzip:1",
  "manifest": false,
  "faults": ["kill", "term"],
  "trials": 7,
  "budget": "90s"
}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "tar-gz" || s.Format != "tar" || s.WALMethod != "fetch" || s.Manifest || !s.Sync || s.Trials != 7 || s.Budget != 90*time.Second {
		t.Fatalf("parsed %+v", s)
	}
	args := strings.Join(s.Args(), " ")
	for _, want := range []string{"--format=tar", "--wal-method=fetch", "--compress=client-gzip:1", "--no-manifest"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if strings.Contains(args, "--no-sync") {
		t.Errorf("args %q: sync is on by default", args)
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, text, want string
		line             int
	}{
		{"unknown key", "{\n  \"format\": \"plain\",\n  \"formatt\": \"tar\"\n}", "formatt: unknown key", 3},
		{"bad enum", "{\n  \"wal_method\": \"stream\",\n\n  \"format\": \"zip\"\n}", `format: "zip" is not one of plain, tar`, 4},
		{"wrong type", "{\"trials\": \"ten\"}", "trials: bad value", 1},
		{"fraction", "{\n\"trials\": 2.5}", "trials: bad value", 2},
		{"out of range", "{\n\"trials\": 0}", "out of range", 2},
		{"unknown plan", "{\n\n\"faults\": [\"kill\", \"nuke\"]}", `unknown fault plan "nuke"`, 3},
		{"empty plans", "{\"faults\": []}", "at least one", 1},
		{"duplicate", "{\"trials\": 1,\n\"trials\": 2}", "duplicate key", 2},
		{"bad budget", "{\"budget\": \"soon\"}", "not a positive duration", 1},
		{"null", "{\"format\": null}", "null is not a value", 1},
		{"not an object", "[1]", "one JSON object", 1},
		{"trailing", "{}\n{}", "trailing data", 2},
		{"syntax", "{\n\"format\": \"plain\",,\n}", "", 2},
		{"combination", "{\n\"format\": \"plain\", \"compression\": \"client-gzip\"}", "needs format tar", 1},
		{"wal child without stream", "{\"wal_method\": \"fetch\", \"faults\": [\"kill-wal-child\"]}", "needs wal_method stream", 1},
		{"bad name", "{\"name\": \"Has Space\"}", "names are lower case", 1},
		{"bad rate", "{\"max_rate\": \"fast\"}", "not a rate", 1},
		{"waldir with tar", "{\"format\": \"tar\", \"waldir\": true}", "waldir needs format plain", 1},
		{"a sync fault without sync", "{\"sync\": false, \"faults\": [\"powerloss\", \"eio-on-fsync\"]}", "with sync off, only powerloss, powerloss-at-nth-rename, powerloss-at-nth-write", 1},
		{"waldir on the power-loss layer", "{\"waldir\": true, \"faults\": [\"powerloss\"]}", "does not put a --waldir", 1},
		{"stdout with plain", "{\"stdout\": true}", "stdout needs format tar", 1},
		{"stdout streaming", "{\"stdout\": true, \"format\": \"tar\"}", "stdout needs wal_method fetch or none", 1},
		{"stdout with a tablespace", "{\"stdout\": true, \"format\": \"tar\", \"wal_method\": \"fetch\", \"tablespaces\": 1}", "stdout needs tablespaces 0", 1},
		{"stdout compressed", "{\"stdout\": true, \"format\": \"tar\", \"wal_method\": \"fetch\", \"compression\": \"client-gzip\"}", "stdout needs compression none", 1},
		{"stdout on the power-loss layer", "{\"stdout\": true, \"format\": \"tar\", \"wal_method\": \"fetch\", \"faults\": [\"powerloss\"]}", "does not go with stdout or readonly_file", 1},
		{"read-only file on the power-loss layer", "{\"readonly_file\": true, \"faults\": [\"eio-on-fsync\"]}", "does not go with stdout or readonly_file", 1},
		{"status directory without an interval", "{\"faults\": [\"status-dir-readonly\"]}", "needs status_interval", 1},
		{"interval out of range", "{\"status_interval\": 0}", "out of range 1-60", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("scenarios/bad.json", []byte(c.text))
			if err == nil {
				t.Fatalf("no error for %s", c.text)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *scenario.Error", err)
			}
			prefix := "scenarios/bad.json:" + itoa(c.line) + ":"
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestLoadPathsDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.json"), []byte(`{"name": "same"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"name": "same"}`), 0o644)
	if _, err := LoadPaths(dir); err == nil || !strings.Contains(err.Error(), "also defined") {
		t.Fatalf("want duplicate name error, got %v", err)
	}
	if _, err := LoadPaths(t.TempDir()); err == nil {
		t.Fatal("an empty directory must be an error")
	}
}

func TestRepositoryScenariosParse(t *testing.T) {
	scs, err := LoadPaths("../../scenarios/smoke")
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 4 {
		t.Fatalf("smoke set has %d scenarios", len(scs))
	}
	for _, dir := range []string{"power", "stall", "knownbad"} {
		if _, err := LoadPaths("../../scenarios/" + dir); err != nil {
			t.Error(err)
		}
	}
}

// TestStatusScenarioKeys: stdout, readonly_file and status_interval parse,
// the status file options come apart from the others, and Synced says
// which completed runs must say DURABLE: yes.
func TestStatusScenarioKeys(t *testing.T) {
	s, err := Parse("x/stdout.json", []byte(`{"format": "tar", "wal_method": "fetch", "stdout": true, "status_interval": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Stdout || s.StatusInterval != 2 || strings.Contains(strings.Join(s.Args(), " "), "status") {
		t.Fatalf("parsed %+v, args %v", s, s.Args())
	}
	if got := strings.Join(s.StatusArgs("/x/status/backup_status"), " "); got != "--status-file=/x/status/backup_status --status-file-refresh=2" {
		t.Errorf("status args %q", got)
	}
	if got := strings.Join(Defaults().StatusArgs("/f"), " "); got != "--status-file=/f" {
		t.Errorf("default status args %q", got)
	}
	for _, c := range []struct {
		text   string
		synced bool
	}{
		{`{}`, true},
		{`{"sync": false}`, false},
		{`{"format": "tar", "wal_method": "fetch", "stdout": true}`, false},
		{`{"readonly_file": true}`, true},
		{`{"readonly_file": true, "sync": false}`, false},
		{`{"readonly_file": true, "format": "tar"}`, true},
	} {
		s, err := Parse("x/s.json", []byte(c.text))
		if err != nil {
			t.Fatal(err)
		}
		if synced, why := s.Synced(); synced != c.synced || synced != (why == "") {
			t.Errorf("%s: synced %t (%q), want %t", c.text, synced, why, c.synced)
		}
	}
	if _, err := Parse("x/ro.json", []byte(`{"faults": ["status-dir-readonly", "term"], "status_interval": 1, "readonly_file": true}`)); err != nil {
		t.Error(err)
	}
}
