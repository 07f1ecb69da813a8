//go:build !linux

package imagelock

import "os"

// Supported reports whether Lock takes locks on this system: not here (see
// the package doc's caveats).
const Supported = false

// Lock does nothing on this system.
func Lock(f *os.File, path string, m Mode) error { return nil }

// Unlock does nothing on this system.
func Unlock(f *os.File) error { return nil }

// Probe reports no locks on this system.
func Probe(f *os.File) (held, unshared Perm, err error) { return 0, 0, nil }
