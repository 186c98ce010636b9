package status

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// FileOwner is the user who owns a file.
type FileOwner struct {
	// UID is the user's id.
	UID uint32 `json:"uid"`
	// Name is the user's name, if the user database has one.
	Name string `json:"name,omitempty"`
}

// String names the user: "uid N (name)", or "uid N".
func (o FileOwner) String() string {
	if o.Name == "" {
		return fmt.Sprintf("uid %d", o.UID)
	}
	return fmt.Sprintf("uid %d (%s)", o.UID, o.Name)
}

// unconfirmed says why the completed status s, whose file owner owns
// (nil if unknown), is not borne out by the directories it records, or
// returns "" if it is: each must be a directory (after symlinks) owned by
// that user. A file that records no directory (-D -, --target, a writer
// without patch 0003) has nothing to bear out. The directories are looked
// at with the caller's rights.
func unconfirmed(s *Status, owner *FileOwner) string {
	for i, d := range s.Directories {
		if d.Unprintable {
			return fmt.Sprintf("DIRECTORY %d is unprintable (its path has a control character), so the backup cannot be looked at", i+1)
		}
		fi, err := os.Stat(d.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Sprintf("DIRECTORY %s is missing", d.Path)
		case err != nil:
			return fmt.Sprintf("DIRECTORY %s cannot be examined (%v)", d.Path, err)
		case !fi.IsDir():
			return fmt.Sprintf("DIRECTORY %s is not a directory", d.Path)
		}
		if why := notOwnedBy(d.Path, fi, owner); why != "" {
			return why
		}
	}
	return ""
}

// notOwnedBy says why the directory at path, which fi describes, is not
// owner's, or returns "" if it is. An owner that cannot be told (no file
// owners on this system) is not checked.
func notOwnedBy(path string, fi fs.FileInfo, owner *FileOwner) string {
	if owner == nil {
		return ""
	}
	uid, err := ownerOf(fi)
	switch {
	case err != nil:
		return fmt.Sprintf("the owner of DIRECTORY %s cannot be told (%v)", path, err)
	case uid != owner.UID:
		return fmt.Sprintf("DIRECTORY %s is owned by %s, not by %s, the owner of the status file", path, userName(uid), owner)
	}
	return ""
}
