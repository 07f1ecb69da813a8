// Package imagelock takes the advisory image locks QEMU takes, so that
// qedtorture and QEMU (qemu-img, qemu-io, a running VM) see each other's
// opens of an image file and refuse the combinations QEMU refuses.
//
// # The protocol (QEMU 7.2, block/file-posix.c)
//
// QEMU describes an open of a file by two sets of block permissions
// (include/block/block-common.h): the permissions it holds and those it
// shares with other users. There are four: consistent read (bit 0), write
// (bit 1), write unchanged (bit 2) and resize (bit 3). An open holding
// permission n takes a shared (read) byte-range lock on byte 100+n; an open
// not sharing permission n takes a shared lock on byte 200+n. All locks are
// shared locks, so taking them never fails because of another holder;
// conflicts are found afterwards by testing (F_OFD_GETLK with an exclusive
// lock type) for a lock by anyone else:
//
//   - for each permission n it holds, byte 200+n: someone does not share n
//     ("Failed to get "write" lock");
//   - for each permission n it does not share, byte 100+n: someone holds n
//     ("Failed to get shared "write" lock").
//
// The locks are open-file-description locks (F_OFD_SETLK): they belong to
// the open file, not the process, so two opens of one file in the same
// process conflict like two processes, and closing the file releases them.
//
// What QEMU 7.2 takes (seen in /proc/locks): a writable open of an image
// holds consistent read, write and resize and shares consistent read and
// write unchanged (bytes 100, 101, 103, 201, 203); a read-only open holds
// consistent read and shares all but write and resize (bytes 100, 201,
// 203); a read-only open with force-share (qemu-img -U) holds consistent
// read and shares everything (byte 100). Hence a writer excludes every
// other writer and every plain reader, readers coexist, and a -U reader
// coexists with anything. The modes ReadWrite, ReadOnly and ForceShare are
// exactly these sets.
//
// # Guarantees
//
//   - Lock either leaves the file holding all the lock bytes of the mode
//     and returns nil, or returns an error and releases the bytes it took.
//     A conflict is a *ConflictError (errors.Is ErrLocked) whose message is
//     QEMU's, naming the file once.
//   - A file system that does not support byte-range locks (EINVAL, ENOLCK,
//     EOPNOTSUPP, ENOSYS) is used unlocked, as QEMU's default locking=auto
//     does where OFD locks are unavailable.
//
// # Caveats
//
// Linux only: other systems have no open-file-description locks (the
// process-associated fcntl locks are dropped by any close of the file in
// the process, which would silently unlock an image), so there Lock does
// nothing and Supported is false. Locks are advisory: a program that takes
// none (dd, an editor) is not stopped. The lock protects the open file, not
// the name: a file renamed over the path is a new file.
package imagelock
