//go:build linux

package childrss

// maxrssBytes converts wait4's ru_maxrss: kilobytes on Linux.
func maxrssBytes(v int64) int64 { return v << 10 }
