//go:build !linux

package status

import (
	"errors"
	"fmt"
)

// renameNoReplace is not available here: RemoveIfDead refuses.
func renameNoReplace(from, to string) error {
	return fmt.Errorf("rename %s to %s: %w", from, to, errors.New("no rename without replacing on this system"))
}
