package crashsim

import (
	"fmt"
	"iter"
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
)

// Point is a crash point: the durable state of a filesystem just before
// operation K plus the unsynced data operations (writes, truncates,
// discards) of the files that have a durable name, in issue order. It is
// immutable and safe for concurrent use; every state built from it is an
// independent FS sharing the durable pages copy-on-write.
type Point struct {
	k    int64
	img  *Image // durable namespace and contents (the "drop" state)
	ops  []Op   // unsynced data ops of files in img, by Index
	opts Options
}

// K returns the index of the operation the crash happens just before.
func (p *Point) K() int64 { return p.k }

// Durable returns the durable image: every file as of its last Sync,
// every directory entry as of its directory's last sync.
func (p *Point) Durable() *Image { return p.img }

// Unsynced returns the unsynced data operations a crash may lose or keep.
func (p *Point) Unsynced() []Op { return slices.Clone(p.ops) }

// Default enumeration bounds.
const (
	DefaultBound   = 4096
	DefaultSamples = 256
)

// EnumOptions bound an enumeration.
type EnumOptions struct {
	// Bound: every state is enumerated, in ordinal order, when the count
	// is at most Bound (0 = DefaultBound).
	Bound uint64
	// Samples: how many states are drawn above the bound (0 = DefaultSamples).
	Samples int
	// Seed drives the sample; sampled state i has seed mix(Seed, i).
	Seed uint64
}

// pieces returns how many g-aligned blocks the range [off, end) touches.
func pieces(off, end int64, g int64) int64 {
	if end <= off {
		return 0
	}
	return (end-1)/g - off/g + 1
}

func (p *Point) extending(i int) bool { return p.ops[i].Kind == OpWrite && p.ops[i].Extends }

// radix returns the number of choices for op i under m (not Prefix), as a
// big integer, and as a uint64 when it fits.
func (p *Point) radix(m Model, i int) *big.Int {
	o := &p.ops[i]
	sz := int64(1)
	if m.Size && p.extending(i) {
		sz = 2
	}
	switch m.Base {
	case Drop:
		return big.NewInt(sz)
	case Subset:
		if sz == 2 {
			return big.NewInt(3)
		}
		return big.NewInt(2)
	}
	if o.Kind != OpWrite {
		return big.NewInt(2)
	}
	base := int64(2)
	if m.Garbage {
		base = 3
	}
	s := pieces(o.Off, o.end(), int64(m.Sector))
	r := new(big.Int).Exp(big.NewInt(base), big.NewInt(s), nil)
	return r.Mul(r, big.NewInt(sz))
}

// radix64 is radix for callers that know it fits (the total count does,
// or the model is not Torn); it saturates at MaxUint64 otherwise.
func (p *Point) radix64(m Model, i int) uint64 {
	sz := uint64(1)
	if m.Size && p.extending(i) {
		sz = 2
	}
	switch {
	case m.Base == Drop:
		return sz
	case m.Base == Subset:
		return 1 + sz
	case p.ops[i].Kind != OpWrite:
		return 2
	}
	if r := p.radix(m, i); r.IsUint64() {
		return r.Uint64()
	}
	return math.MaxUint64
}

// suffixExtending[j] = number of extending writes among ops[j:].
func (p *Point) suffixExtending() []int {
	e := make([]int, len(p.ops)+1)
	for j := len(p.ops) - 1; j >= 0; j-- {
		e[j] = e[j+1]
		if p.extending(j) {
			e[j]++
		}
	}
	return e
}

// CountBig returns the exact number of states (choice vectors) under m.
func (p *Point) CountBig(m Model) *big.Int {
	if m.Base == Prefix {
		if !m.Size {
			return big.NewInt(int64(len(p.ops)) + 1)
		}
		total := new(big.Int)
		for _, e := range p.suffixExtending() {
			total.Add(total, new(big.Int).Lsh(big.NewInt(1), uint(e)))
		}
		return total
	}
	total := big.NewInt(1)
	for i := range p.ops {
		total.Mul(total, p.radix(m, i))
	}
	return total
}

