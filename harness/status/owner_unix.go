//go:build unix

package status

import (
	"fmt"
	"io/fs"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// ownerOf returns the owner of what fi describes.
func ownerOf(fi fs.FileInfo) (uint32, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("no owner known for %s", fi.Name())
	}
	return st.Uid, nil
}

// devOf returns the device of the file system that holds what fi
// describes (0 if unknown).
func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

// ownedBy returns an error naming path and both owners unless fi is owned
// by uid.
func ownedBy(path string, fi fs.FileInfo, uid uint32) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return fmt.Errorf("%s: its owner cannot be told", path)
	case st.Uid != uid:
		return fmt.Errorf("%s is owned by %s, not by %s, the owner of the status file: only what that user could remove is removed",
			path, userName(st.Uid), userName(uid))
	}
	return nil
}

// userName is "uid N (name)", or "uid N" for a uid without a name.
func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// mayRemoveFrom says whether uid may remove an entry it owns from the
// directory parent: root may, the directory's owner may, and otherwise the
// directory must be writable and searchable for uid through its group
// (uid's groups, from the user database) or for others. A sticky bit does
// not matter, since the entry is uid's own. ACLs are not read: where one
// would grant more, the removal is refused, never the other way round.
func mayRemoveFrom(parent fs.FileInfo, uid uint32) bool {
	st, ok := parent.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := parent.Mode().Perm()
	switch {
	case uid == 0, st.Uid == uid:
		return uid == 0 || perm&0o300 == 0o300
	case perm&0o003 == 0o003:
		return true
	case perm&0o030 == 0o030:
		return slices.Contains(groupsOf(uid), st.Gid)
	}
	return false
}

// groupsOf returns the groups of uid (its primary group first), or none if
// the user database does not know it.
func groupsOf(uid uint32) []uint32 {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return nil
	}
	ids, _ := u.GroupIds()
	var gids []uint32
	for _, id := range append([]string{u.Gid}, ids...) {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			gids = append(gids, uint32(g))
		}
	}
	return gids
}
