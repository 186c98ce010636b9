package campaign

import (
	"fmt"
	"os"
	"syscall"

	"github.com/pgbb/pgbb/harness/scenario"
)

// MemoryDir is where MakeScratch puts a campaign's scratch directory when
// it can: the memory file system most Linux hosts mount.
const MemoryDir = "/dev/shm"

// tmpfsMagic is statfs's f_type of tmpfs.
const tmpfsMagic = 0x01021994

// MakeScratch creates a new scratch directory (prefix as os.MkdirTemp) for
// a campaign of scs with parallel workers, and says where and why.
//
// It prefers MemoryDir when that is a tmpfs with twice the room
// checkSpace asks for: no plan's verdict depends on the scratch file
// system's durability (process kills leave the page cache intact, and the
// power-loss plans keep their own durable state in the powerfs layer), but
// every fsync of the source server, of pg_basebackup and of the oracle's
// copy costs a disk flush elsewhere, and on a 2-core VM those flushes are
// most of a trial's time. Otherwise it uses os.TempDir().
func MakeScratch(prefix string, scs []scenario.Scenario, parallel int) (dir, why string, err error) {
	root, why := os.TempDir(), ""
	var st syscall.Statfs_t
	switch err := syscall.Statfs(MemoryDir, &st); {
	case err != nil:
		why = fmt.Sprintf("%s: %v", MemoryDir, err)
	case st.Type != tmpfsMagic:
		why = MemoryDir + " is not a tmpfs"
	default:
		free := uint64(st.Bavail) * uint64(st.Bsize)
		if need := spaceNeeded(scs, parallel); free < 2*need {
			why = fmt.Sprintf("%s has %d MB free, less than twice the %d MB needed", MemoryDir, free>>20, need>>20)
		} else {
			root = MemoryDir
			why = "in memory: kept trials are lost at reboot, -scratch DIR keeps them on disk"
		}
	}
	if root != MemoryDir {
		why = "on disk (" + why + ")"
	}
	dir, err = os.MkdirTemp(root, prefix)
	if err != nil {
		return "", "", fmt.Errorf("scratch directory: %w", err)
	}
	return dir, why, nil
}
