package iocount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sentinel errors.
var (
	// ErrDMLog marks a malformed dm-log-writes log (wrapped by *DMLogError).
	ErrDMLog = errors.New("iocount: malformed dm-log-writes log")
)

// DMLogError is a malformed log: which entry (-1 for the super block),
// the byte offset of the field, its name and value.
type DMLogError struct {
	Entry  int64
	Offset int64
	Field  string
	Value  uint64
	Reason string
}

func (e *DMLogError) Error() string {
	where := "super block"
	if e.Entry >= 0 {
		where = fmt.Sprintf("entry %d", e.Entry)
	}
	return fmt.Sprintf("iocount: dm-log %s: %s = %d at offset %d: %s", where, e.Field, e.Value, e.Offset, e.Reason)
}

func (e *DMLogError) Unwrap() error { return ErrDMLog }

// dm-log-writes layout (little-endian, S = sector size from the super
// block; see crashsim/dmlog.go for the full drawing):
//
//	block 0: magic u64 @0, version u64 @8, nr_entries u64 @16, sectorsize u32 @24
//	entry:   S-byte header (sector u64 @0, nr_sectors u64 @8, flags u64 @16,
//	         data_len u64 @24), then nr_sectors*S data bytes unless DISCARD
const (
	dmMagic   = 0x6a736677736872
	dmVersion = 1

	dmFlush   = 1 << 0
	dmFUA     = 1 << 1
	dmDiscard = 1 << 2
	dmMark    = 1 << 3
	dmMeta    = 1 << 4
	dmKnown   = dmFlush | dmFUA | dmDiscard | dmMark | dmMeta
)

// ReadDMLog counts the committed entries of a dm-log-writes log of size
// bytes: writes and their bytes, syncs (FLUSH and FUA flags), discards.
// Only entry headers are read.
func ReadDMLog(r io.ReaderAt, size int64) (Counts, error) {
	le := binary.LittleEndian
	bad := func(entry, off int64, field string, v uint64, reason string) (Counts, error) {
		return Counts{}, &DMLogError{Entry: entry, Offset: off, Field: field, Value: v, Reason: reason}
	}
	var sb [28]byte
	if size < int64(len(sb)) {
		return bad(-1, 0, "size", uint64(max(size, 0)), "too short for a super block")
	}
	if _, err := r.ReadAt(sb[:], 0); err != nil {
		return Counts{}, fmt.Errorf("iocount: dm-log: reading super block: %w", err)
	}
	if v := le.Uint64(sb[0:]); v != dmMagic {
		return bad(-1, 0, "magic", v, "not a dm-log-writes log")
	}
	if v := le.Uint64(sb[8:]); v != dmVersion {
		return bad(-1, 8, "version", v, "unsupported version (want 1)")
	}
	s := int64(le.Uint32(sb[24:]))
	if s < 512 || s > 1<<20 || s&(s-1) != 0 {
		return bad(-1, 24, "sectorsize", uint64(s), "not a power of two in [512, 1 MiB]")
	}
	nr := le.Uint64(sb[16:])
	if nr > uint64(size/s) {
		return bad(-1, 16, "nr_entries", nr, fmt.Sprintf("more entries than the %d-byte log can hold", size))
	}
	var c Counts
	var hdr [24]byte
	pos := s
	for i := range int64(nr) {
		if size-pos < s {
			return bad(i, pos, "entry header", 0, "runs past the end of the log")
		}
		if _, err := r.ReadAt(hdr[:], pos); err != nil {
			return Counts{}, fmt.Errorf("iocount: dm-log: entry %d at offset %d: %w", i, pos, err)
		}
		nsec := le.Uint64(hdr[8:])
		flags := le.Uint64(hdr[16:])
		if flags&^dmKnown != 0 {
			return bad(i, pos+16, "flags", flags, "unknown flag bits")
		}
		pos += s
		if flags&dmFlush != 0 {
			c.Syncs++
		}
		if flags&dmDiscard != 0 {
			c.Discards++
		} else if nsec > 0 {
			if nsec > uint64((size-pos)/s) {
				return bad(i, pos-s+8, "nr_sectors", nsec, fmt.Sprintf("data runs past the end of the log (%d bytes left)", size-pos))
			}
			c.Writes++
			c.WriteBytes += int64(nsec) * s
			pos += int64(nsec) * s
		}
		if flags&dmFUA != 0 {
			c.Syncs++
		}
	}
	return c, nil
}
