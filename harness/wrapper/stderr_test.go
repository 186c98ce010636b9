package wrapper

import (
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/status"
)

// A stock 15 run with -v -P, as pg_basebackup prints it to a pipe.
const stockOutput = `pg_basebackup: initiating base backup, waiting for checkpoint to complete
pg_basebackup: checkpoint completed
pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1
pg_basebackup: starting background WAL receiver
pg_basebackup: created temporary replication slot "pg_basebackup_1234"
     0/30110 kB (0%), 0/1 tablespace (/b/1/backup_label                )
 30120/30120 kB (100%), 0/1 tablespace (/b/1/global/pg_control      )
 30120/30120 kB (100%), 1/1 tablespace                                         
pg_basebackup: write-ahead log end point: 0/2000100
pg_basebackup: waiting for background process to finish streaming ...
pg_basebackup: syncing data to disk ...
`

func TestWatcher(t *testing.T) {
	var out strings.Builder
	w := NewWatcher(&out)
	w.Run(strings.NewReader(stockOutput))
	if out.String() != stockOutput {
		t.Errorf("the copy differs from the input")
	}
	o := w.Observed()
	want := Observed{Phase: status.PhaseSyncing, Started: true, StartLSN: 0x2000028, Timeline: 1,
		Ended: true, EndLSN: 0x2000100, BytesReceived: 30120 * 1024, BytesTotal: 30120 * 1024}
	if o != want {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}
	w.Run(strings.NewReader("pg_basebackup: error: could not open file \"/b/1/base/4/3600_fsm\": Input/output error\npg_basebackup: renaming backup_manifest.tmp to backup_manifest\n"))
	o = w.Observed()
	if o.SyncError != `could not open file "/b/1/base/4/3600_fsm": Input/output error` || o.Phase != status.PhaseFinishing {
		t.Errorf("sync error %q, phase %q", o.SyncError, o.Phase)
	}
}

func TestWatcherErrorBeforeSync(t *testing.T) {
	w := NewWatcher(&strings.Builder{})
	w.Run(strings.NewReader("pg_basebackup: error: could not connect to server: no\r\npg_basebackup: fatal: older form\n"))
	o := w.Observed()
	if o.LastError != "older form" || o.SyncError != "" || o.Phase != status.PhaseStarting {
		t.Errorf("%+v", o)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"a\nb\x1b[31m":     "a?b?[31m",
		"bidi\u202eevil":   "bidi?evil",
		"c1\u0085x\u2028y": "c1?x?y",
		"bad\xffutf8":      "bad?utf8",
		"ünïcode":          "ünïcode",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Clean(strings.Repeat("é", 1000)); len(got) > maxValue {
		t.Errorf("Clean kept %d bytes", len(got))
	}
}
