//go:build linux

package status

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// asUser runs f with the file-system credentials of the user u: on a
// goroutine locked to an OS thread whose fsuid, fsgid and groups are u's.
// The kernel then makes every path lookup, permission check and removal of
// f as it would for u (search permission on every ancestor, write
// permission and the sticky bit on a parent, ACLs), and drops root's file
// capabilities for it. The thread is never unlocked: it exits with the
// goroutine, credentials and all, and the runtime starts no thread from a
// locked one. Anything f does that needs the caller's own rights (reading
// other users' /proc entries) must run on another goroutine (see
// asCaller).
//
// A caller that is not root can act only as itself.
func asUser(u owner, f func() error) error {
	if euid := os.Geteuid(); euid != 0 {
		if uint32(euid) != u.uid {
			return fmt.Errorf("cannot act as %s, the owner of the status file: run as root or as that user", userName(u.uid))
		}
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		err := errExited
		defer func() { errc <- err }()
		runtime.LockOSThread() // never unlocked: the thread dies with these credentials
		if err = setThreadCredentials(u); err != nil {
			return
		}
		err = f()
	}()
	return <-errc
}

// setThreadCredentials sets the calling thread's groups, fsgid and fsuid
// to u's and checks in /proc/thread-self/status that they took.
func setThreadCredentials(u owner) error {
	groups := make([]int, len(u.groups))
	for i, g := range u.groups {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("take the groups of %s: %w", userName(u.uid), err)
	}
	unix.Setfsgid(int(u.gid))
	unix.Setfsuid(int(u.uid))
	fsuid, fsgid, err := threadFSIDs()
	if err != nil {
		return err
	}
	if fsuid != u.uid || fsgid != u.gid {
		return fmt.Errorf("could not act as %s (gid %d): the thread's file-system ids are %d, %d", userName(u.uid), u.gid, fsuid, fsgid)
	}
	return nil
}

// threadFSIDs reads the file-system uid and gid of the calling thread.
func threadFSIDs() (uid, gid uint32, err error) {
	f, err := os.Open("/proc/thread-self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("check the thread's credentials: %w", err)
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var real, eff, saved uint32
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Uid:"):
			_, err = fmt.Sscanf(line, "Uid: %d %d %d %d", &real, &eff, &saved, &uid)
		case strings.HasPrefix(line, "Gid:"):
			_, err = fmt.Sscanf(line, "Gid: %d %d %d %d", &real, &eff, &saved, &gid)
		default:
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("check the thread's credentials: %q: %w", line, err)
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("check the thread's credentials: no Uid and Gid lines in /proc/thread-self/status")
	}
	return uid, gid, sc.Err()
}
