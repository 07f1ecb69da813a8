package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Sentinel errors; the typed errors below wrap them.
var (
	ErrRange     = errors.New("model: range outside the disk")
	ErrSize      = errors.New("model: invalid disk size")
	ErrShrink    = errors.New("model: shrinking is not supported")
	ErrBacking   = errors.New("model: backing disk has unflushed operations")
	ErrIDSpace   = errors.New("model: pattern ids exhausted")
	ErrCrashSize = errors.New("model: size after crash not allowed")
	ErrRead      = errors.New("model: read-back failed during recovery")
)

// RangeError reports an operation on bytes outside the disk.
type RangeError struct {
	Op       string // "write", "verify", ...
	Off, Len int64
	Size     int64 // the disk size the range was checked against
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("model: %s [%#x,+%#x) outside the disk (size %#x)", e.Op, e.Off, e.Len, e.Size)
}

func (e *RangeError) Unwrap() error { return ErrRange }

// SizeError reports a bad size: not a multiple of SectorSize, negative,
// above MaxSize, a shrink, or a size not allowed after a crash.
type SizeError struct {
	Op      string
	Size    int64
	Allowed []int64 // for crash sizes: the allowed ones
	Err     error   // ErrSize, ErrShrink or ErrCrashSize
}

func (e *SizeError) Error() string {
	if e.Allowed != nil {
		return fmt.Sprintf("model: %s: size %#x not allowed after crash (allowed %#x)", e.Op, e.Size, e.Allowed)
	}
	return fmt.Sprintf("%v: %s to %#x", e.Err, e.Op, e.Size)
}

func (e *SizeError) Unwrap() error { return e.Err }

// Kind says what an operation record is.
type Kind uint8

// Kinds of operations.
const (
	KindNone    Kind = iota // no operation: never-written bytes (zeros)
	KindPattern             // Write: pattern data, see Fill
	KindBytes               // WriteBytes: caller bytes
	KindZeroes              // WriteZeroes
	KindGrow                // Grow (changes no bytes: grown space reads zeros)
	KindUnknown             // Excuse: any value is allowed (what a silent fault touched)
)

