package model

import "encoding/binary"

// Pattern word layout: word = mix(id<<patternOffBits | w>>3) for the 8-byte
// aligned guest offset w.
const (
	patternOffBits = 40

	// MaxPatternID is the largest pattern id.
	MaxPatternID = 1<<(64-patternOffBits) - 1
	// MaxSize is the largest disk size the model accepts (8 TiB): every
	// aligned word offset below it is encoded exactly in a pattern word.
	MaxSize = int64(1) << (patternOffBits + 3)
	// SectorSize is the unit disk sizes must be a multiple of.
	SectorSize = 512
)

const (
	mixK1 = 0xbf58476d1ce4e5b9
	mixK2 = 0x94d049bb133111eb
)

// Modular inverses of mixK1 and mixK2, computed once (Newton's iteration).
var mixK1Inv, mixK2Inv = inverse64(mixK1), inverse64(mixK2)

func inverse64(c uint64) uint64 {
	inv := c // correct to 3 bits for odd c
	for i := 0; i < 6; i++ {
		inv *= 2 - c*inv
	}
	return inv
}

// mix is the splitmix64 finalizer: a bijection on uint64 with mix(0) = 0.
func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= mixK1
	z ^= z >> 27
	z *= mixK2
	z ^= z >> 31
	return z
}

func unxorshift(x uint64, k uint) uint64 {
	y := x
	for i := uint(0); i < 64; i += k {
		y = x ^ y>>k
	}
	return y
}

func unmix(z uint64) uint64 {
	z = unxorshift(z, 31)
	z *= mixK2Inv
	z = unxorshift(z, 27)
	z *= mixK1Inv
	z = unxorshift(z, 30)
	return z
}

// PatternWord returns the little-endian pattern word of write id at the
// 8-byte-aligned guest offset w (w is rounded down to a multiple of 8).
func PatternWord(id uint64, w int64) uint64 {
	return mix(id<<patternOffBits | uint64(w>>3)&(1<<patternOffBits-1))
}

// PatternByte returns the byte at guest offset off of the data of write id.
func PatternByte(id uint64, off int64) byte {
	return byte(PatternWord(id, off) >> (8 * uint(off&7)))
}

// Fill writes into p the data of pattern write id as placed at guest offset
// off: p[i] = PatternByte(id, off+i).
func Fill(p []byte, id uint64, off int64) {
	if len(p) == 0 {
		return
	}
	var w [8]byte
	if head := off & 7; head != 0 {
		binary.LittleEndian.PutUint64(w[:], PatternWord(id, off))
		n := copy(p, w[head:])
		p, off = p[n:], off+int64(n)
	}
	// Four words at a time: their mixes are independent, so the CPU
	// overlaps them (perf: the sector rule and Verify generate every
	// pending write's bytes they compare).
	base, k := id<<patternOffBits, uint64(off>>3)
	const mask = 1<<patternOffBits - 1
	for len(p) >= 32 {
		_ = p[31]
		binary.LittleEndian.PutUint64(p[0:], mix(base|k&mask))
		binary.LittleEndian.PutUint64(p[8:], mix(base|(k+1)&mask))
		binary.LittleEndian.PutUint64(p[16:], mix(base|(k+2)&mask))
		binary.LittleEndian.PutUint64(p[24:], mix(base|(k+3)&mask))
		p, k = p[32:], k+4
	}
	off = int64(k << 3)
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, PatternWord(id, off))
		p, off = p[8:], off+8
	}
	if len(p) > 0 {
		binary.LittleEndian.PutUint64(w[:], PatternWord(id, off))
		copy(p, w[:])
	}
}

// DecodeWord inverts a pattern word: the id and the aligned guest offset it
// was generated for. Every word decodes to something; id 0 means "not a
// pattern word" (which includes all zeros). Whether the id was ever issued
// is for the caller (or [Disk.Identify]) to judge.
func DecodeWord(word uint64) (id uint64, w int64) {
	x := unmix(word)
	return x >> patternOffBits, int64(x&(1<<patternOffBits-1)) << 3
}

// Match describes where pattern data found in a buffer came from.
type Match struct {
	ID     uint64 // pattern id
	Index  int    // index in the buffer of the first byte covered by the match
	Len    int    // bytes from Index on that equal the pattern
	SrcOff int64  // guest offset the byte at Index was generated for
}

// minMatch is the length a match must have (or all of p, if shorter).
const minMatch = 16

// Identify looks for pattern data in p and reports the longest consistent
// match that starts in the first 16 bytes of p, trying every byte shift.
// known says which ids count (nil: any id). Every 8-byte word decodes to
// some id, so a match must cover 16 bytes (two words: a chance match has
// odds of about 2^-64), or all of p if p is shorter; with fewer than 8
// bytes nothing can be identified, and with 8 to 15 a garbage word passes
// with odds of (number of known ids)/2^24. Whether the data was allowed
// where it was read is for the caller: the byte p[Index] read at guest
// offset o was generated for SrcOff, so o != SrcOff means misplaced data.
func Identify(p []byte, known func(id uint64) bool) (Match, bool) {
	var best Match
	found := false
	for i := 0; i+8 <= len(p) && i < 16; i++ {
		id, w := DecodeWord(binary.LittleEndian.Uint64(p[i:]))
		if id == 0 || (known != nil && !known(id)) {
			continue
		}
		// Extend backwards (at most 7 bytes) and forwards.
		start := i
		for start > 0 && p[start-1] == PatternByte(id, w+int64(start-1-i)) {
			start--
		}
		end := i + 8
		for end < len(p) && p[end] == PatternByte(id, w+int64(end-i)) {
			end++
		}
		if end-start < min(len(p), minMatch) {
			continue // a single word names a "known" id by chance too often
		}
		if !found || end-start > best.Len {
			best = Match{ID: id, Index: start, Len: end - start, SrcOff: w + int64(start-i)}
			found = true
		}
	}
	return best, found
}
