package pgsrc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// CoverLetter is the name `git format-patch --cover-letter` gives the mail
// that introduces a series: it holds no change, and is never applied.
const CoverLetter = "0000-cover-letter.patch"

// PatchSeries returns the *.patch files of dirs (not a CoverLetter), a list of directories
// joined by the OS path list separator (":" on Unix): each directory's
// patches in name order, the directories in the order given. A second
// directory thus stacks patches on top of a series, as the known-bad
// variants in harness/testdata/knownbad do on top of patches/pg18. A missing
// directory or one without patches is an error: a patched build with no
// patches would silently be a stock build.
func PatchSeries(dirs string) ([]string, error) {
	var out []string
	for _, dir := range filepath.SplitList(dirs) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("patch series: %w", err)
		}
		var series []string
		for _, e := range ents {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".patch") && e.Name() != CoverLetter {
				series = append(series, filepath.Join(dir, e.Name()))
			}
		}
		if len(series) == 0 {
			return nil, fmt.Errorf("no patches in %s (a patched build needs at least one *.patch file)", dir)
		}
		sort.Strings(series)
		out = append(out, series...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no patch directory given")
	}
	return out, nil
}

// Hunk is one hunk of a patch file.
type Hunk struct {
	// File is the path the hunk changes, relative to the tree.
	File string
	// Number counts the hunks of File in this patch, from 1.
	Number int
	// Header is the hunk's "@@ -a,b +c,d @@ ..." line.
	Header string
	// OldStart is a in the header.
	OldStart int
	// Line is the line of the header in the patch file, from 1.
	Line int
}

// PatchError reports a patch that does not apply, naming the patch file,
// the target file and, when it could be found, the failing hunk.
type PatchError struct {
	// Patch is the patch file that failed.
	Patch string
	// File is the target file git apply named, if any.
	File string
	// Hunk is the failing hunk, when it could be mapped back.
	Hunk *Hunk
	// Output is git apply's output.
	Output string
}

func (e *PatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "patch %s does not apply", e.Patch)
	if e.File != "" {
		fmt.Fprintf(&b, " to %s", e.File)
	}
	if e.Hunk != nil {
		fmt.Fprintf(&b, ": hunk #%d %s (line %d of the patch) failed", e.Hunk.Number, e.Hunk.Header, e.Hunk.Line)
	}
	if e.Output != "" {
		b.WriteString("\n" + e.Output)
	}
	return b.String()
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@`)

// ParsePatch lists the hunks of a unified diff (git format-patch or diff -u).
func ParsePatch(r io.Reader) ([]Hunk, error) {
	var hunks []Hunk
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	var file, oldFile string
	perFile := map[string]int{}
	lineNo := 0
	oldLeft, newLeft := 0, 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if oldLeft > 0 || newLeft > 0 {
			switch {
			case strings.HasPrefix(line, "\\"):
				// "\ No newline at end of file"
			case strings.HasPrefix(line, "-"):
				oldLeft--
			case strings.HasPrefix(line, "+"):
				newLeft--
			default:
				oldLeft--
				newLeft--
			}
			continue
		}
		switch {
		case strings.HasPrefix(line, "--- "):
			oldFile = stripPath(line[4:])
		case strings.HasPrefix(line, "+++ "):
			file = stripPath(line[4:])
			if file == "" {
				file = oldFile
			}
		case strings.HasPrefix(line, "@@ "):
			m := hunkHeader.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: malformed hunk header %q", lineNo, line)
			}
			oldStart, _ := strconv.Atoi(m[1])
			oldLeft, newLeft = 1, 1
			if m[2] != "" {
				oldLeft, _ = strconv.Atoi(m[2])
			}
			if m[4] != "" {
				newLeft, _ = strconv.Atoi(m[4])
			}
			perFile[file]++
			hunks = append(hunks, Hunk{File: file, Number: perFile[file], Header: line, OldStart: oldStart, Line: lineNo})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return hunks, nil
}

// stripPath turns "a/src/x.c\t2024-..." into "src/x.c" (-p1); /dev/null
// becomes "".
func stripPath(s string) string {
	if i := strings.IndexByte(s, '\t'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if s == "/dev/null" {
		return ""
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

var (
	gitPatchFailed = regexp.MustCompile(`(?m)^error: patch failed: (.+):(\d+)$`)
	gitFileError   = regexp.MustCompile(`(?m)^error: (\S+): (.+)$`)
)

// ApplySeries applies patches, in the order given, to the tree at dir with
// `git apply` (atomic per patch, no fuzz). The first patch that does not
// apply stops the series with a *PatchError.
func ApplySeries(ctx context.Context, dir string, patches []string, log io.Writer) error {
	for _, p := range patches {
		if err := applyOne(ctx, dir, p); err != nil {
			return err
		}
		if log != nil {
			fmt.Fprintf(log, "pgsrc: applied %s\n", filepath.Base(p))
		}
	}
	return nil
}

func applyOne(ctx context.Context, dir, patch string) error {
	abs, err := filepath.Abs(patch)
	if err != nil {
		return fmt.Errorf("apply %s: %w", patch, err)
	}
	cmd := exec.CommandContext(ctx, "git", "apply", "--verbose", "--whitespace=nowarn", abs)
	cmd.Dir = dir
	// The tree may sit inside a git work tree (the repo's .cache): keep git
	// from finding that repository, so paths are relative to the tree.
	cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("apply %s: %w", patch, ctx.Err())
	}
	if _, ok := err.(*exec.ExitError); !ok {
		return fmt.Errorf("apply %s: git apply: %w", patch, err)
	}
	pe := &PatchError{Patch: patch, Output: strings.TrimSpace(string(out))}
	if m := gitPatchFailed.FindStringSubmatch(pe.Output); m != nil {
		pe.File = m[1]
		oldPos, _ := strconv.Atoi(m[2])
		pe.Hunk = findHunk(abs, m[1], oldPos)
	} else if m := gitFileError.FindStringSubmatch(pe.Output); m != nil {
		pe.File = m[1]
	}
	return pe
}

// findHunk maps git apply's "patch failed: FILE:LINE" (LINE is the old
// start of the failing hunk) back to the hunk in the patch file.
func findHunk(patch, file string, oldStart int) *Hunk {
	fh, err := os.Open(patch)
	if err != nil {
		return nil
	}
	defer fh.Close()
	hunks, err := ParsePatch(fh)
	if err != nil {
		return nil
	}
	for i := range hunks {
		if hunks[i].File == file && hunks[i].OldStart == oldStart {
			return &hunks[i]
		}
	}
	return nil
}
