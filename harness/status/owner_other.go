//go:build !unix

package status

import (
	"errors"
	"fmt"
	"io/fs"
)

// errNoOwners says file owners cannot be read here: RemoveIfDead refuses.
var errNoOwners = errors.New("file owners cannot be read on this system")

func ownerOf(fi fs.FileInfo) (uint32, error) { return 0, errNoOwners }

func devOf(fi fs.FileInfo) uint64 { return 0 }

func ownedBy(path string, fi fs.FileInfo, uid uint32) error {
	return fmt.Errorf("%s: %w", path, errNoOwners)
}

func userName(uid uint32) string { return fmt.Sprintf("uid %d", uid) }

func fileOwner(fi fs.FileInfo) *FileOwner { return nil }

// owner is the user whose credentials a removal runs with.
type owner struct {
	uid, gid uint32
	groups   []uint32
}

func ownerWithGroups(fi fs.FileInfo) (owner, error) { return owner{}, errNoOwners }

func fileID(fi fs.FileInfo) (FileID, bool) { return FileID{}, false }

func mayRemoveFrom(parent fs.FileInfo, u owner) bool { return false }
