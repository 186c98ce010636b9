package status

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// withheldFiles are invalid files that each hold marker where a reader
// finds something wrong: in every line, in place of the value, after it,
// before the key, with a control character, with a lower-case key; sealed
// with a correct checksum and not.
func withheldFiles(marker string) [][]byte {
	mutations := []func(string) string{
		func(l string) string { k, _, _ := strings.Cut(l, ": "); return k + ": " + marker },
		func(l string) string { return l + marker },
		func(l string) string { return marker + l },
		func(l string) string { return strings.ToLower(l) + marker },
		func(l string) string { return strings.Replace(l, ": ", ":"+marker, 1) },
		func(l string) string { return l + "\x01" + marker },
		func(l string) string { return l + "\u202e" + marker },
		func(l string) string { return l + marker + "\xff" },
	}
	var files [][]byte
	for _, s := range []*Status{withProgress(completedStatus()), withProgress(inProgressStatus(true)), withProgress(failedStatus(true))} {
		lines := bodyLines(s.Encode())
		for i := range lines {
			for _, mutate := range mutations {
				m := slices.Clone(lines)
				m[i] = mutate(m[i])
				sealed := join(m)
				files = append(files, sealed, sealed[:len(sealed)-len("CHECKSUM: 12345678\n")])
			}
		}
	}
	return append(files,
		[]byte("PGPASSWORD="+marker+"\n"),
		[]byte(marker+"\n"),
		[]byte("BACKUP STATUS FORMAT: 7"+strings.Repeat("7", 3)+"\n"+marker+"\n"),
		seal("BACKUP STATUS FORMAT: 1\nSTATUS: "+marker+"\n"),
	)
}

// TestWithhold: a withheld ParseError says on which line what is wrong,
// and never shows what the file holds (a value, a key, a byte, the
// checksums); the full message of the same error does.
func TestWithhold(t *testing.T) {
	const marker = "Qz7Qz7"
	shownInFull := 0
	for _, data := range withheldFiles(marker) {
		_, err := Parse(data)
		var pe *ParseError
		if err == nil {
			continue // a marker in a free-text value
		}
		if !errors.As(err, &pe) {
			t.Fatalf("error %T %v", err, err)
		}
		full, line := pe.Error(), pe.Line
		if strings.Contains(full, marker) {
			shownInFull++
		}
		pe.Withhold()
		quiet := pe.Error()
		if !pe.Withheld || pe.Line != line || strings.Contains(quiet, "Qz7") || strings.Contains(quiet, "777") {
			t.Errorf("withheld %v line %d (was %d): %q\nfull: %q\nfile: %q", pe.Withheld, pe.Line, line, quiet, full, data)
		}
	}
	if shownInFull == 0 {
		t.Error("no full message showed the marker: the test finds nothing")
	}
	// The checksums, written and computed, are the file's too.
	valid := completedStatus().Encode()
	bad := append(slices.Clone(valid[:len(valid)-9]), "0000ABCD\n"...)
	_, err := Parse(bad)
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "0000ABCD") {
		t.Fatalf("error %v", err)
	}
	pe.Withhold()
	if sum := fmt.Sprintf("%08X", crc32c(valid[:len(valid)-len("CHECKSUM: 12345678\n")])); strings.Contains(pe.Msg, "ABCD") || strings.Contains(pe.Msg, sum) ||
		pe.Msg != "checksum mismatch: the file says [not shown], its contents have [not shown]" {
		t.Errorf("withheld: %q", pe.Msg)
	}
	// A ParseError made elsewhere withholds everything.
	other := &ParseError{Line: 3, Msg: "the value " + marker}
	if other.Withhold(); strings.Contains(other.Error(), marker) || other.Line != 3 {
		t.Errorf("%q", other.Error())
	}
}

// TestShowsContent: a parse error shows the file's content only to its
// owner, and never to root, which reads through paths others may swap.
func TestShowsContent(t *testing.T) {
	for _, tc := range []struct {
		owner, caller uint32
		want          bool
	}{{1000, 1000, true}, {1000, 1001, false}, {1000, 0, false}, {0, 0, false}, {0, 1000, false}} {
		if got := showsContent(tc.owner, tc.caller); got != tc.want {
			t.Errorf("owner %d, caller %d: %v, want %v", tc.owner, tc.caller, got, tc.want)
		}
	}
}
