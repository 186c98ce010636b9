package build

import (
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStepProgress: a long step says every interval how long it has run
// and how many lines it wrote, and stops saying so when it ends.
func TestStepProgress(t *testing.T) {
	defer func(d time.Duration) { progressInterval = d }(progressInterval)
	progressInterval = 20 * time.Millisecond
	var log strings.Builder
	l := &logger{&syncWriter{w: &log}}
	p := l.progress("make", io.Discard)
	io.WriteString(p.w, "gcc a.c\ngcc b.c\n")
	time.Sleep(70 * time.Millisecond)
	p.done()
	got := log.String()
	if !strings.Contains(got, "pgbb:   ... make: ") || !strings.Contains(got, "so far, 2 lines of output") {
		t.Fatalf("progress lines: %q", got)
	}
	n := strings.Count(got, "\n")
	time.Sleep(50 * time.Millisecond)
	if strings.Count(log.String(), "\n") != n {
		t.Error("progress went on after done")
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
