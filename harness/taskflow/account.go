package taskflow

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"

	"github.com/pgbb/pgbb/harness/build"
)

// DefaultReaderUser is the OS user that judges status files: not the one
// that runs pg_basebackup, but in its group, as an orchestrator's account
// often is (the source is initialised with group access, so pg_basebackup
// makes its files group-readable).
const DefaultReaderUser = "pgbbreader"

// ReaderAccount returns the account named name, created with useradd in
// owner's primary group when it does not exist. Unless the harness runs as
// root, it can switch to no one: the reader is then the owner itself,
// which the result's Name says.
func ReaderAccount(ctx context.Context, owner build.Account, name string) (build.Account, error) {
	if os.Geteuid() != 0 || !owner.Switch {
		return owner, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		group := strconv.FormatUint(uint64(owner.GID), 10)
		out, err := exec.CommandContext(ctx, "useradd", "--no-create-home", "--gid", group,
			"--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err != nil {
			return build.Account{}, fmt.Errorf("create reader user %s: useradd: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup(name); err != nil {
			return build.Account{}, fmt.Errorf("create reader user %s: %w", name, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return build.Account{}, fmt.Errorf("reader user %s: uid %q: %w", name, u.Uid, err)
	}
	if uint32(uid) == owner.UID || uid == 0 {
		return build.Account{}, fmt.Errorf("reader user %s has uid %d: want another user than %s, and not root", name, uid, owner.Name)
	}
	// The owner's group, whatever the user's own: that is what lets it
	// read the status file.
	return build.Account{Name: u.Username, UID: uint32(uid), GID: owner.GID, Home: "/", Switch: true}, nil
}
