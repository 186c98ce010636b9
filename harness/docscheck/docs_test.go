package docscheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/status"
)

// repoRoot is the repository, two levels up from this package.
const repoRoot = "../.."

// guides are the documents checked, relative to the repository: the
// README, every page under docs/, and the guides of the parts.
func guides(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"README.md", "patches/README.md", "scenarios/README.md", "harness/testdata/knownbad/README.md"}
	for _, d := range docs {
		rel, _ := filepath.Rel(repoRoot, d)
		paths = append(paths, rel)
	}
	return paths
}

var (
	inlineCode = regexp.MustCompile("`([^`\n]+)`")
	fence      = regexp.MustCompile("^\\s*```")
)

// codeOf returns the code of a Markdown text, one fragment per line: the
// inline code spans, the lines of fenced blocks and the indented lines.
func codeOf(text string) []string {
	var out []string
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case fence.MatchString(line):
			inFence = !inFence
		case inFence || strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "\t"):
			out = append(out, strings.TrimSpace(line))
		default:
			for _, m := range inlineCode.FindAllStringSubmatch(line, -1) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// commands are the project's commands whose flags the documents name,
// each with its package.
var commands = map[string]string{
	"pgbb-status":   "./harness/cmd/pgbb-status",
	"pgbb-crash":    "./harness/cmd/pgbb-crash",
	"pgbb-explore":  "./harness/cmd/pgbb-explore",
	"pgbb-taskflow": "./harness/cmd/pgbb-taskflow",
	"pgbb-build":    "./harness/cmd/pgbb-build",
	"pgbb-run":      "./harness/cmd/pgbb-run",
}

// flagLine is a line of flag.PrintDefaults: the flag's name.
var flagLine = regexp.MustCompile(`^\s+-([a-zA-Z0-9][a-zA-Z0-9-]*)`)

// flagsOf builds the command at pkg and returns the flags its -h lists.
func flagsOf(t *testing.T, name, pkg string) map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	var help bytes.Buffer
	cmd := exec.Command(bin, "-h")
	cmd.Stdout, cmd.Stderr = &help, &help
	_ = cmd.Run() // -h exits non-zero
	flags := map[string]bool{"h": true, "help": true}
	for _, line := range strings.Split(help.String(), "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			flags[m[1]] = true
		}
	}
	if len(flags) == 2 {
		t.Fatalf("%s -h lists no flags:\n%s", name, help.String())
	}
	return flags
}

// argsAfter returns the tokens that follow each mention of the command
// name in a code fragment, up to the end of that command (a pipe, ;, &&,
// || or a comment) or its own arguments (--, after which pgbb-run's are
// pg_basebackup's).
func argsAfter(fragment, name string) [][]string {
	var out [][]string
	tokens := strings.Fields(fragment)
	for i, tok := range tokens {
		if filepath.Base(tok) != name {
			continue
		}
		var args []string
		for _, a := range tokens[i+1:] {
			if a == "|" || a == ";" || a == "&&" || a == "||" || a == "--" || strings.HasPrefix(a, "#") {
				break
			}
			args = append(args, a)
		}
		out = append(out, args)
	}
	return out
}

// commandArgs is argsAfter for a name that is also a word (make): only
// where it stands as a command, first in the fragment or after a shell
// separator.
func commandArgs(fragment, name string) [][]string {
	tokens := strings.Fields(fragment)
	var out [][]string
	for i, tok := range tokens {
		if tok != name {
			continue
		}
		if i > 0 {
			switch tokens[i-1] {
			case ";", "&&", "||", "|", "$", "then", "do", "sudo":
			default:
				continue
			}
		}
		out = append(out, argsAfter(strings.Join(tokens[i:], " "), name)[0])
	}
	return out
}

