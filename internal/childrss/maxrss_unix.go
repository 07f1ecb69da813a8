//go:build unix

package childrss

import (
	"os"
	"syscall"
)

// maxRSS is the process's own peak resident set in bytes, from the rusage
// wait4 returned for it, when that is known to be the child's own.
//
// It is not always: Go starts a child the vfork way on Linux (it runs in
// this process's address space until it execs), and exec records the
// high-water mark of the address space it leaves in the child's ru_maxrss,
// so a child's figure is at least this process's own peak at its start.
// A figure above this process's own peak now (getrusage RUSAGE_SELF, which
// only grows) cannot come from there and is the child's; one at or below
// it is unknown (false): a child is then known only to have stayed under
// this process's own peak.
func maxRSS(ps *os.ProcessState) (int64, bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0, false
	}
	var self syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		return 0, false
	}
	child := maxrssBytes(int64(ru.Maxrss))
	if child <= maxrssBytes(int64(self.Maxrss)) {
		return 0, false
	}
	return child, true
}
