package check

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
)

// The corrupter: Plant damages a consistent QED image in one of the ways
// this checker knows, so that repair paths (a repairing check, a writable
// open of an image with NEED_CHECK set) can be judged on corruption a crash
// of a correct implementation cannot produce.
//
// Guarantees:
//   - Deterministic: the same image, corruption, NEED_CHECK choice and seed
//     give the same bytes and the same Planted.
//   - Each plant reports what it touched: Planted.Touched lists the guest
//     ranges (whole clusters) whose contents may read differently after the
//     corruption or after a repair of it (the mapping is lost, or points at
//     other bytes); every guest cluster outside them must read as before
//     through any implementation that opens the image. AllTouched is set when
//     the header itself is damaged (no implementation may open the image).
//   - The checker finds it: the report of the planted image has at least one
//     violation of a kind in Planted.Want (for Leak: Leaks grows and no
//     violation is added).
//   - Plant never changes its input; it returns a new image.

// A Corruption is one kind of damage Plant can plant.
type Corruption uint8

// Corruption kinds, grouped as the issue lists them: table entries in L1 and
// in L2 (invalid garbage, misaligned, past the end of the file, into the
// header or into the tables), L1 entries pointing at data, L2 tables
// overlapping each other or the L1 table, double references of data, leaks,
// a truncated file and a garbage header field.
const (
	CorruptL1Invalid    Corruption = iota // L1 entry = 1 (the zero-cluster marker, meaningless in L1)
	CorruptL1Misaligned                   // L1 entry = its L2 table + a seeded multiple of 512
	CorruptL1PastEOF                      // L1 entry at or past the end of the file
	CorruptL1IntoHeader                   // L1 entry inside the header clusters
	CorruptL1AtData                       // L1 entry = a data cluster of the image
	CorruptL2OntoL1                       // L1 entry = the L1 table (an L2 table overlapping L1)
	CorruptL2Overlap                      // L1 entry = another entry's L2 table
	CorruptL2Invalid                      // L2 entry = seeded garbage (not 0, not 1)
	CorruptL2Misaligned                   // L2 entry = its data + a seeded multiple of 512
	CorruptL2PastEOF                      // L2 entry at or past the end of the file
	CorruptL2IntoHeader                   // L2 entry inside the header clusters
	CorruptL2IntoTable                    // L2 entry = the L1 table or an L2 table
	CorruptDoubleRef                      // L2 entry = another L2 entry's data cluster
	CorruptLeak                           // whole clusters appended, referenced by nothing
	CorruptTruncate                       // the file cut short inside its referenced clusters
	CorruptHeaderField                    // one header field overwritten with a value the field can hold but the format forbids
	numCorruptions
)

var corruptionNames = [numCorruptions]string{
	CorruptL1Invalid:    "l1-invalid",
	CorruptL1Misaligned: "l1-misaligned",
	CorruptL1PastEOF:    "l1-past-eof",
	CorruptL1IntoHeader: "l1-into-header",
	CorruptL1AtData:     "l1-at-data",
	CorruptL2OntoL1:     "l2-table-onto-l1",
	CorruptL2Overlap:    "l2-tables-overlap",
	CorruptL2Invalid:    "l2-invalid",
	CorruptL2Misaligned: "l2-misaligned",
	CorruptL2PastEOF:    "l2-past-eof",
	CorruptL2IntoHeader: "l2-into-header",
	CorruptL2IntoTable:  "l2-into-table",
	CorruptDoubleRef:    "double-ref",
	CorruptLeak:         "leak",
	CorruptTruncate:     "truncate",
	CorruptHeaderField:  "header-field",
}

// String returns the corruption's stable kebab-case name.
func (c Corruption) String() string {
	if c < numCorruptions {
		return corruptionNames[c]
	}
	return fmt.Sprintf("Corruption(%d)", uint8(c))
}

// Corruptions returns every corruption kind, in order.
func Corruptions() []Corruption {
	cs := make([]Corruption, numCorruptions)
	for i := range cs {
		cs[i] = Corruption(i)
	}
	return cs
}

