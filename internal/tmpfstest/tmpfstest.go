// Package tmpfstest gives tests small real file systems to fail on: a
// tmpfs of a few pages (a full disk) or a read-only one.
//
// Mounting needs root (tests run as root here and in CI). When the mount
// is impossible the test is skipped, unless the environment variable CI is
// non-empty: there it fails, so the safety tests cannot silently vanish.
package tmpfstest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// TB is the part of testing.TB these helpers use; it keeps the testing
// package out of the non-test code of the project.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Mount mounts a tmpfs with the mount options opts (e.g. "size=64k",
// "ro") on a fresh directory and returns it; it is unmounted when the test
// ends.
func Mount(t TB, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount(dir, opts); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and mounting a tmpfs (%s) failed: %v", opts, err)
		}
		t.Skipf("skipping: cannot mount a tmpfs (%s): %v", opts, err)
	}
	t.Cleanup(func() {
		if err := unmount(dir); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file in dir until its file system is full (ENOSPC), so
// that the next write of any data fails; creating an empty file still
// works.
func Fill(t TB, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}