// Count returns the number of states under m, and false (with
// math.MaxUint64) when it does not fit in a uint64.
func (p *Point) Count(m Model) (uint64, bool) {
	c := p.CountBig(m)
	if !c.IsUint64() {
		return math.MaxUint64, false
	}
	return c.Uint64(), true
}

// choice is the fate of one unsynced operation in a state.
type choice struct {
	mode    uint8   // choiceLost, choiceFull or choiceTorn
	size    bool    // the write's new length survives
	sectors []uint8 // choiceTorn: per piece 0 lost, 1 kept, 2 garbage
}

const (
	choiceLost uint8 = iota
	choiceFull
	choiceTorn
)

// decodeOrdinal turns an ordinal into a choice vector (op 0 is the least
// significant digit; for Prefix, ordinals run over j ascending, then the
// size bits of the lost suffix).
func (p *Point) decodeOrdinal(m Model, ord uint64) []choice {
	ch := make([]choice, len(p.ops))
	if m.Base == Prefix {
		ext := p.suffixExtending()
		j := 0
		for ; j < len(p.ops); j++ {
			c := uint64(1)
			if m.Size {
				c <<= uint(ext[j])
			}
			if ord < c {
				break
			}
			ord -= c
		}
		for i := range ch[:j] {
			ch[i].mode = choiceFull
		}
		for i := j; i < len(p.ops); i++ {
			if m.Size && p.extending(i) {
				ch[i].size = ord&1 == 1
				ord >>= 1
			}
		}
		return ch
	}
	for i := range p.ops {
		r := p.radix64(m, i)
		d := ord % r
		ord /= r
		p.digitChoice(m, i, d, &ch[i])
	}
	return ch
}

// digitChoice decodes digit d (< radix) of op i.
func (p *Point) digitChoice(m Model, i int, d uint64, c *choice) {
	sz := m.Size && p.extending(i)
	switch m.Base {
	case Drop:
		c.size = d == 1
		return
	case Subset:
		if d == 1 {
			c.mode = choiceFull
		}
		c.size = d == 2
		return
	}
	o := &p.ops[i]
	if o.Kind != OpWrite {
		c.mode = uint8(d)
		return
	}
	if sz {
		c.size = d&1 == 1
		d >>= 1
	}
	base := uint64(2)
	if m.Garbage {
		base = 3
	}
	s := pieces(o.Off, o.end(), int64(m.Sector))
	secs := make([]uint8, s)
	all, none := true, true
	for k := range secs {
		secs[k] = uint8(d % base)
		d /= base
		all = all && secs[k] == 1
		none = none && secs[k] == 0
	}
	switch {
	case all:
		c.mode = choiceFull
	case none:
		c.mode = choiceLost
	default:
		c.mode, c.sectors = choiceTorn, secs
	}
}

// sampleChoices draws a choice vector from seed: prefix length uniform;
// each op of subset uniform over its choices; each torn write lost, kept
// or torn with probability 1/3 each, a torn one keeping (or trashing)
// each sector with probability 1/2 (1/3 each with garbage).
func (p *Point) sampleChoices(m Model, seed uint64) []choice {
	r := rand.New(rand.NewPCG(seed, 0x6372617368736d)) // "crashsm"
	ch := make([]choice, len(p.ops))
	if m.Base == Prefix {
		j := r.IntN(len(p.ops) + 1)
		for i := range ch {
			if i < j {
				ch[i].mode = choiceFull
			} else if m.Size && p.extending(i) {
				ch[i].size = r.IntN(2) == 1
			}
		}
		return ch
	}
	for i := range p.ops {
		o := &p.ops[i]
		if m.Base != Torn || o.Kind != OpWrite {
			p.digitChoice(m, i, r.Uint64N(p.radix64(m, i)), &ch[i])
			continue
		}
		if m.Size && o.Extends {
			ch[i].size = r.IntN(2) == 1
		}
		switch r.IntN(3) {
		case 0:
			ch[i].mode = choiceLost
		case 1:
			ch[i].mode = choiceFull
		default:
			base := 2
			if m.Garbage {
				base = 3
			}
			s := pieces(o.Off, o.end(), int64(m.Sector))
			secs := make([]uint8, s)
			for k := range secs {
				secs[k] = uint8(r.IntN(base))
			}
			ch[i] = choice{mode: choiceTorn, size: ch[i].size, sectors: secs}
		}
	}
	return ch
}

