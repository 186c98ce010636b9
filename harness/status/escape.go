package status

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s made safe to show on a terminal: every character that
// could change how the rest is shown is replaced by an escape. Those are
// the control characters (C0, DEL, C1), the bidirectional controls and
// every other Unicode format character (zero-width characters among them),
// the line and paragraph separators, and bytes that are not UTF-8. Newline,
// tab and carriage return become \n, \t and \r; other bytes below 0x80 and
// bytes that are not UTF-8 become \xNN; other characters \uNNNN (or
// \UNNNNNNNN). Anything else, backslashes included, is kept: the result is
// for people to read, not to be parsed back.
//
// pgbb-status passes every line of its text output through Escape: paths,
// names, reasons and what it read in /proc may hold anything.
func Escape(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !unsafeRune(r):
			b.WriteString(s[i : i+n])
		default:
			b.WriteString(escapeRune(r))
		}
		i += n
	}
	return b.String()
}

// escapeRune is the escape of a character that Escape replaces.
func escapeRune(r rune) string {
	switch {
	case r == '\n':
		return `\n`
	case r == '\t':
		return `\t`
	case r == '\r':
		return `\r`
	case r < utf8.RuneSelf:
		return fmt.Sprintf(`\x%02x`, r)
	case r <= 0xFFFF:
		return fmt.Sprintf(`\u%04x`, r)
	}
	return fmt.Sprintf(`\U%08x`, r)
}

// unsafeRune says whether Escape replaces r: a control character that the
// status file may not hold (IsControl), or any other format character.
func unsafeRune(r rune) bool {
	return IsControl(r) || unicode.Is(unicode.Cf, r)
}
