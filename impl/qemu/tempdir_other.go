//go:build !linux

package qemu

// freeBytes is not needed off Linux: scratchRoot uses a memory file
// system only there.
func freeBytes(string) (uint64, bool) { return 0, false }