// State builds the crash state id names. It fails if id is for another
// crash point, if its model is invalid, or if its ordinal is out of range.
func (p *Point) State(id StateID) (*FS, error) { return p.state(id, p.opts) }

// FinalState is State for a state that will be judged and thrown away:
// the filesystem is made with Options.Final (and the point's
// ImplicitDirSync), so writes to it copy only the pages they change and it
// cannot be crashed again. Its contents are exactly State's.
func (p *Point) FinalState(id StateID) (*FS, error) {
	o := p.opts
	o.Final = true
	return p.state(id, o)
}

// state builds the crash state id names as a filesystem with options o.
func (p *Point) state(id StateID, o Options) (*FS, error) {
	if id.K != p.k {
		return nil, fmt.Errorf("%w: %s: crash point is k=%d", ErrBadStateID, id, p.k)
	}
	if err := id.Model.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadStateID, id, err)
	}
	ch, err := p.choices(id)
	if err != nil {
		return nil, err
	}
	return p.build(id.Model, ch, o), nil
}

// choices returns the choice vector of id, a state of p with a valid
// model.
func (p *Point) choices(id StateID) ([]choice, error) {
	if id.Sampled {
		return p.sampleChoices(id.Model, id.Seed), nil
	}
	if n, exact := p.Count(id.Model); exact && id.Ordinal >= n {
		return nil, fmt.Errorf("%w: %s: ordinal out of range (%d states)", ErrBadStateID, id, n)
	}
	return p.decodeOrdinal(id.Model, id.Ordinal), nil
}

// build applies the chosen operations over the durable image. Cost: the
// pages the kept operations touch plus O(entries) for the maps.
func (p *Point) build(m Model, ch []choice, o Options) *FS {
	img := p.img
	var files map[uint64]imgFile
	var touched []uint64
	gen := newGen()
	for i := range p.ops {
		c := ch[i]
		if c.mode == choiceLost && !c.size {
			continue
		}
		if files == nil {
			files = maps.Clone(p.img.files)
		}
		o := &p.ops[i]
		f := files[o.File]
		if len(f.c.ovl) >= maxOverlay {
			f.c.flatten(gen)
		}
		overlayChoice(&f.c, o, c, m.Sector)
		files[o.File] = f
		touched = append(touched, o.File)
	}
	// A shared overlay must have no spare capacity: the next build
	// appending to it must copy (see overlayChoice).
	for _, id := range touched {
		f := files[id]
		f.c.ovl = slices.Clip(f.c.ovl)
		files[id] = f
	}
	if files != nil {
		img = &Image{names: p.img.names, files: files, nextID: p.img.nextID}
	}
	return img.NewFS(o)
}

// overlayChoice records the surviving part of o in c's overlay (sharing
// o.Data) and updates the size. The overlay slice is copied on first
// append so overlays shared with other contents are never modified.
func overlayChoice(c *content, o *Op, ch choice, sector int) {
	applyChoice(&c.size, o, ch, sector, func(x ovlOp) {
		if cap(c.ovl) == len(c.ovl) {
			c.ovl = append(make([]ovlOp, 0, 2*len(c.ovl)+4), c.ovl...)
		}
		c.ovl = append(c.ovl, x)
	})
}

