//go:build !linux

package status

import (
	"errors"
	"fmt"
	"os"
)

// renameAtNoReplace is not available here: RemoveIfDead refuses.
func renameAtNoReplace(dir *os.File, from, to string) error {
	return fmt.Errorf("rename %s to %s in %s: %w", from, to, dir.Name(), errors.New("no rename without replacing on this system"))
}
