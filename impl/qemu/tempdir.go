package qemu

import (
	"os"
	"sync"

	"github.com/qedtorture/qedtorture/internal/cleanup"
)

// tempDir creates a scratch directory in os.TempDir() named prefix plus a
// random suffix. It stays on cleanup's list until remove (idempotent)
// removes it, so that a command exiting at once on a second signal leaves
// no scratch directory behind.
func tempDir(prefix string) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
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
