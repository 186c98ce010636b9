package wrapper

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultLabel is the backup label pg_basebackup uses without -l.
const DefaultLabel = "pg_basebackup base backup"

// Command is what a pg_basebackup command line asks for, as far as the
// status file is concerned.
type Command struct {
	// Program is the pg_basebackup to run (the first word).
	Program string
	// Args are the arguments after it.
	Args []string
	// Target is the -D/--pgdata directory, absolute and clean; "-" for
	// standard output; empty if none was given.
	Target string
	// Format is "plain" or "tar"; empty with ServerTarget.
	Format string
	// ServerTarget is the --target of a server-side backup.
	ServerTarget string
	// WALMethod is "stream", "fetch" or "none".
	WALMethod string
	// WALDir is the --waldir directory, absolute and clean.
	WALDir string
	// Tablespaces are the new directories of -T/--tablespace-mapping.
	Tablespaces []string
	// Label is the -l/--label, or DefaultLabel.
	Label string
	// Sync is false with -N/--no-sync.
	Sync bool
	// NoClean is -n/--no-clean.
	NoClean bool
	// Verbose is -v/--verbose; Progress is -P/--progress.
	Verbose, Progress bool
	// Informational is --help, -?, --version or -V: no backup is taken.
	Informational bool
}

// option is one pg_basebackup option: its short letter (0 if none), long
// name and whether it takes an argument.
type option struct {
	short byte
	long  string
	arg   bool
}

// options are pg_basebackup's options, PostgreSQL 13 to 18 (the union).
func options() []option {
	return []option{
		{'?', "help", false}, {'V', "version", false}, {'D', "pgdata", true},
		{'F', "format", true}, {'i', "incremental", true}, {'c', "checkpoint", true},
		{'C', "create-slot", false}, {'r', "max-rate", true}, {'R', "write-recovery-conf", false},
		{'S', "slot", true}, {'t', "target", true}, {'T', "tablespace-mapping", true},
		{'X', "wal-method", true}, {'z', "gzip", false}, {'Z', "compress", true},
		{'l', "label", true}, {'n', "no-clean", false}, {'N', "no-sync", false},
		{'d', "dbname", true}, {'h', "host", true}, {'p', "port", true},
		{'U', "username", true}, {'w', "no-password", false}, {'W', "password", false},
		{'s', "status-interval", true}, {'v', "verbose", false}, {'P', "progress", false},
		{0, "waldir", true}, {0, "no-slot", false}, {0, "no-verify-checksums", false},
		{0, "no-estimate-size", false}, {0, "no-manifest", false},
		{0, "manifest-force-encode", false}, {0, "manifest-checksums", true},
		{0, "sync-method", true},
	}
}

// ParseCommand reads a pg_basebackup command line (argv[0] first) as
// getopt_long does: short options may be grouped (-vP) and carry their
// argument attached (-D/x) or in the next word, long options may be
// abbreviated and carry it after '=' or in the next word, "--" ends the
// options. Relative directories are made absolute against cwd. What
// pg_basebackup itself would refuse is left for it to refuse.
func ParseCommand(argv []string, cwd string) (*Command, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("no pg_basebackup command given")
	}
	c := &Command{Program: argv[0], Args: argv[1:], Format: "plain", WALMethod: "stream", Label: DefaultLabel, Sync: true}
	words := argv[1:]
	for i := 0; i < len(words); i++ {
		w := words[i]
		var opts []found
		switch {
		case w == "--":
			i = len(words)
			continue
		case strings.HasPrefix(w, "--"):
			opts = parseLong(w[2:], words[i+1:])
		case strings.HasPrefix(w, "-") && w != "-":
			opts = parseShort(w[1:], words[i+1:])
		default:
			continue // an operand: pg_basebackup refuses it itself
		}
		for _, o := range opts {
			i += o.consumed
			c.apply(o.opt, o.value, cwd)
		}
	}
	if c.ServerTarget != "" {
		c.Format = ""
	}
	return c, nil
}

// found is an option found in a word, with its value and how many of the
// following words it took.
type found struct {
	opt      option
	value    string
	consumed int
}

