package trial

import (
	"reflect"
	"testing"

	"github.com/pgbb/pgbb/harness/scenario"
)

// TestWrapArgs: the wrapper variant's command line is pgbb-run's own
// status options (the scenario's --status-file-refresh included), "--",
// then pg_basebackup's command line without any status option.
func TestWrapArgs(t *testing.T) {
	pgbb := []string{"/pg/bin/pg_basebackup", "-D", "/t/target", "-p", "5432", "--verbose"}
	got := wrapArgs("/bin/pgbb-run", "/t/status/backup_status", scenario.Scenario{StatusInterval: 2}, pgbb)
	want := []string{"/bin/pgbb-run", "--status-file=/t/status/backup_status", "--status-file-refresh=2", "--",
		"/pg/bin/pg_basebackup", "-D", "/t/target", "-p", "5432", "--verbose"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	got = wrapArgs("/bin/pgbb-run", "/t/s", scenario.Scenario{}, pgbb)
	if want := append([]string{"/bin/pgbb-run", "--status-file=/t/s", "--"}, pgbb...); !reflect.DeepEqual(got, want) {
		t.Errorf("without an interval: got %q, want %q", got, want)
	}
	// The rerun's server-down command finds -D and -p after the "--".
	down, err := serverDownArgs(got, "/t/fresh")
	if err != nil || down[5] != "/t/fresh" || down[0] != "/bin/pgbb-run" {
		t.Errorf("serverDownArgs: %q, %v", down, err)
	}
}
