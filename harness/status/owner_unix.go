//go:build unix

package status

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
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
func userName(uid uint32) string { return lookupOwner(uid).String() }

// lookupOwner is the user uid, with its name if the user database has one.
func lookupOwner(uid uint32) FileOwner {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return FileOwner{UID: uid, Name: u.Username}
	}
	return FileOwner{UID: uid}
}

// fileOwner is the owner of what fi describes, nil if it cannot be told.
func fileOwner(fi fs.FileInfo) *FileOwner {
	uid, err := ownerOf(fi)
	if err != nil {
		return nil
	}
	o := lookupOwner(uid)
	return &o
}

// owner is the user whose file-system credentials a removal runs with:
// the owner of the status file.
type owner struct {
	// uid is the user; gid the group it acts with (its file-system gid).
	uid, gid uint32
	// groups are the user's groups, its primary group first; none for
	// a user the user database does not know.
	groups []uint32
}

// ownerWithGroups returns the owner of what fi describes, with its primary
// group and groups from the user database. A uid the database does not
// know gets no groups, and acts with the group of no one (noGroup), never
// the file's group: a file takes the group of a setgid directory it is
// made in, which says nothing of its owner. If that group is the file's
// after all, acting as the owner is refused.
func ownerWithGroups(fi fs.FileInfo) (owner, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{}, fmt.Errorf("no owner known for %s", fi.Name())
	}
	if gids := groupsOf(st.Uid); len(gids) > 0 {
		return owner{uid: st.Uid, gid: gids[0], groups: gids}, nil
	}
	gid := noGroup()
	if gid == st.Gid {
		return owner{}, fmt.Errorf("%s has no entry in the user database, and %s is in group %d, the kernel's overflow group, which it would act with for want of its own: cannot act as it",
			userName(st.Uid), fi.Name(), gid)
	}
	return owner{uid: st.Uid, gid: gid}, nil
}

// noGroup is the group an owner without an entry in the user database
// acts with: the kernel's overflow group (/proc/sys/kernel/overflowgid,
// 65534, "nogroup"), which stands for groups that cannot be named and
// should own nothing.
func noGroup() uint32 {
	data, err := os.ReadFile("/proc/sys/kernel/overflowgid")
	if err == nil {
		if g, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32); err == nil {
			return uint32(g)
		}
	}
	return 65534
}

// fileID returns the identity of what fi describes.
func fileID(fi fs.FileInfo) (FileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileID{}, false
	}
	return FileID{Dev: uint64(st.Dev), Ino: st.Ino}, true
}

// mayRemoveFrom says whether the user u may remove an entry it owns from
// the directory parent, by the permission bits, in the kernel's order:
// the owner class if u owns the directory, else the group class if u is in
// its group, else the other class (a class that applies decides, even
// when a later one would allow more); write and search permission are
// needed, and a sticky bit does not matter since the entry is u's own.
// This is the up-front judgement; the removal itself runs with u's
// credentials, so that the kernel has the last word (ACLs included).
func mayRemoveFrom(parent fs.FileInfo, u owner) bool {
	st, ok := parent.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := parent.Mode().Perm()
	switch {
	case u.uid == 0:
		return true
	case st.Uid == u.uid:
		return perm&0o300 == 0o300
	case st.Gid == u.gid || slices.Contains(u.groups, st.Gid):
		return perm&0o030 == 0o030
	}
	return perm&0o003 == 0o003
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
		if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(gids, uint32(g)) {
			gids = append(gids, uint32(g))
		}
	}
	return gids
}
