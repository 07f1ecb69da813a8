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
func scratchRoot() string {
	if os.Getenv("TMPDIR") != "" || runtime.GOOS != "linux" {
		return os.TempDir()
	}
	shmOnce.Do(func() {
		if fi, err := os.Stat(shmDir); err == nil && fi.IsDir() {
			if d, err := os.MkdirTemp(shmDir, "qedtorture-probe-"); err == nil {
				_ = os.Remove(d)
				shmOK = true
			}
		}
	})
	if shmOK {
		return shmDir
	}
	return os.TempDir()
}

var (
	shmOnce sync.Once
	shmOK   bool // /dev/shm is a directory this process can write
)
