package wrapper

import (
	"slices"
	"testing"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		name string
		argv []string
		want Command
		dirs []string
	}{
		{"defaults", []string{"pg_basebackup", "-D", "b1"},
			Command{Target: "/w/b1", Format: "plain", WALMethod: "stream", Label: DefaultLabel, Sync: true}, []string{"/w/b1"}},
		{"grouped short options, attached values", []string{"pg_basebackup", "-vPD/b/x/", "-Ft", "-Xf", "-lnightly", "-N", "-n"},
			Command{Target: "/b/x", Format: "tar", WALMethod: "fetch", Label: "nightly", Verbose: true, Progress: true, NoClean: true}, []string{"/b/x"}},
		{"long options, abbreviated", []string{"pg_basebackup", "--pgdata=/b/1", "--form", "plain", "--wal-method=none", "--waldir", "/w/wal", "--label=a b", "--no-sync"},
			Command{Target: "/b/1", Format: "plain", WALMethod: "none", WALDir: "/w/wal", Label: "a b"}, []string{"/b/1", "/w/wal"}},
		{"tablespace mappings", []string{"pg_basebackup", "-D", "/b/1", "-T", `/ts/a\=b=/n/a\=b`, "--tablespace-mapping=/ts/c=rel"},
			Command{Target: "/b/1", Format: "plain", WALMethod: "stream", Label: DefaultLabel, Sync: true, Tablespaces: []string{"/n/a=b", "/w/rel"}}, []string{"/b/1", "/n/a=b", "/w/rel"}},
		{"stdout", []string{"pg_basebackup", "-D", "-", "-Ft", "-Xnone"},
			Command{Target: "-", Format: "tar", WALMethod: "none", Label: DefaultLabel, Sync: true}, nil},
		{"server target", []string{"pg_basebackup", "--target=server:/srv/b", "-Xfetch"},
			Command{ServerTarget: "server:/srv/b", WALMethod: "fetch", Label: DefaultLabel, Sync: true}, nil},
		{"option values are not options", []string{"pg_basebackup", "-d", "-D /x", "-D", "/b", "-U", "-v"},
			Command{Target: "/b", Format: "plain", WALMethod: "stream", Label: DefaultLabel, Sync: true}, []string{"/b"}},
		{"version", []string{"pg_basebackup", "--version"},
			Command{Format: "plain", WALMethod: "stream", Label: DefaultLabel, Sync: true, Informational: true}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCommand(c.argv, "/w")
			if err != nil {
				t.Fatal(err)
			}
			c.want.Program, c.want.Args = c.argv[0], c.argv[1:]
			if !equalCommand(got, &c.want) {
				t.Errorf("got  %+v\nwant %+v", *got, c.want)
			}
			if d := got.LocalDirs(); !slices.Equal(d, c.dirs) {
				t.Errorf("directories %q, want %q", d, c.dirs)
			}
		})
	}
}

func equalCommand(a, b *Command) bool {
	return a.Target == b.Target && a.Format == b.Format && a.ServerTarget == b.ServerTarget &&
		a.WALMethod == b.WALMethod && a.WALDir == b.WALDir && slices.Equal(a.Tablespaces, b.Tablespaces) &&
		a.Label == b.Label && a.Sync == b.Sync && a.NoClean == b.NoClean && a.Verbose == b.Verbose &&
		a.Progress == b.Progress && a.Informational == b.Informational
}

func TestRunArgsAddVerbose(t *testing.T) {
	c, _ := ParseCommand([]string{"pg_basebackup", "-D", "x"}, "/")
	if got := c.RunArgs(); !slices.Equal(got, []string{"--verbose", "-D", "x"}) {
		t.Errorf("%q", got)
	}
	c, _ = ParseCommand([]string{"pg_basebackup", "-vD", "x"}, "/")
	if got := c.RunArgs(); !slices.Equal(got, []string{"-vD", "x"}) {
		t.Errorf("%q", got)
	}
}
