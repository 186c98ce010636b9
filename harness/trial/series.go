package trial

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/pgbb/pgbb/harness/status"
)

// HarmlessStatus says whether the pg_basebackup in binDir writes its
// status file as the pg18 series does from patch 0004 on, which lets the
// status file harm neither the backup nor a later run:
//
//   - the first version ("in progress", PHASE starting, no DIRECTORY
//     lines) is written as soon as the command line has been checked,
//     before pg_basebackup connects or creates any directory, so that a
//     later run given the same status file that fails early (a target
//     that is not empty, a server that is down) leaves "failed" with its
//     own PID, never an earlier run's "completed";
//   - each version is written to FILE.PID.tmp (status.TempPath), so that
//     a temporary file left by a killed run stands in no later run's way;
//   - a version that cannot be written, synced or renamed is a warning,
//     never a failure: a final "completed" that cannot be written leaves a
//     complete backup, no status file (removed, best effort), the warning
//     status.WarnCompleteUnsaid, and exit 0.
//
// The same series syncs a file that is read-only in the source (its patch
// 0001 opens it read-only to fsync it), so that a plain backup holding one
// is durable. Earlier series (pg15's) do none of this: their first version
// follows the check of the target, FILE.tmp stands in a later run's way,
// a final version that cannot be written fails the run, and a read-only
// file is skipped by the sync (DURABLE: no).
//
// It is told by the executable, which holds the text of
// status.WarnCompleteUnsaid only from that patch on; one that cannot be
// read is taken for an earlier series. The answer is kept per executable (path,
// size and modification time).
func HarmlessStatus(binDir string) bool {
	path := filepath.Join(binDir, "pg_basebackup")
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", path, fi.Size(), fi.ModTime().UnixNano())
	if v, ok := harmlessCache.Load(key); ok {
		return v.(bool)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	harmless := bytes.Contains(data, []byte(status.WarnCompleteUnsaid))
	harmlessCache.Store(key, harmless)
	return harmless
}

// harmlessCache holds HarmlessStatus's answers.
var harmlessCache sync.Map
