package fault

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pgbb/pgbb/harness/osuser"
)

// TestReadersNotRun: the stop plan's other readers run only with a reader
// binary, the other user only with an account, and a reason the campaign
// found (a failed probe) wins over the one the target shows.
func TestReadersNotRun(t *testing.T) {
	acct := &osuser.Account{Name: "reader", UID: 1001}
	for _, c := range []struct {
		name string
		t    Target
		want ReaderGaps
	}{
		{"everything", Target{ReaderBin: "/r", OtherUser: acct}, ReaderGaps{}},
		{"no binary", Target{OtherUser: acct}, ReaderGaps{OtherUser: NoReaderBin, OtherNamespace: NoReaderBin}},
		{"no other user", Target{ReaderBin: "/r"}, ReaderGaps{OtherUser: NoOtherUser}},
		{"no namespace", Target{ReaderBin: "/r", OtherUser: acct, ReaderGaps: ReaderGaps{OtherNamespace: "unshare: EPERM"}},
			ReaderGaps{OtherNamespace: "unshare: EPERM"}},
		{"the campaign's reason first", Target{ReaderGaps: ReaderGaps{OtherNamespace: "unshare: EPERM"}},
			ReaderGaps{OtherUser: NoReaderBin, OtherNamespace: "unshare: EPERM"}},
	} {
		got := ReadersNotRun(&c.t)
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
		if got.Any() != (c.want != ReaderGaps{}) {
			t.Errorf("%s: Any() %t", c.name, got.Any())
		}
	}
}

// TestCheckOtherNamespace: the probe fails, saying what it ran, where no
// unshare(1) can be found; as root with unshare, it succeeds.
func TestCheckOtherNamespace(t *testing.T) {
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("unshare"); err == nil {
			if err := CheckOtherNamespace(context.Background()); err != nil {
				t.Errorf("as root: %v", err)
			}
		}
	}
	t.Setenv("PATH", t.TempDir())
	err := CheckOtherNamespace(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unshare --pid --fork --mount-proc") {
		t.Fatalf("without unshare: %v", err)
	}
}