// applyChoice hands add the surviving parts of o under ch, in order, as
// overlay operations over a file of length *size, and updates *size: the
// one statement of what a choice keeps, for building a state
// (overlayChoice) and for describing it (Point.AppendPieces).
func applyChoice(size *int64, o *Op, ch choice, sector int, add func(ovlOp)) {
	switch ch.mode {
	case choiceFull:
		switch o.Kind {
		case OpWrite:
			if len(o.Data) > 0 {
				add(ovlOp{off: o.Off, n: int64(len(o.Data)), data: o.Data})
				*size = max(*size, o.end())
			}
		case OpTruncate:
			if o.Size < *size {
				add(ovlOp{off: o.Size, n: zeroToEnd})
			}
			*size = o.Size
		case OpDiscard:
			if end := min(o.end(), *size); end > o.Off {
				add(ovlOp{off: o.Off, n: end - o.Off})
			}
		}
	case choiceTorn:
		// The kept sectors as one op with a mask, each garbage sector as
		// its own (they are disjoint: the order does not matter).
		g := int64(sector)
		off, end := o.Off, o.end()
		kept := false
		for k, s := range ch.sectors {
			lo := max(off, (off/g+int64(k))*g)
			hi := min(end, (off/g+int64(k)+1)*g)
			switch s {
			case 1:
				kept = true
			case 2:
				add(ovlOp{off: lo, n: hi - lo, data: garbage(o.Index, k, int(hi-lo))})
			}
			if s != 0 {
				*size = max(*size, hi)
			}
		}
		if kept {
			add(ovlOp{off: off, n: end - off, data: o.Data, torn: &tornMask{g: g, first: off / g, keep: ch.sectors}})
		}
	}
	if ch.size && o.end() > *size {
		*size = o.end() // the gap reads zeros: bytes past size are zero
	}
}

// garbage returns the fixed pseudo-random contents of a trashed sector.
func garbage(index int64, sector, n int) []byte {
	r := rand.New(rand.NewPCG(uint64(index), uint64(sector)))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// mix derives the seed of sampled state i from a master seed (splitmix64).
func mix(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// IDs yields the identities of the states of m: all of them, by ordinal,
// when the count is at most the bound; otherwise o.Samples sampled ones.
func (p *Point) IDs(m Model, o EnumOptions) iter.Seq[StateID] {
	bound, samples := o.Bound, o.Samples
	if bound == 0 {
		bound = DefaultBound
	}
	if samples == 0 {
		samples = DefaultSamples
	}
	return func(yield func(StateID) bool) {
		if m.Validate() != nil {
			return
		}
		if n, exact := p.Count(m); exact && n <= bound {
			for ord := range n {
				if !yield(StateID{K: p.k, Model: m, Ordinal: ord}) {
					return
				}
			}
			return
		}
		for i := range samples {
			if !yield(StateID{K: p.k, Model: m, Sampled: true, Seed: mix(o.Seed, uint64(i))}) {
				return
			}
		}
	}
}

// Exhaustive reports whether IDs(m, o) enumerates every state.
func (p *Point) Exhaustive(m Model, o EnumOptions) bool {
	bound := o.Bound
	if bound == 0 {
		bound = DefaultBound
	}
	n, exact := p.Count(m)
	return exact && n <= bound
}

// States yields every state IDs(m, o) names, built. An invalid model
// yields nothing (check m.Validate first).
func (p *Point) States(m Model, o EnumOptions) iter.Seq2[StateID, *FS] {
	return func(yield func(StateID, *FS) bool) {
		for id := range p.IDs(m, o) {
			var ch []choice
			if id.Sampled {
				ch = p.sampleChoices(m, id.Seed)
			} else {
				ch = p.decodeOrdinal(m, id.Ordinal)
			}
			if !yield(id, p.build(m, ch, p.opts)) {
				return
			}
		}
	}
}
