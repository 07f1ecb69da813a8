package qemu

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/qedtorture/qedtorture/internal/tmpfstest"
)

// A small memory filesystem (a container's 64 MiB /dev/shm) is not used
// for scratch: a campaign's images would run out of space there.
func TestScratchNeedsRoom(t *testing.T) {
	small := tmpfstest.Mount(t, "size=64m")
	require.False(t, usableScratch(small), "a 64 MiB tmpfs was taken for scratch")
	big := tmpfstest.Mount(t, "size=4g") // a limit, not an allocation
	require.True(t, usableScratch(big), "a 4 GiB tmpfs was refused")
	require.False(t, usableScratch(filepath.Join(big, "missing")))
	ro := tmpfstest.Mount(t, "size=4g,ro")
	require.False(t, usableScratch(ro), "a read-only file system was taken for scratch")
}
