//go:build !linux

package wrapper

import "syscall"

// LeadGroup does nothing here.
func LeadGroup() (string, error) { return "process groups are not managed on this system", nil }

// ProcessGroup is 0 here: no process group is managed.
func ProcessGroup() int { return 0 }

func groupMembers(int, string) []int { return nil }

func signalAll(pids []int, sig syscall.Signal) {
	for _, p := range pids {
		_ = syscall.Kill(p, sig)
	}
}

func childAttr() *syscall.SysProcAttr { return nil }

func ioCounter(int) (uint64, bool) { return 0, false }
