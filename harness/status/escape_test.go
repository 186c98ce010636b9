package status

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestEscape: every character that a terminal obeys or that reorders or
// hides text is escaped; everything else is kept as it is.
func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":                              "",
		"/backups/b1.status":            "/backups/b1.status",
		"Größe ü 東京 \\ \"q\"":           "Größe ü 東京 \\ \"q\"",
		"a\nexit 0 (removed)":           `a\nexit 0 (removed)`,
		"tab\there\rCR":                 `tab\there\rCR`,
		"\x1b[2J\x00\x07\x7f":           `\x1b[2J\x00\x07\x7f`,
		"nel\u0085csi\u009b2J":          `nel\u0085csi\u009b2J`,
		"rlo\u202eabc\u202c":            `rlo\u202eabc\u202c`,
		"iso\u2066x\u2067y\u2068\u2069": `iso\u2066x\u2067y\u2068\u2069`,
		"mark\u200e\u200f\u061c":        `mark\u200e\u200f\u061c`,
		"zw\u200b\u200d\ufeff\u00ad":    `zw\u200b\u200d\ufeff\u00ad`,
		"sep\u2028\u2029":               `sep\u2028\u2029`,
		"tag\U000e0001":                 `tag\U000e0001`,
		"bad \x9b byte \xff\xfe":        `bad \x9b byte \xff\xfe`,
	} {
		got := Escape(in)
		if got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(got, unsafeRune) {
			t.Errorf("Escape(%q) = %q still holds something to escape", in, got)
		}
	}
}

// FuzzEscape: whatever the input, the output is valid UTF-8 without a
// character to escape, and input that needs no escape is kept.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"plain", "a\nb", "\x1b[31m", "\u202e", "\xff", "\u0085"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Escape(s)
		if !utf8.ValidString(got) || strings.ContainsFunc(got, unsafeRune) {
			t.Fatalf("Escape(%q) = %q", s, got)
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, unsafeRune) && got != s {
			t.Fatalf("Escape(%q) = %q, changed a safe string", s, got)
		}
	})
}