// flagName returns the name of a flag token ("--lease", "-pg", "--json,"),
// or "" if tok is not one.
func flagName(tok string) string {
	tok = strings.TrimRight(tok, ",.;:)]}'\"`")
	tok = strings.TrimLeft(tok, "[('\"`")
	if !strings.HasPrefix(tok, "-") || tok == "-" || tok == "--" {
		return ""
	}
	name := strings.TrimLeft(tok, "-")
	if i := strings.IndexAny(name, "=["); i >= 0 {
		name = name[:i]
	}
	if name == "" || !regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]*$`).MatchString(name) {
		return ""
	}
	return name
}

// TestDocumentedFlags: every flag written after one of the project's
// commands in a document's code is a flag of that command.
func TestDocumentedFlags(t *testing.T) {
	uses := map[string]map[string][]string{} // command -> flag -> where
	for _, doc := range guides(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, frag := range codeOf(string(data)) {
			for name := range commands {
				for _, args := range argsAfter(frag, name) {
					for _, a := range args {
						if f := flagName(a); f != "" {
							if uses[name] == nil {
								uses[name] = map[string][]string{}
							}
							uses[name][f] = append(uses[name][f], doc)
						}
					}
				}
			}
		}
	}
	for name, flags := range uses {
		pkg := commands[name]
		if _, err := os.Stat(filepath.Join(repoRoot, pkg)); err != nil {
			t.Errorf("the documents name %s, but %s does not exist", name, pkg)
			continue
		}
		known := flagsOf(t, name, pkg)
		for f, where := range flags {
			if !known[f] {
				t.Errorf("%s: %s has no flag -%s (it lists %s)", strings.Join(dedupe(where), ", "), name, f, strings.Join(keys(known), " "))
			}
		}
	}
	if len(uses["pgbb-status"]) == 0 {
		t.Fatal("found no pgbb-status flags in the documents: the scanner is broken")
	}
}

// makeTarget is a Makefile rule's target.
var makeTarget = regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)

// TestDocumentedMakeTargets: every `make TARGET` in a document's code is
// a target of the Makefile.
func TestDocumentedMakeTargets(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range makeTarget.FindAllStringSubmatch(string(mk), -1) {
		targets[m[1]] = true
	}
	checked := 0
	for _, doc := range guides(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, frag := range codeOf(string(data)) {
			for _, args := range commandArgs(frag, "make") {
				for _, a := range args {
					if strings.Contains(a, "=") || strings.HasPrefix(a, "-") {
						continue
					}
					a = strings.TrimRight(a, ",.;:)`")
					if !regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(a) {
						break
					}
					checked++
					if !targets[a] {
						t.Errorf("%s: `make %s`, but the Makefile has no target %s", doc, a, a)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d make targets: the scanner is broken", checked)
	}
}

// repoPath is a code token that names a file of the repository.
var repoPath = regexp.MustCompile(`^(harness|scenarios|patches|docs|\.ci|\.github)/[A-Za-z0-9_.+/-]*$`)

// TestDocumentedFiles: every file or directory of the repository that a
// document's code names exists.
func TestDocumentedFiles(t *testing.T) {
	checked := 0
	for _, doc := range guides(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, frag := range codeOf(string(data)) {
			for _, tok := range strings.FieldsFunc(frag, func(r rune) bool { return strings.ContainsRune(" \t,;()=:'\"", r) }) {
				tok = strings.TrimLeft(tok, "./")
				tok = strings.TrimRight(tok, ".")
				if !repoPath.MatchString(tok) || strings.Contains(tok, "NAME") {
					continue
				}
				checked++
				if _, err := os.Stat(filepath.Join(repoRoot, tok)); err != nil {
					t.Errorf("%s names %s, which does not exist", doc, tok)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d paths: the scanner is broken", checked)
	}
}

// exitRow is a row of the table of pgbb-status's exit codes in
// docs/operators.md, the operators' page.
var exitRow = regexp.MustCompile("(?m)^\\| (\\d+) \\| `([a-z-]+)` \\|")

// TestDocumentedExitCodes: the table of pgbb-status's exit codes in
// docs/operators.md names every verdict with the code the reader exits
// with.
func TestDocumentedExitCodes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operators.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range exitRow.FindAllStringSubmatch(string(data), -1) {
		documented[m[2]] = m[1]
	}
	for v := status.Verdict(0); v < 16; v++ {
		name := v.String()
		if name == "not-complete" && v != status.NotComplete {
			continue
		}
		want := fmt.Sprint(v.ExitCode())
		if got, ok := documented[name]; !ok || got != want {
			t.Errorf("docs/operators.md's exit code table: verdict %s documented as %q, pgbb-status exits %s", name, got, want)
		}
	}
}

func dedupe(s []string) []string {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return keys(m)
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
