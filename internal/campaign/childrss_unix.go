//go:build unix

package campaign

import "syscall"

// childMaxRSS is the largest resident set of any child process this
// process has waited for so far, in bytes (0 when unknown): the memory
// bound of out-of-process repairs (QEMU's tools) is judged on it.
func childMaxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return maxrssBytes(int64(ru.Maxrss))
}
