package qemu

import (
	"os"
	"runtime"
	"sync"

	"github.com/qedtorture/qedtorture/internal/cleanup"
)

// tempDir creates a scratch directory in scratchRoot() named prefix plus
// a random suffix. It stays on cleanup's list until remove (idempotent)
// removes it, so that a command exiting at once on a second signal leaves
// no scratch directory behind.
func tempDir(prefix string) (dir string, remove func(), err error) {
	done := cleanup.Creating() // an exit at once waits until dir is registered
	defer done()
	dir, err = os.MkdirTemp(scratchRoot(), prefix)
	if err != nil {
		return "", nil, err
	}
	unregister := cleanup.Register(func() { _ = os.RemoveAll(dir) })
	var once sync.Once
	return dir, func() {
		once.Do(func() {
			_ = os.RemoveAll(dir)
			unregister()
		})
	}, nil
}

// shmDir is Linux's memory filesystem (tmpfs), where scratch directories
// go unless TMPDIR names another place.
const shmDir = "/dev/shm"

// scratchRoot is where QEMU's scratch directories (recordings, the
// recovery pool's states, pattern files) are made: TMPDIR when it is set,
// else a memory filesystem when there is one (Linux's /dev/shm), else
// os.TempDir(). A scratch file never needs to survive a power loss (a
// recording's crash states are rebuilt from QEMU's blklogwrites log, not
// from the file system), so there the flushes QEMU issues (a recording
// flushes its log's super block after every write; a recovery flushes
// twice) cost nothing, while on a disk file system each is a real
// fdatasync: most of a recorded write's wall time on the development
// machine's ext4 (27 ms against 11 on tmpfs). QEMU does the same in both
// places; only the kernel's work under it differs.
//
// A memory filesystem is used only when it has at least minShmFree bytes
// free: containers often mount a small /dev/shm (Docker's default is 64
// MiB), where a campaign's scratch images would run out of space and the
// campaign would skip or misjudge workloads for a reason that is not the
// target's. Files there use memory outside --memory-budget; a campaign of
// huge geometries should set TMPDIR.
func scratchRoot() string {
	if os.Getenv("TMPDIR") != "" || runtime.GOOS != "linux" {
		return os.TempDir()
	}
	shmOnce.Do(func() { shmOK = usableScratch(shmDir) })
	if shmOK {
		return shmDir
	}
	return os.TempDir()
}

// minShmFree is the free space a memory filesystem needs to hold the
// scratch directories (see scratchRoot).
const minShmFree = 1 << 30

var (
	shmOnce sync.Once
	shmOK   bool // /dev/shm is a directory this process can write
)

// usableScratch reports whether dir is a directory this process can make
// scratch directories in, with at least minShmFree bytes free.
func usableScratch(dir string) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	d, err := os.MkdirTemp(dir, "qedtorture-probe-")
	if err != nil {
		return false
	}
	_ = os.Remove(d)
	free, ok := freeBytes(dir)
	return ok && free >= minShmFree
}