var kindNames = [...]string{"unwritten", "write", "write-bytes", "write-zeroes", "grow", "unknown (excused fault damage)"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Source names the operation that produced a value.
type Source struct {
	Kind  Kind
	ID    uint64 // pattern id, for KindPattern
	Op    int    // operation index on the disk that issued it (0 for KindNone)
	Layer int    // 0 = this disk, 1 = its backing disk, 2 = the backing's backing...
	Off   int64  // the range of the operation
	Len   int64
}

func (s Source) String() string {
	if s.Kind == KindNone {
		return "unwritten (zeros)"
	}
	where := ""
	if s.Layer > 0 {
		where = fmt.Sprintf(" in backing layer %d", s.Layer)
	}
	id := ""
	if s.Kind == KindPattern {
		id = fmt.Sprintf(" id %d", s.ID)
	}
	return fmt.Sprintf("%s%s (op %d%s) [%#x,+%#x)", s.Kind, id, s.Op, where, s.Off, s.Len)
}

// lookup returns the pattern record of id, or nil.
func (d *Disk) lookup(id uint64) *record {
	if id == 0 || id > uint64(len(d.byID)) {
		return nil
	}
	return d.byID[id-1]
}

// record is one operation. Records are immutable once created and shared
// between extent maps (and, copied with a deeper layer, with child disks).
type record struct {
	Source
	data   []byte // KindBytes only, len == Len
	group  int    // concurrent group (see BeginGroup); 0 = none
	failed bool   // the write returned an error (see FailWrite)
}

// expect fills dst with the record's bytes at guest offset off. nil means
// unwritten (zeros). off..off+len(dst) must lie inside the record.
func (r *record) expect(dst []byte, off int64) {
	if r == nil {
		clear(dst)
		return
	}
	switch r.Kind {
	case KindPattern:
		fillMemo(dst, r.ID, off)
	case KindBytes:
		copy(dst, r.data[off-r.Off:])
	default:
		clear(dst)
	}
}

func (r *record) source() Source {
	if r == nil {
		return Source{}
	}
	return r.Source
}

// extent says bytes [off, end) hold the bytes of rec at the same offsets.
type extent struct {
	off, end int64
	rec      *record
}

// extentMap is a sorted list of non-overlapping extents; gaps are zeros.
type extentMap []extent

// search returns the index of the first extent with end > off.
func (m extentMap) search(off int64) int {
	return sort.Search(len(m), func(i int) bool { return m[i].end > off })
}

// set makes [off, end) hold rec (nil: make it a gap).
func (m extentMap) set(off, end int64, rec *record) extentMap {
	if off >= end {
		return m
	}
	i := m.search(off)
	j := i
	for j < len(m) && m[j].off < end {
		j++
	}
	// m[i:j] overlap [off, end); keep their outer parts.
	var repl [3]extent
	r := repl[:0]
	if i < j && m[i].off < off {
		r = append(r, extent{m[i].off, off, m[i].rec})
	}
	if rec != nil {
		r = append(r, extent{off, end, rec})
	}
	if i < j && m[j-1].end > end {
		r = append(r, extent{end, m[j-1].end, m[j-1].rec})
	}
	m = slices.Replace(m, i, j, r...)
	// Merge with equal neighbours so a map never holds two touching extents
	// of one record (keeps collapsed maps small).
	lo, hi := max(i-1, 0), min(i+len(r), len(m)-1)
	for k := hi; k > lo; k-- {
		if m[k-1].rec == m[k].rec && m[k-1].end == m[k].off {
			m[k-1].end = m[k].end
			m = slices.Delete(m, k, k+1)
		}
	}
	return m
}

// clip drops everything at or after size.
func (m extentMap) clip(size int64) extentMap {
	i := m.search(size)
	if i < len(m) && m[i].off < size {
		m[i].end = size
		i++
	}
	return m[:i]
}

// read fills p with the contents at off.
func (m extentMap) read(p []byte, off int64) {
	end := off + int64(len(p))
	pos := off
	for i := m.search(off); i < len(m) && m[i].off < end; i++ {
		e := m[i]
		if e.off > pos {
			clear(p[pos-off : e.off-off])
			pos = e.off
		}
		stop := min(e.end, end)
		e.rec.expect(p[pos-off:stop-off], pos)
		pos = stop
	}
	clear(p[pos-off:])
}

// at returns the record at guest offset off and the end of its extent (or
// gap), capped at limit.
func (m extentMap) at(off, limit int64) (*record, int64) {
	i := m.search(off)
	if i == len(m) {
		return nil, limit
	}
	if m[i].off > off {
		return nil, min(m[i].off, limit)
	}
	return m[i].rec, min(m[i].end, limit)
}

// Disk is the reference model of one virtual disk. The zero value is not
// usable; call New.
type Disk struct {
	size        int64 // current size
	durableSize int64 // size as of the last flush
	current     extentMap
	durable     extentMap
	pending     []*record // operations since the last flush, in order
	layers      int       // number of backing layers
	ops         int       // last operation index
	flushOp     int       // operation index of the last flush (0: none)
	nextID      uint64    // == len(byID)+1
	byID        []*record // pattern records of this disk and its backing chain; byID[id-1]
	backingLen  int64     // guest bytes [0, backingLen) show the backing disk where not written
	backingSize int64     // the backing disk's size (0: none)
	group       int       // the open concurrent group (0: none)
	excused     bool      // some extent is KindUnknown (see Excuse)
	groups      int       // groups begun so far
}

// New returns a disk of size bytes over an optional backing disk (nil for
// none). The backing disk must have no unflushed operations; its durable
// contents are captured now (up to the disk size) and read as layer 1
// sources. Pattern ids continue the backing disk's sequence.
func New(size int64, backing *Disk) (*Disk, error) {
	if err := checkSize("new", size); err != nil {
		return nil, err
	}
	d := &Disk{size: size, durableSize: size, nextID: 1}
	if backing != nil {
		if len(backing.pending) > 0 {
			return nil, fmt.Errorf("%w (%d pending operations)", ErrBacking, len(backing.pending))
		}
		d.layers = backing.layers + 1
		d.nextID = backing.nextID
		copies := map[*record]*record{}
		deeper := func(r *record) *record {
			c, ok := copies[r]
			if !ok {
				c = &record{Source: r.Source, data: r.data}
				c.Layer++
				copies[r] = c
			}
			return c
		}
		d.byID = make([]*record, len(backing.byID))
		for i, r := range backing.byID {
			if r != nil { // ids skipped by WriteID
				d.byID[i] = deeper(r)
			}
		}
		limit := min(size, backing.durableSize)
		d.backingLen, d.backingSize = limit, backing.durableSize
		for _, e := range backing.durable {
			if e.off >= limit {
				break
			}
			d.durable = append(d.durable, extent{e.off, min(e.end, limit), deeper(e.rec)})
		}
	}
	d.current = slices.Clone(d.durable)
	return d, nil
}

func checkSize(op string, size int64) error {
	if size < 0 || size%SectorSize != 0 || size > MaxSize {
		return &SizeError{Op: op, Size: size, Err: ErrSize}
	}
	return nil
}

func (d *Disk) checkRange(op string, off, n int64) error {
	if off < 0 || n < 0 || off > d.size || n > d.size-off {
		return &RangeError{Op: op, Off: off, Len: n, Size: d.size}
	}
	return nil
}

// Size returns the current size.
func (d *Disk) Size() int64 { return d.size }

// Ops returns the index of the last operation (0 for a new disk).
func (d *Disk) Ops() int { return d.ops }

func (d *Disk) apply(r *record) {
	r.group = d.group
	d.pending = append(d.pending, r)
	if r.Kind != KindGrow {
		d.current = d.current.set(r.Off, r.Off+r.Len, r)
	}
}

// Write records a pattern write of n bytes at off and returns its pattern
// id; the caller produces the data with Fill(buf, id, off). A write of 0
// bytes is an operation too (it gets an id and an op index).
func (d *Disk) Write(off, n int64) (uint64, error) {
	if err := d.checkRange("write", off, n); err != nil {
		return 0, err
	}
	if d.nextID > MaxPatternID {
		return 0, ErrIDSpace
	}
	id := d.nextID
	d.nextID++
	d.ops++
	r := &record{Source: Source{Kind: KindPattern, ID: id, Op: d.ops, Off: off, Len: n}}
	d.byID = append(d.byID, r)
	d.apply(r)
	return id, nil
}

// WriteID records a write of the pattern of a caller-chosen id over
// [off, off+n): like Write, but the id comes from the caller (a workload
// that names its writes, and keeps those names when it is minimized).
// Ids must increase: id must be at least the next id Write would return;
// skipped ids stay unused.
func (d *Disk) WriteID(off, n int64, id uint64) error {
	if err := d.checkRange("write", off, n); err != nil {
		return err
	}
	if id > MaxPatternID {
		return ErrIDSpace
	}
	if id < d.nextID {
		return fmt.Errorf("model: write id %d already used or below the next id %d", id, d.nextID)
	}
	for d.nextID < id {
		d.byID = append(d.byID, nil)
		d.nextID++
	}
	_, err := d.Write(off, n)
	return err
}

// WriteBytes records a write of the caller's bytes p at off (p is copied).
func (d *Disk) WriteBytes(off int64, p []byte) error {
	if err := d.checkRange("write-bytes", off, int64(len(p))); err != nil {
		return err
	}
	d.ops++
	d.apply(&record{Source: Source{Kind: KindBytes, Op: d.ops, Off: off, Len: int64(len(p))}, data: slices.Clone(p)})
	return nil
}

// WriteZeroes records that [off, off+n) now reads zeros, hiding backing
// data.
func (d *Disk) WriteZeroes(off, n int64) error {
	if err := d.checkRange("write-zeroes", off, n); err != nil {
		return err
	}
	d.ops++
	d.apply(&record{Source: Source{Kind: KindZeroes, Op: d.ops, Off: off, Len: n}})
	return nil
}

// Grow enlarges the disk to size bytes; the new space reads zeros. Growing
// to the current size is a no-op operation; a smaller size is an error
// wrapping ErrShrink.
func (d *Disk) Grow(size int64) error {
	if err := checkSize("grow", size); err != nil {
		return err
	}
	if size < d.size {
		return &SizeError{Op: "grow", Size: size, Err: ErrShrink}
	}
	d.ops++
	d.apply(&record{Source: Source{Kind: KindGrow, Op: d.ops, Off: d.size, Len: size - d.size}})
	d.size = size
	return nil
}

// BeginGroup starts a concurrent group: the writes recorded until EndGroup
// (or the next Flush) were issued at once, so after a crash they may have
// been applied in any order (each still atomic per sector). The model's
// current contents apply them in the order recorded; a caller that lets
// overlapping writes of a group race reads them back and adopts what it
// read with Recover.
func (d *Disk) BeginGroup() {
	d.groups++
	d.group = d.groups
}

// FailWrite records that a pending write returned an error: the k-th
// pending operation counted from the last (0 = the last one recorded), a
// write, write-zeroes or WriteBytes. An error can stop a write anywhere
// (a short host write ends mid-sector), so after a crash the failed
// write's bytes are judged one by one: each byte independently holds the
// write's value or not, in the write's place in the issue order. It
// reports false if there is no such pending write.
func (d *Disk) FailWrite(k int) bool {
	i := len(d.pending) - 1 - k
	if i < 0 || k < 0 || d.pending[i].Kind == KindGrow {
		return false
	}
	// Records are shared between clones and extent maps: replace it.
	r := *d.pending[i]
	r.failed = true
	old := d.pending[i]
	d.pending[i] = &r
	for j, e := range d.current {
		if e.rec == old {
			d.current[j].rec = &r
		}
	}
	if r.Kind == KindPattern && d.byID[r.ID-1] == old {
		d.byID[r.ID-1] = &r
	}
	return true
}

// EndGroup ends the concurrent group begun by BeginGroup.
func (d *Disk) EndGroup() { d.group = 0 }

// Excuse makes every value allowed over [off, off+n) (clipped to the
// size), now and after any crash, until the range is written again: the
// guest range a silent fault damaged (a lost or misdirected host write, a
// lost sync, a flipped bit), which no implementation can notice without
// checksums. Recover keeps what it reads there as excused.
func (d *Disk) Excuse(off, n int64) {
	end := min(off+n, d.size)
	if off < 0 || off >= end {
		return
	}
	d.ops++
	r := &record{Source: Source{Kind: KindUnknown, Op: d.ops, Off: off, Len: end - off}}
	d.current = d.current.set(off, end, r)
	d.durable = d.durable.set(off, end, r)
	d.excused = true
}

// allowAny copies got over want wherever m holds an excused extent
// (KindUnknown) in [off, off+len(got)).
func (m extentMap) allowAny(want, got []byte, off int64) {
	end := off + int64(len(got))
	for i := m.search(off); i < len(m) && m[i].off < end; i++ {
		if e := m[i]; e.rec != nil && e.rec.Kind == KindUnknown {
			lo, hi := max(e.off, off), min(e.end, end)
			copy(want[lo-off:hi-off], got[lo-off:hi-off])
		}
	}
}

// BackingLen returns the length of the guest range that shows the backing
// disk where this disk has not written (0 without a backing disk): the
// backing disk's size when the disk was made, capped at the disk's size
// then (growing never exposes backing data).
func (d *Disk) BackingLen() int64 { return d.backingLen }

// BackingSize returns the backing disk's size (0 without one); guest bytes
// from BackingLen up to it read zeros however long the disk grows.
func (d *Disk) BackingSize() int64 { return d.backingSize }

// Which durable extents a Ranges call returns.
const (
	RangesData        = iota // data: pattern writes and caller bytes, any layer
	RangesOwnData            // data written on this disk (layer 0)
	RangesBackingData        // data of the backing chain (layer >= 1)
	RangesOwnZeroes          // write-zeroes of this disk
)

// Written returns the ranges whose durable contents are data (a pattern
// write or caller bytes, of this disk or its backing chain), sorted and
// merged. Outside them and the Uncertain ranges the disk reads zeros.
func (d *Disk) Written() []Range { return d.Ranges(RangesData) }

// Ranges returns the ranges of the durable extents of one class (see
// RangesData...), sorted and merged.
func (d *Disk) Ranges(class int) []Range {
	var rs []Range
	for _, e := range d.durable {
		if e.rec == nil {
			continue
		}
		data := e.rec.Kind == KindPattern || e.rec.Kind == KindBytes
		var ok bool
		switch class {
		case RangesData:
			ok = data
		case RangesOwnData:
			ok = data && e.rec.Layer == 0
		case RangesBackingData:
			ok = data && e.rec.Layer > 0
		case RangesOwnZeroes:
			ok = e.rec.Kind == KindZeroes && e.rec.Layer == 0
		}
		if !ok {
			continue
		}
		if n := len(rs); n > 0 && rs[n-1].Off+rs[n-1].Len == e.off {
			rs[n-1].Len += e.end - e.off
			continue
		}
		rs = append(rs, Range{e.off, e.end - e.off})
	}
	return rs
}

// DurableChanges returns, sorted and merged, the ranges where d's durable
// contents may differ from o's: where their durable extents hold different
// records (or one of them none). Everywhere else the two read the same
// bytes (ReadDurableAt): a record is immutable and its bytes at a guest
// offset depend on it and the offset alone, so the same record at the same
// offset is the same bytes, in any clone. The answer says nothing about
// the sizes: a caller comparing contents of different sizes handles the
// bytes past the smaller one itself. A disk and its clone, or two
// snapshots of one workload's disk, share their records (Clone); disks
// made apart (New) share none, and differ wherever either holds data.
func (d *Disk) DurableChanges(o *Disk) []Range {
	var out []Range
	a, b := d.durable, o.durable
	i, j := 0, 0
	for pos := int64(0); ; {
		for i < len(a) && a[i].end <= pos {
			i++
		}
		for j < len(b) && b[j].end <= pos {
			j++
		}
		if i == len(a) && j == len(b) {
			return out
		}
		ra, ea := extentAt(a, i, pos)
		rb, eb := extentAt(b, j, pos)
		next := min(ea, eb)
		if ra != rb {
			if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len == pos {
				out[n-1].Len += next - pos
			} else {
				out = append(out, Range{Off: pos, Len: next - pos})
			}
		}
		pos = next
	}
}

// extentAt returns the record of m at pos (nil in a gap) and where that
// extent or gap ends (math.MaxInt64 past the last extent); i is the index
// of the first extent ending after pos.
func extentAt(m extentMap, i int, pos int64) (*record, int64) {
	switch {
	case i == len(m):
		return nil, math.MaxInt64
	case m[i].off > pos:
		return nil, m[i].off
	}
	return m[i].rec, m[i].end
}

// Flush makes everything durable: the current contents become the durable
// contents and the pending list is emptied.
func (d *Disk) Flush() {
	d.ops++
	d.flushOp = d.ops
	d.durable = append(d.durable[:0], d.current...)
	d.durableSize = d.size
	d.pending = d.pending[:0]
	d.group = 0
}

// ReadAt fills p with the current contents at off (what a running disk
// must return).
func (d *Disk) ReadAt(p []byte, off int64) error {
	if err := d.checkRange("read", off, int64(len(p))); err != nil {
		return err
	}
	d.current.read(p, off)
	return nil
}

// ReadDurableAt fills p with the durable contents at off: what the disk
// holds as of the last flush if every pending operation is lost (the "drop"
// crash model). The range may extend to the current size; bytes past the
// durable size read zeros.
func (d *Disk) ReadDurableAt(p []byte, off int64) error {
	if err := d.checkRange("read-durable", off, int64(len(p))); err != nil {
		return err
	}
	d.durable.read(p, off)
	return nil
}

// Clone returns an independent copy of the disk, for example to recover
// each of several crash states of one workload and continue them apart.
// It costs time and memory proportional to the extents and pending
// operations, not to the data (operation records are immutable and shared).
func (d *Disk) Clone() *Disk {
	c := *d
	c.current = slices.Clone(d.current)
	c.durable = slices.Clone(d.durable)
	c.pending = slices.Clone(d.pending)
	c.byID = slices.Clone(d.byID)
	return &c
}
