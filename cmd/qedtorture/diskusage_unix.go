//go:build unix

package main

import (
	"os"
	"syscall"
)

// diskUsage is the space the file occupies (st_blocks), or its length where
// the filesystem does not say.
func diskUsage(st os.FileInfo) int64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Blocks * 512
	}
	return st.Size()
}
