package powerfs

import "sort"

// span is a half-open byte range [off, end) of a file.
type span struct {
	off, end int64
}

// spans is a sorted set of disjoint, non-adjacent byte ranges: the parts
// of a file written since they were last made durable (or dropped by a
// failed fsync).
type spans []span

// add inserts [off, end) and merges it with the ranges it touches.
func (s spans) add(off, end int64) spans {
	if end <= off {
		return s
	}
	// First range that ends at or after off.
	i := sort.Search(len(s), func(i int) bool { return s[i].end >= off })
	j := i
	for j < len(s) && s[j].off <= end {
		if s[j].off < off {
			off = s[j].off
		}
		if s[j].end > end {
			end = s[j].end
		}
		j++
	}
	out := make(spans, 0, len(s)-(j-i)+1)
	out = append(out, s[:i]...)
	out = append(out, span{off, end})
	out = append(out, s[j:]...)
	return out
}

// clip returns the ranges cut at size.
func (s spans) clip(size int64) spans {
	var out spans
	for _, r := range s {
		if r.off >= size {
			break
		}
		if r.end > size {
			r.end = size
		}
		out = append(out, r)
	}
	return out
}

// covers says whether the set holds all of [0, size).
func (s spans) covers(size int64) bool {
	if size == 0 {
		return true
	}
	return len(s) > 0 && s[0].off <= 0 && s[0].end >= size
}
