//go:build !linux

package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/afero"
)

// directFs: cache mode none needs O_DIRECT, which only the Linux build
// implements.
func directFs(base afero.Fs) (afero.Fs, error) {
	return nil, fmt.Errorf("bench: cache modes none and directsync (O_DIRECT) are not supported on %s; use -t writeback or writethrough", runtime.GOOS)
}