// ParseCorruption returns the corruption named s.
func ParseCorruption(s string) (Corruption, error) {
	for i, n := range corruptionNames {
		if n == s {
			return Corruption(i), nil
		}
	}
	return 0, fmt.Errorf("check: unknown corruption %q (known: %v)", s, Corruptions())
}

// ErrNotApplicable is returned by Plant when the image has nothing the
// corruption can damage (no L2 table, no data cluster, a single L1 entry).
var ErrNotApplicable = errors.New("check: corruption not applicable to this image")

// Planted says what Plant did.
type Planted struct {
	Corruption Corruption
	NeedCheck  bool   // NEED_CHECK as left in the planted image
	Seed       uint64 // the seed the choices were drawn from
	// What names the bytes changed: "L2[0][5] at 0x4028: 0x6000 -> 0x6200".
	What string
	// Touched lists, ascending, the guest ranges (whole clusters, clipped
	// to image_size) that may read differently from before.
	Touched []Range
	// AllTouched: the header is damaged; no guest range is promised.
	AllTouched bool
	// Want lists the violation kinds of which the checker must find at
	// least one (empty for CorruptLeak, which only adds leaks). With
	// NEED_CHECK clear the checker also reports
	// ViolNeedCheckClearButInconsistent (but for CorruptLeak).
	Want []ViolationKind
}

// Untouched reports whether the guest range [off, off+n) lies outside every
// touched range.
func (p *Planted) Untouched(off, n int64) bool {
	if p.AllTouched {
		return false
	}
	for _, r := range p.Touched {
		if off < r.Off+r.Len && r.Off < off+n {
			return false
		}
	}
	return true
}

// layout is the decoded table structure of a consistent image.
type layout struct {
	cs, tableBytes, per, headerEnd, fileEnd, l1, imageSize uint64
	l2                                                     []uint64  // l2[i] = L1 entry i (0: unlinked)
	data                                                   []dataRef // every allocated L2 entry, in guest order
	hdr                                                    Header
	img                                                    []byte
}

type dataRef struct {
	guest uint64 // guest cluster index
	entry uint64 // host offset of the L2 entry
	host  uint64 // data cluster offset
}

func decodeLayout(img []byte) (*layout, error) {
	rep := Structure(img)
	if !rep.Walked || !rep.IsConsistent() {
		return nil, fmt.Errorf("check: plant needs a consistent image: %v", rep.Err())
	}
	h := rep.Header
	le := binary.LittleEndian
	l := &layout{cs: uint64(h.ClusterSize), hdr: h, img: img, l1: h.L1TableOffset, imageSize: h.ImageSize}
	l.tableBytes = uint64(h.TableSize) * l.cs
	l.per = l.tableBytes / entrySize
	l.headerEnd = uint64(h.HeaderSize) * l.cs
	l.fileEnd = uint64(len(img)) &^ (l.cs - 1)
	l.l2 = make([]uint64, l.per)
	for i := range l.per {
		t := le.Uint64(img[l.l1+i*entrySize:])
		l.l2[i] = t
		if t == 0 {
			continue
		}
		for j := range l.per {
			e := t + j*entrySize
			if v := le.Uint64(img[e:]); v > 1 {
				l.data = append(l.data, dataRef{guest: i*l.per + j, entry: e, host: v})
			}
		}
	}
	return l, nil
}

func (l *layout) linked() []int {
	var ix []int
	for i, t := range l.l2 {
		if t != 0 {
			ix = append(ix, i)
		}
	}
	return ix
}

// clusterRange is guest cluster g as a byte range clipped to image_size
// (zero length when past it).
func (l *layout) clusterRange(g, n uint64) Range {
	off, end := g*l.cs, (g+n)*l.cs
	end = min(end, l.imageSize)
	if off >= end {
		return Range{Off: int64(off)}
	}
	return Range{Off: int64(off), Len: int64(end - off)}
}

// l1Range is every guest cluster under L1 entry i.
func (l *layout) l1Range(i int) Range { return l.clusterRange(uint64(i)*l.per, l.per) }

