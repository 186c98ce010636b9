package status

import (
	"fmt"
	"strconv"
)

// shown is something a status file holds, or was computed from what it
// holds (a value, a byte, a checksum), in an error message about the
// file. A ParseError has its message in two forms, with and without such
// pieces (see ParseError.Withhold): a reader must not show what a file
// holds to someone who could not read the file.
type shown string

// quote is v as a shown piece of a message: quoted, cut at 60 bytes.
func quote(v string) shown { return shown(strconv.Quote(truncate(v, 60))) }

// shownf formats a shown piece of a message (a number read in the file).
func shownf(format string, args ...any) shown { return shown(fmt.Sprintf(format, args...)) }

// notShown stands in for a shown piece in a message that withholds it.
const notShown = "[not shown]"

// detail is an error message about a status file, in two forms: full,
// with the shown pieces, and quiet, without them.
type detail struct{ full, quiet string }

// Error returns the full form.
func (d *detail) Error() string { return d.full }

// detailf formats a message twice, as fmt.Sprintf: once with every shown
// argument as it is, once with each replaced by notShown. A *detail
// argument gives its own form of each.
func detailf(format string, args ...any) *detail {
	return &detail{full: fmt.Sprintf(format, forms(args, false)...), quiet: fmt.Sprintf(format, forms(args, true)...)}
}

// forms returns args for the full or the quiet form of a message. Any
// other argument is used as it is in both: it must hold nothing of the
// file.
func forms(args []any, quiet bool) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case shown:
			out[i] = string(a)
			if quiet {
				out[i] = notShown
			}
		case *detail:
			out[i] = a.full
			if quiet {
				out[i] = a.quiet
			}
		default:
			out[i] = a
		}
	}
	return out
}