// parseLong reads a long option (without "--"): name or name=value, an
// unambiguous prefix of a name allowed.
func parseLong(w string, rest []string) []found {
	name, value, hasValue := strings.Cut(w, "=")
	var match []option
	for _, o := range options() {
		if o.long == name {
			match = []option{o}
			break
		}
		if strings.HasPrefix(o.long, name) {
			match = append(match, o)
		}
	}
	if len(match) != 1 {
		return nil // unknown or ambiguous: pg_basebackup refuses it
	}
	o := match[0]
	switch {
	case !o.arg:
		return []found{{opt: o}}
	case hasValue:
		return []found{{opt: o, value: value}}
	case len(rest) == 0:
		return nil // a missing argument: pg_basebackup refuses it
	}
	return []found{{opt: o, value: rest[0], consumed: 1}}
}

// parseShort reads a group of short options (without "-").
func parseShort(w string, rest []string) []found {
	var out []found
	for j := 0; j < len(w); j++ {
		o, ok := shortOption(w[j])
		if !ok {
			return out // pg_basebackup refuses it
		}
		switch {
		case !o.arg:
			out = append(out, found{opt: o})
			continue
		case j+1 < len(w):
			return append(out, found{opt: o, value: w[j+1:]})
		case len(rest) > 0:
			return append(out, found{opt: o, value: rest[0], consumed: 1})
		}
		return out
	}
	return out
}

func shortOption(b byte) (option, bool) {
	for _, o := range options() {
		if o.short == b && b != 0 {
			return o, true
		}
	}
	return option{}, false
}

// apply records what option o with value means for the status file.
func (c *Command) apply(o option, value, cwd string) {
	switch o.long {
	case "help", "version":
		c.Informational = true
	case "pgdata":
		c.Target = absDir(value, cwd)
	case "format":
		switch value {
		case "p", "plain":
			c.Format = "plain"
		case "t", "tar":
			c.Format = "tar"
		}
	case "target":
		c.ServerTarget = value
	case "wal-method":
		switch value {
		case "n", "none":
			c.WALMethod = "none"
		case "f", "fetch":
			c.WALMethod = "fetch"
		case "s", "stream":
			c.WALMethod = "stream"
		}
	case "waldir":
		c.WALDir = absDir(value, cwd)
	case "tablespace-mapping":
		if _, dir, ok := splitMapping(value); ok {
			c.Tablespaces = append(c.Tablespaces, absDir(dir, cwd))
		}
	case "label":
		c.Label = value
	case "no-sync":
		c.Sync = false
	case "no-clean":
		c.NoClean = true
	case "verbose":
		c.Verbose = true
	case "progress":
		c.Progress = true
	}
}

// absDir makes a directory of the command line absolute and clean; "-"
// (standard output) stays as it is.
func absDir(p, cwd string) string {
	if p == "-" || p == "" {
		return p
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(cwd, p)
	}
	return filepath.Clean(p)
}

// splitMapping splits OLDDIR=NEWDIR at the first '=' not escaped by a
// backslash, and unescapes "\=" in both, as pg_basebackup does.
func splitMapping(v string) (oldDir, newDir string, ok bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && v[i+1] == '=' {
			i++
			continue
		}
		if v[i] == '=' {
			un := strings.NewReplacer(`\=`, "=")
			return un.Replace(v[:i]), un.Replace(v[i+1:]), true
		}
	}
	return "", "", false
}

// ToStdout says the backup goes to standard output (-D -).
func (c *Command) ToStdout() bool { return c.Target == "-" }

// LocalDirs are the directories the backup writes on this machine, in
// the order of the status file's DIRECTORY lines: the target, --waldir,
// the tablespace directories. None with -D - or --target.
func (c *Command) LocalDirs() []string {
	if c.Target == "" || c.ToStdout() || c.ServerTarget != "" {
		return nil
	}
	dirs := []string{c.Target}
	if c.WALDir != "" {
		dirs = append(dirs, c.WALDir)
	}
	if c.Format == "plain" {
		dirs = append(dirs, c.Tablespaces...)
	}
	return dirs
}

// RunArgs are the arguments pg_basebackup runs with: the given ones,
// with --verbose first unless given, so that its standard error names
// the phases, the WAL start and end points and the sync.
func (c *Command) RunArgs() []string {
	if c.Verbose {
		return c.Args
	}
	return append([]string{"--verbose"}, c.Args...)
}
