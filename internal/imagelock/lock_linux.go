//go:build linux

package imagelock

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Supported reports whether Lock takes locks on this system.
const Supported = true

// Lock takes the lock bytes of m on f (shared open-file-description locks,
// as QEMU does) and then tests for conflicting locks held by any other
// open of the file. On a conflict it releases the bytes it took and returns
// a *ConflictError naming path. Locks are released when f is closed, or by
// Unlock.
func Lock(f *os.File, path string, m Mode) error {
	fd := int(f.Fd())
	var taken []int64
	release := func() {
		for _, off := range taken {
			_ = setlk(fd, unix.F_UNLCK, off)
		}
	}
	// Step one: take our bytes (QEMU's raw_apply_lock_bytes).
	for i := range permBits {
		bit := Perm(1 << i)
		for _, b := range []struct {
			want bool
			off  int64
		}{{m.Hold&bit != 0, PermBase + int64(i)}, {m.Share&bit == 0, SharedBase + int64(i)}} {
			if !b.want {
				continue
			}
			if err := setlk(fd, unix.F_RDLCK, b.off); err != nil {
				release()
				if unsupported(err) {
					return nil
				}
				return fmt.Errorf("%s: lock byte %d: %w", path, b.off, err)
			}
			taken = append(taken, b.off)
		}
	}
	// Step two: test for conflicts (raw_check_lock_bytes): someone not
	// sharing what we hold, then someone holding what we do not share.
	for i := range permBits {
		bit := Perm(1 << i)
		if m.Hold&bit != 0 {
			if err := conflict(fd, path, SharedBase+int64(i), bit, false); err != nil {
				release()
				return err
			}
		}
	}
	for i := range permBits {
		bit := Perm(1 << i)
		if m.Share&bit == 0 {
			if err := conflict(fd, path, PermBase+int64(i), bit, true); err != nil {
				release()
				return err
			}
		}
	}
	return nil
}

// Unlock releases every lock byte of f.
func Unlock(f *os.File) error {
	fd := int(f.Fd())
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: PermBase, Len: SharedBase + permBits - PermBase}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); err != nil && !unsupported(err) {
		return err
	}
	return nil
}

func setlk(fd int, typ int16, off int64) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// conflict tests byte off for a lock held by another open file
// (qemu_lock_fd_test with an exclusive lock type).
func conflict(fd int, path string, off int64, p Perm, shared bool) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	var err error
	for {
		err = unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case err != nil && unsupported(err):
		return nil
	case err != nil:
		return fmt.Errorf("%s: test lock byte %d: %w", path, off, err)
	case lk.Type != unix.F_UNLCK:
		return &ConflictError{Path: path, Perm: p, Shared: shared}
	}
	return nil
}

// unsupported reports the errors of a file system without byte-range
// locks.
func unsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOLCK) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
}

// Probe reports the lock bytes of f that other opens of the file hold:
// the permissions someone holds and those someone does not share.
func Probe(f *os.File) (held, unshared Perm, err error) {
	fd := int(f.Fd())
	for i := range permBits {
		for _, b := range []struct {
			off int64
			set *Perm
		}{{PermBase + int64(i), &held}, {SharedBase + int64(i), &unshared}} {
			lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: b.off, Len: 1}
			if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
				return 0, 0, err
			}
			if lk.Type != unix.F_UNLCK {
				*b.set |= 1 << i
			}
		}
	}
	return held, unshared, nil
}
