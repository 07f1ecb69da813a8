package imagelock

import (
	"errors"
	"fmt"
	"strings"
)

// Perm is a set of QEMU block permissions (BLK_PERM_* in QEMU's
// include/block/block-common.h).
type Perm uint8

// The permissions, with QEMU's bit values.
const (
	ConsistentRead Perm = 1 << 0
	Write          Perm = 1 << 1
	WriteUnchanged Perm = 1 << 2
	Resize         Perm = 1 << 3

	// All is every permission QEMU 7.2 locks (BLK_PERM_ALL).
	All = ConsistentRead | Write | WriteUnchanged | Resize
)

// Lock byte bases of block/file-posix.c: byte PermBase+n is locked by an
// open holding permission n, byte SharedBase+n by one not sharing it.
const (
	PermBase   = 100
	SharedBase = 200
)

// permBits is how many permission bits there are (bits 0..permBits-1).
const permBits = 4

var permNames = [permBits]string{"consistent read", "write", "write unchanged", "resize"}

// String names the permissions as QEMU's bdrv_perm_names does
// ("consistent read, write").
func (p Perm) String() string {
	var names []string
	for i := range permBits {
		if p&(1<<i) != 0 {
			names = append(names, permNames[i])
		}
	}
	return strings.Join(names, ", ")
}

// Mode is what an open asks for: the permissions it holds and those it
// lets others hold.
type Mode struct {
	Hold  Perm
	Share Perm
}

// The modes of QEMU 7.2's image opens (see the package doc).
var (
	// ReadWrite is a writable open: it excludes other writers and plain
	// readers.
	ReadWrite = Mode{Hold: ConsistentRead | Write | Resize, Share: ConsistentRead | WriteUnchanged}
	// ReadOnly is a read-only open: it coexists with readers and excludes
	// writers.
	ReadOnly = Mode{Hold: ConsistentRead, Share: All &^ (Write | Resize)}
	// ForceShare is a read-only open with force-share (qemu-img -U): it
	// coexists with everything, a writer included.
	ForceShare = Mode{Hold: ConsistentRead, Share: All}
)

// ErrLocked is what a *ConflictError matches with errors.Is.
var ErrLocked = errors.New("image is locked by another user")

// ConflictError reports that another open of the file (another process,
// or another open file in this one) holds a lock the mode conflicts with.
type ConflictError struct {
	Path string
	// Perm is the permission in conflict.
	Perm Perm
	// Shared is false when we want to hold Perm and someone does not share
	// it ("Failed to get "write" lock"), true when we do not share Perm and
	// someone holds it ("Failed to get shared "write" lock").
	Shared bool
}

func (e *ConflictError) Error() string {
	shared := ""
	if e.Shared {
		shared = "shared "
	}
	return fmt.Sprintf("Failed to get %s%q lock: is another process using the image [%s]?", shared, e.Perm.String(), e.Path)
}

// Is makes errors.Is(err, ErrLocked) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrLocked }
