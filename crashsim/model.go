package crashsim

import (
	"fmt"
	"strconv"
	"strings"
)

// Base is the core of a crash model: which unsynced operations survive.
type Base uint8

const (
	// Prefix: the first j unsynced operations survive (global issue order).
	Prefix Base = iota + 1
	// Drop: no unsynced operation survives.
	Drop
	// Subset: each unsynced operation survives or not, independently.
	Subset
	// Torn: like Subset, and a surviving write may keep only some of its
	// sectors (Model.Sector granularity, aligned to file offsets).
	Torn
)

// Model is a crash model: a Base plus its options.
//
// Choice counts per unsynced operation (their product is the state count,
// except Prefix which counts sum over j of the size choices of the lost
// suffix):
//
//	drop    write: 1 (2 with Size if extending)    truncate/discard: 1
//	subset  write: 2 (3 with Size if extending)    truncate/discard: 2
//	torn    write of s sectors: 2^s (3^s with Garbage), x2 with Size if extending
//	        truncate/discard: 2
//
// A torn write that extends its file extends it to the end of its last
// surviving (or trashed) sector, and to its full end with the Size choice.
// A choice vector is a state; distinct vectors may give equal bytes (two
// writes of the same data, a torn write keeping all its sectors plus the
// size choice), so Count counts vectors, not distinct byte images.
type Model struct {
	Base Base
	// Sector is the tearing granularity of Torn: 512 or 4096.
	Sector int
	// Garbage (Torn only): a lost sector may instead hold garbage (fixed
	// pseudo-random bytes derived from the write's index and the sector).
	Garbage bool
	// Size: a write that extended its file and did not fully survive may
	// still leave the new length, the gap reading as zeros.
	Size bool
}

// String returns the model's name as ParseModel reads it, e.g. "subset",
// "torn512+garbage+size", "prefix+size".
func (m Model) String() string {
	var s string
	switch m.Base {
	case Prefix:
		s = "prefix"
	case Drop:
		s = "drop"
	case Subset:
		s = "subset"
	case Torn:
		if m.Sector == 4096 {
			s = "torn4k"
		} else {
			s = "torn" + strconv.Itoa(m.Sector)
		}
	default:
		return fmt.Sprintf("Model(%d)", m.Base)
	}
	if m.Garbage {
		s += "+garbage"
	}
	if m.Size {
		s += "+size"
	}
	return s
}

// Validate reports whether the model is consistent.
func (m Model) Validate() error {
	switch m.Base {
	case Prefix, Drop, Subset:
		if m.Garbage || m.Sector != 0 {
			return fmt.Errorf("%w: %s: garbage and sector apply to torn only", ErrBadModel, m)
		}
	case Torn:
		if m.Sector != 512 && m.Sector != 4096 {
			return fmt.Errorf("%w: torn sector %d (want 512 or 4096)", ErrBadModel, m.Sector)
		}
	default:
		return fmt.Errorf("%w: unknown base %d", ErrBadModel, m.Base)
	}
	return nil
}

// Models lists every base model with its usual variants, weakest first.
func Models() []Model {
	return []Model{
		{Base: Prefix}, {Base: Drop}, {Base: Subset},
		{Base: Torn, Sector: 512}, {Base: Torn, Sector: 4096},
		{Base: Torn, Sector: 512, Garbage: true},
		{Base: Subset, Size: true}, {Base: Torn, Sector: 4096, Size: true},
	}
}

// ParseModel reads a model name: prefix, drop, subset, torn512, torn4k
// (or torn4096), each optionally followed by +garbage (torn only) and
// +size, in any order.
func ParseModel(s string) (Model, error) {
	parts := strings.Split(s, "+")
	var m Model
	switch parts[0] {
	case "prefix":
		m.Base = Prefix
	case "drop":
		m.Base = Drop
	case "subset":
		m.Base = Subset
	case "torn512":
		m = Model{Base: Torn, Sector: 512}
	case "torn4k", "torn4096":
		m = Model{Base: Torn, Sector: 4096}
	default:
		return Model{}, fmt.Errorf("%w: %q: unknown base %q (want prefix, drop, subset, torn512 or torn4k)", ErrBadModel, s, parts[0])
	}
	for _, opt := range parts[1:] {
		switch {
		case opt == "garbage" && !m.Garbage:
			m.Garbage = true
		case opt == "size" && !m.Size:
			m.Size = true
		default:
			return Model{}, fmt.Errorf("%w: %q: bad or repeated option %q (want garbage or size)", ErrBadModel, s, opt)
		}
	}
	if err := m.Validate(); err != nil {
		return Model{}, fmt.Errorf("%w (in %q)", err, s)
	}
	return m, nil
}

// StateID identifies one crash state of a crash point: the point's index
// K, the model, and either the ordinal of an exhaustively enumerated
// choice vector or the seed of a sampled one. Its String form, e.g.
// "k=17/subset/5" or "k=17/torn512+garbage/seed=123", parses back with
// ParseStateID and rebuilds the same bytes through Point.State.
type StateID struct {
	K       int64
	Model   Model
	Sampled bool
	Ordinal uint64 // when !Sampled
	Seed    uint64 // when Sampled
}

func (id StateID) String() string {
	if id.Sampled {
		return fmt.Sprintf("k=%d/%s/seed=%d", id.K, id.Model, id.Seed)
	}
	return fmt.Sprintf("k=%d/%s/%d", id.K, id.Model, id.Ordinal)
}

// ParseStateID parses the String form of a StateID.
func ParseStateID(s string) (StateID, error) {
	bad := func(why string) (StateID, error) {
		return StateID{}, fmt.Errorf("%w: %q: %s", ErrBadStateID, s, why)
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return bad("want k=N/model/ordinal or k=N/model/seed=N")
	}
	ks, ok := strings.CutPrefix(parts[0], "k=")
	if !ok {
		return bad("first part must be k=N")
	}
	k, err := strconv.ParseInt(ks, 10, 64)
	if err != nil || k < 0 {
		return bad("crash point " + strconv.Quote(ks) + " is not a non-negative integer")
	}
	m, err := ParseModel(parts[1])
	if err != nil {
		return StateID{}, fmt.Errorf("%w: %q: %w", ErrBadStateID, s, err)
	}
	id := StateID{K: k, Model: m}
	if ss, ok := strings.CutPrefix(parts[2], "seed="); ok {
		id.Sampled = true
		if id.Seed, err = strconv.ParseUint(ss, 10, 64); err != nil {
			return bad("seed " + strconv.Quote(ss) + " is not an unsigned integer")
		}
	} else if id.Ordinal, err = strconv.ParseUint(parts[2], 10, 64); err != nil {
		return bad("ordinal " + strconv.Quote(parts[2]) + " is not an unsigned integer")
	}
	return id, nil
}
