//go:build !linux

package tmpfstest

import "errors"

var errUnsupported = errors.New("tmpfs mounts are only made on Linux")

func mount(dir, opts string) error { return errUnsupported }

func unmount(dir string) error { return nil }