// Plant returns a copy of img, a consistent QED image, with corruption c
// planted at places drawn from seed, and NEED_CHECK set or clear as asked.
// It fails with ErrNotApplicable when the image has nothing c can damage,
// and with another error when img is not a consistent image.
func Plant(img []byte, c Corruption, needCheck bool, seed uint64) ([]byte, *Planted, error) {
	if c >= numCorruptions {
		return nil, nil, fmt.Errorf("check: unknown corruption %d", c)
	}
	l, err := decodeLayout(img)
	if err != nil {
		return nil, nil, err
	}
	out := append([]byte(nil), img...)
	r := rand.New(rand.NewPCG(seed, uint64(c)+1))
	p := &Planted{Corruption: c, NeedCheck: needCheck, Seed: seed}
	le := binary.LittleEndian
	put := func(at, v uint64, what string) {
		old := le.Uint64(out[at:])
		le.PutUint64(out[at:], v)
		p.What = fmt.Sprintf("%s at 0x%x: 0x%x -> 0x%x", what, at, old, v)
	}
	linked := l.linked()
	pick := func(n int) int { return r.IntN(n) }
	// An L1 entry to damage: a linked one.
	l1Target := func() (int, error) {
		if len(linked) == 0 {
			return 0, ErrNotApplicable
		}
		return linked[pick(len(linked))], nil
	}
	setL1 := func(i int, v uint64) {
		put(l.l1+uint64(i)*entrySize, v, fmt.Sprintf("L1[%d]", i))
		p.Touched = append(p.Touched, l.l1Range(i))
	}
	dataTarget := func() (dataRef, error) {
		if len(l.data) == 0 {
			return dataRef{}, ErrNotApplicable
		}
		return l.data[pick(len(l.data))], nil
	}
	setL2 := func(d dataRef, v uint64) {
		put(d.entry, v, fmt.Sprintf("L2 entry of guest cluster %d", d.guest))
		p.Touched = append(p.Touched, l.clusterRange(d.guest, 1))
	}
	pastEOF := func() uint64 { return l.fileEnd + uint64(pick(4))*l.cs }
	// intoHeader is an aligned header cluster other than 0 when the header
	// has more than one cluster, else an unaligned offset inside cluster 0
	// (0 itself means "unallocated").
	intoHeader := func() (uint64, ViolationKind) {
		if n := l.headerEnd / l.cs; n > 1 {
			return (1 + uint64(pick(int(n-1)))) * l.cs, 0
		}
		return 512 * (1 + uint64(pick(int(l.cs/512-1)))), 1
	}
	misaligned := func(base uint64) uint64 { return base + 512*(1+uint64(pick(int(l.cs/512-1)))) }

	switch c {
	case CorruptL1Invalid, CorruptL1Misaligned, CorruptL1PastEOF, CorruptL1IntoHeader:
		i, err := l1Target()
		if err != nil {
			return nil, nil, err
		}
		switch c {
		case CorruptL1Invalid:
			setL1(i, 1)
			p.Want = []ViolationKind{ViolTableMisaligned}
		case CorruptL1Misaligned:
			setL1(i, misaligned(l.l2[i]))
			p.Want = []ViolationKind{ViolTableMisaligned}
		case CorruptL1PastEOF:
			setL1(i, pastEOF())
			p.Want = []ViolationKind{ViolTablePastEOF}
		case CorruptL1IntoHeader:
			v, unaligned := intoHeader()
			setL1(i, v)
			p.Want = []ViolationKind{ViolTableInHeader}
			if unaligned != 0 {
				p.Want = []ViolationKind{ViolTableMisaligned}
			}
		}
	case CorruptL1AtData:
		// The entry and the data cluster it is aimed at belong to different
		// tables, so that the data stays referenced by its own L2 entry and
		// the collision is certain whatever the data holds.
		d, err := dataTarget()
		if err != nil {
			return nil, nil, err
		}
		var cand []int
		for i := range l.l2 {
			if i != int(d.guest/l.per) && l.l1Range(i).Len > 0 {
				cand = append(cand, i)
			}
		}
		if len(cand) == 0 {
			return nil, nil, ErrNotApplicable
		}
		setL1(cand[pick(len(cand))], d.host)
		// Writes through the bogus table land in d's cluster.
		p.Touched = append(p.Touched, l.clusterRange(d.guest, 1))
		p.Want = []ViolationKind{ViolDoubleRefTableData, ViolTablePastEOF}
	case CorruptL2OntoL1:
		i, err := l1Target()
		if err != nil {
			return nil, nil, err
		}
		setL1(i, l.l1)
		p.Want = []ViolationKind{ViolDoubleRefTableTable}
	case CorruptL2Overlap:
		if len(linked) == 0 || len(l.l2) < 2 {
			return nil, nil, ErrNotApplicable
		}
		src := linked[pick(len(linked))]
		// The victim: an entry within image_size other than src.
		var cand []int
		for i := range l.l2 {
			if i != src && l.l1Range(i).Len > 0 {
				cand = append(cand, i)
			}
		}
		if len(cand) == 0 {
			return nil, nil, ErrNotApplicable
		}
		dst := cand[pick(len(cand))]
		setL1(dst, l.l2[src])
		// Both entries now map through one table: writes through either
		// change what the other reads.
		p.Touched = append(p.Touched, l.l1Range(src))
		p.Want = []ViolationKind{ViolDoubleRefTableTable}
	case CorruptL2Invalid, CorruptL2Misaligned, CorruptL2PastEOF, CorruptL2IntoHeader, CorruptL2IntoTable:
		d, err := dataTarget()
		if err != nil {
			return nil, nil, err
		}
		switch c {
		case CorruptL2Invalid:
			v := r.Uint64() | 1<<63 | 0x3 // never 0 or 1, never valid
			setL2(d, v)
			p.Want = []ViolationKind{ViolDataMisaligned, ViolDataPastEOF}
		case CorruptL2Misaligned:
			setL2(d, misaligned(d.host))
			p.Want = []ViolationKind{ViolDataMisaligned}
		case CorruptL2PastEOF:
			setL2(d, pastEOF())
			p.Want = []ViolationKind{ViolDataPastEOF}
		case CorruptL2IntoHeader:
			v, unaligned := intoHeader()
			setL2(d, v)
			p.Want = []ViolationKind{ViolDataInHeader}
			if unaligned != 0 {
				p.Want = []ViolationKind{ViolDataMisaligned}
			}
		case CorruptL2IntoTable:
			tables := []uint64{l.l1}
			for _, i := range linked {
				tables = append(tables, l.l2[i])
			}
			t := tables[pick(len(tables))]
			setL2(d, t+uint64(pick(int(l.tableBytes/l.cs)))*l.cs)
			// A write to that guest cluster overwrites a table: every
			// guest cluster that table maps.
			if t == l.l1 {
				p.AllTouched = true
			} else {
				for _, i := range linked {
					if l.l2[i] == t {
						p.Touched = append(p.Touched, l.l1Range(i))
					}
				}
			}
			p.Want = []ViolationKind{ViolDoubleRefTableData}
		}
	case CorruptDoubleRef:
		if len(l.data) < 2 {
			return nil, nil, ErrNotApplicable
		}
		a := pick(len(l.data))
		b := pick(len(l.data) - 1)
		if b >= a {
			b++
		}
		da, db := l.data[a], l.data[b]
		setL2(da, db.host)
		p.Touched = append(p.Touched, l.clusterRange(db.guest, 1))
		p.Want = []ViolationKind{ViolDoubleRefDataData}
	case CorruptLeak:
		n := 1 + pick(3)
		// Leaked clusters start at a cluster boundary: drop a partial tail
		// first, as an allocation would.
		out = append(out[:l.fileEnd], make([]byte, uint64(n)*l.cs)...)
		p.What = fmt.Sprintf("%d clusters appended at 0x%x", n, l.fileEnd)
	case CorruptTruncate:
		// Referenced clusters past the L1 table: cut inside them.
		end := l.l1 + l.tableBytes
		var refs []uint64
		for _, i := range linked {
			refs = append(refs, l.l2[i])
		}
		for _, d := range l.data {
			refs = append(refs, d.host)
		}
		sort.Slice(refs, func(i, j int) bool { return refs[i] < refs[j] })
		if len(refs) == 0 || refs[len(refs)-1] < end {
			return nil, nil, ErrNotApplicable
		}
		cut := refs[pick(len(refs))]
		if cut < end {
			cut = refs[len(refs)-1]
		}
		cut += uint64(pick(int(l.cs/512))) * 512 // keep part of the cluster: still not whole
		out = out[:cut]
		p.What = fmt.Sprintf("file truncated from %d to %d bytes", len(img), cut)
		for _, i := range linked {
			if l.l2[i]+l.tableBytes > cut&^(l.cs-1) {
				p.Touched = append(p.Touched, l.l1Range(i))
			}
		}
		for _, d := range l.data {
			if d.host >= cut&^(l.cs-1) {
				p.Touched = append(p.Touched, l.clusterRange(d.guest, 1))
			}
		}
		p.Want = []ViolationKind{ViolDataPastEOF, ViolTablePastEOF}
	case CorruptHeaderField:
		p.AllTouched = true
		switch pick(6) {
		case 0:
			v := uint32(l.cs + 512*uint64(1+pick(7)))
			le.PutUint32(out[hdrClusterSize:], v)
			p.What = fmt.Sprintf("cluster_size = %d", v)
			p.Want = []ViolationKind{ViolBadClusterSize}
		case 1:
			v := []uint32{0, 3, 5, 6, 7, 32, 1 << 20}[pick(7)]
			le.PutUint32(out[hdrTableSize:], v)
			p.What = fmt.Sprintf("table_size = %d", v)
			p.Want = []ViolationKind{ViolBadTableSize}
		case 2:
			le.PutUint32(out[hdrHeaderSize:], 0)
			p.What = "header_size = 0"
			p.Want = []ViolationKind{ViolBadHeaderSize}
		case 3:
			v := l.imageSize + 1 + uint64(pick(511))
			le.PutUint64(out[hdrImageSize:], v)
			p.What = fmt.Sprintf("image_size = %d", v)
			p.Want = []ViolationKind{ViolBadImageSize}
		case 4:
			bit := uint64(1) << (3 + pick(61))
			le.PutUint64(out[hdrFeatures:], l.hdr.Features|bit)
			p.What = fmt.Sprintf("unknown incompatible feature bit 0x%x", bit)
			p.Want = []ViolationKind{ViolUnknownFeatures}
		case 5:
			le.PutUint64(out[hdrFeatures:], l.hdr.Features|featBacking)
			off := uint32(l.headerEnd) - uint32(pick(64))
			le.PutUint32(out[hdrBackingOffset:], off)
			le.PutUint32(out[hdrBackingSize:], 1024)
			p.What = fmt.Sprintf("BACKING_FILE set, backing name [%d, +1024) past the header", off)
			p.Want = []ViolationKind{ViolBadBackingName}
		}
	}
	f := le.Uint64(out[hdrFeatures:])
	if needCheck {
		f |= featNeedCheck
	} else {
		f &^= featNeedCheck
	}
	if len(out) >= hdrFieldsSize {
		le.PutUint64(out[hdrFeatures:], f)
	}
	p.Touched = mergeRanges(p.Touched)
	return out, p, nil
}

// mergeRanges sorts rs and merges overlapping or touching ranges, dropping
// empty ones.
func mergeRanges(rs []Range) []Range {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Off < rs[j].Off })
	var out []Range
	for _, r := range rs {
		if r.Len == 0 {
			continue
		}
		if n := len(out); n > 0 && r.Off <= out[n-1].Off+out[n-1].Len {
			out[n-1].Len = max(out[n-1].Len, r.Off+r.Len-out[n-1].Off)
			continue
		}
		out = append(out, r)
	}
	return out
}
