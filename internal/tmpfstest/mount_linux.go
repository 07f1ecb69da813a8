package tmpfstest

import (
	"strings"
	"syscall"
)

func mount(dir, opts string) error {
	var flags uintptr
	data := ""
	for _, o := range strings.Split(opts, ",") {
		if o == "" {
			continue
		}
		if o == "ro" {
			flags |= syscall.MS_RDONLY
			continue
		}
		if data != "" {
			data += ","
		}
		data += o
	}
	return syscall.Mount("tmpfs", dir, "tmpfs", flags, data)
}

func unmount(dir string) error { return syscall.Unmount(dir, syscall.MNT_DETACH) }
