package fault

import "github.com/pgbb/pgbb/harness/status"

// WritersNamespace is this machine's /proc (status.Procfs) for a reader
// that started pg_basebackup itself, in its own PID namespace, as the
// harness does natively and inside the container of the container
// backend: the recorded pid is numbered in the reader's namespace, so the
// checks a reader in an unknown namespace needs (status.PIDNamespaces)
// do not apply and are left out. A reader anywhere else is what the stop
// plan's reader in a PID namespace of its own tests.
func WritersNamespace() status.Processes { return writersNamespace{} }

type writersNamespace struct{ procfs status.Procfs }

var (
	_ status.Processes = writersNamespace{}
	_ status.DirUsers  = writersNamespace{}
)

func (w writersNamespace) Hostname() (string, error) { return w.procfs.Hostname() }

func (w writersNamespace) Process(pid int) (status.ProcessInfo, error) { return w.procfs.Process(pid) }

func (w writersNamespace) DirUsers(dirs []string, ids map[status.FileID]bool, pid int) ([]status.DirUser, error) {
	return w.procfs.DirUsers(dirs, ids, pid)
}
