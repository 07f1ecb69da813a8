package crashsim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Piece is a part of an unsynced data operation that a crash state keeps:
// Len bytes at Off of the file at Path (its durable name), Data or
// zeros. A truncate that shrinks keeps zeros from its new length on (Len
// is then math.MaxInt64-Off). Pieces say nothing of lengths: a state's
// file lengths (the size effect, truncates) are the state's own.
type Piece struct {
	Op      int    // the operation: an index into Point.Unsynced()
	Path    string // the file's durable path
	Off     int64
	Len     int64
	Data    []byte // the bytes kept (read-only; len(Data) == Len); nil: zeros
	Garbage bool   // Data is a trashed sector's garbage, not the op's own bytes
}

// AppendPieces appends to dst the pieces of the unsynced operations that
// the state id keeps, operation by operation in the order State applies
// them (one operation's pieces are disjoint, in ascending order), and
// returns it.
// Guarantee (TestAppendPiecesRebuilds): the state's files are exactly the
// durable files with each piece written over them in turn (zeros for a
// piece without Data), up to the lengths the state reports, and read
// zeros past them. For a non-garbage piece of a write, Data is
// Unsynced()[Op].Data[Off-op.Off:][:Len]. A caller can thus say what a
// state holds in time proportional to the pieces, not to their bytes
// (the campaign's dedup key: the hashes of each operation's bytes are
// computed once per point, not once per state).
func (p *Point) AppendPieces(dst []Piece, id StateID) ([]Piece, error) {
	if id.K != p.k {
		return dst, fmt.Errorf("%w: %s: crash point is k=%d", ErrBadStateID, id, p.k)
	}
	if err := id.Model.Validate(); err != nil {
		return dst, fmt.Errorf("%w: %s: %w", ErrBadStateID, id, err)
	}
	ch, err := p.choices(id)
	if err != nil {
		return dst, err
	}
	var names map[uint64]string
	var sizes map[uint64]int64
	for i := range p.ops {
		c := ch[i]
		if c.mode == choiceLost && !c.size {
			continue
		}
		o := &p.ops[i]
		if names == nil {
			names, sizes = make(map[uint64]string, len(p.img.names)), map[uint64]int64{}
			for n, fid := range p.img.names {
				names[fid] = n
			}
		}
		size, ok := sizes[o.File]
		if !ok {
			size = p.img.files[o.File].c.size
		}
		start := len(dst)
		applyChoice(&size, o, c, id.Model.Sector, func(x ovlOp) {
			pc := Piece{Op: i, Path: names[o.File], Off: x.off, Len: x.n, Data: x.data}
			switch {
			case x.n == zeroToEnd:
				pc.Len = math.MaxInt64 - x.off
			case x.torn != nil:
				// A torn write's kept sectors: one piece per run of them.
				x.each(x.off, x.off+x.n, func(a, b int64) {
					dst = append(dst, Piece{Op: i, Path: pc.Path, Off: a, Len: b - a, Data: x.data[a-x.off : b-x.off]})
				})
				return
			}
			pc.Garbage = x.data != nil && o.Kind == OpWrite && c.mode == choiceTorn && !sameBytes(x.data, o.Data, x.off-o.Off)
			dst = append(dst, pc)
		})
		// One op's pieces are disjoint: in ascending order.
		slices.SortFunc(dst[start:], func(a, b Piece) int { return cmp.Compare(a.Off, b.Off) })
		sizes[o.File] = size
	}
	return dst, nil
}

// sameBytes reports whether b is data[at:at+len(b)] itself (the same
// memory, not equal bytes).
func sameBytes(b, data []byte, at int64) bool {
	return len(b) > 0 && at >= 0 && at < int64(len(data)) && &b[0] == &data[at]
}
