package campaign

import (
	"bytes"
	"cmp"
	"errors"
	"hash/maphash"
	"io"
	"math"
	"path"
	"slices"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/spf13/afero"
)

// stateKey names a crash state's bytes (every file of its directory,
// Recording.Dir: name, length, contents) at one crash point, together with
// the mark (model) it is judged against. The judges are deterministic, so
// two states with the same key get the same verdicts: judge() runs them
// once per key and counts the others as checked (Report.OracleRuns
// counts the states judged). The hash is 128 bits (two independently seeded maphashes), so a
// collision, which could hide a failure, is out of reach (~2^-64 per
// pair).
//
// Keys are per crash point (k): all states of a point are built over the
// same durable image, so only the 4 KiB pages of a file that differ from
// that image are hashed (with their index), plus every file's name and
// length; the pages that equal the durable image are the same in both
// states. Two states of one point therefore get equal keys exactly when
// their files are byte-identical (up to the hash). Keying per point
// instead of across points loses almost nothing (measured: 36.3 % vs
// 36.4 % of states reach the oracle in BenchmarkJudge) and hashes a few
// pages instead of whole images (perf, issue 5).
//
// The campaign computes keys with keyOf (dedup_pieces.go): the same
// equality, from the pieces of the writes a state keeps, each write's
// bytes hashed once per point instead of once per state (issue 19 goal
// 5); key is its fallback for points with pending namespace changes and
// the reference its tests compare with.
type stateKey struct {
	snap   int
	k      int64
	h1, h2 uint64
}

// hashPage is the granularity of the comparison with the durable image.
const hashPage = 4096

// stateHasher hashes crash states, reusing its buffer and the durable
// image of the point it last saw.
type stateHasher struct {
	s1, s2 maphash.Seed
	buf    []byte
	dbuf   []byte // durable bytes of the range being compared

	dir       string                 // the directory of the files hashed
	baseK     int64                  // crash point of base; -1 = none
	baseImage *crashsim.Image        // its durable image
	base      map[string]durableFile // file name in dir -> durable file
	// dirty: path -> the byte ranges the point's unsynced operations
	// touch (writes, discards, truncates). A state of the point equals
	// the durable image outside them (below both lengths), so only the
	// pages overlapping them (and past the durable length) are read.
	// Valid when exact (no unsynced operation of another kind).
	dirty map[string][][2]int64
	exact bool
	full  bool       // tests: always read and compare every page
	ps    pieceState // keyOf's (dedup_pieces.go)
}

func newStateHasher() *stateHasher {
	return &stateHasher{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), baseK: -1}
}

// durableFile is one file of a point's durable image, open for the
// ranges a state's key compares (read lazily: issue 19 goal 5, the files
// of a big geometry are hundreds of MiB, mostly holes, and a point's
// states differ from them in a few ranges).
type durableFile struct {
	f    afero.File
	size int64
}

// read returns the durable bytes [lo, hi) (hi <= size), in sh.dbuf.
func (sh *stateHasher) readDurable(d durableFile, lo, hi int64) ([]byte, bool) {
	if int64(cap(sh.dbuf)) < hi-lo {
		sh.dbuf = make([]byte, hi-lo)
	}
	b := sh.dbuf[:hi-lo]
	if _, err := d.f.ReadAt(b, lo); err != nil && err != io.EOF {
		return nil, false
	}
	return b, true
}

// setPoint opens p's durable files in dir (once per point). If they
// cannot be read, base is empty and every page is hashed (still exact).
func (sh *stateHasher) setPoint(dir string, p *crashsim.Point) {
	if sh.baseK == p.K() && sh.baseImage == p.Durable() && sh.dir == dir {
		return
	}
	for _, d := range sh.base {
		d.f.Close()
	}
	sh.baseK, sh.baseImage, sh.dir, sh.base = p.K(), p.Durable(), dir, map[string]durableFile{}
	sh.dirty, sh.exact = map[string][][2]int64{}, !sh.full
	for _, o := range p.Unsynced() {
		pth := path.Clean(o.Path)
		if path.Dir(pth) != path.Clean(dir) {
			sh.exact = false // a path spelled otherwise, or outside dir: compare every page
		}
		switch o.Kind {
		case crashsim.OpWrite:
			sh.dirty[pth] = append(sh.dirty[pth], [2]int64{o.Off, o.Off + int64(len(o.Data))})
		case crashsim.OpDiscard:
			sh.dirty[pth] = append(sh.dirty[pth], [2]int64{o.Off, o.Off + o.Size})
		case crashsim.OpTruncate:
			sh.dirty[pth] = append(sh.dirty[pth], [2]int64{o.Size, math.MaxInt64})
		case crashsim.OpSync:
		default:
			sh.exact = false // namespace changes: compare every page
		}
	}
	fs := p.Durable().NewFS(crashsim.Options{DiscardTrace: true})
	infos, err := afero.ReadDir(fs, dir)
	if err != nil {
		return
	}
	for _, fi := range infos {
		if fi.IsDir() {
			continue
		}
		if f, err := fs.Open(path.Join(dir, fi.Name())); err == nil {
			sh.base[fi.Name()] = durableFile{f: f, size: fi.Size()}
		}
	}
}

// key returns the key of the state in fs, a crash state of p whose files
// are in dir, or ok=false if it cannot be read (the oracle will then say
// why).
func (sh *stateHasher) key(dir string, p *crashsim.Point, fs afero.Fs, snap int) (stateKey, bool) {
	sh.setPoint(dir, p)
	infos, err := afero.ReadDir(fs, dir)
	if err != nil {
		return stateKey{}, false
	}
	var h1, h2 maphash.Hash
	h1.SetSeed(sh.s1)
	h2.SetSeed(sh.s2)
	for _, fi := range infos { // sorted by name
		if fi.IsDir() {
			continue
		}
		f, err := fs.Open(path.Join(dir, fi.Name()))
		if err != nil {
			return stateKey{}, false
		}
		n := fi.Size()
		d, haveD := sh.base[fi.Name()] // none: no such durable file, every page differs
		dlen := d.size
		for _, h := range []*maphash.Hash{&h1, &h2} {
			h.WriteString(fi.Name())
			maphash.WriteComparable(h, n)
		}
		for _, cr := range sh.candidates(path.Join(dir, fi.Name()), n, dlen, haveD) {
			for _, r := range dataRuns(f, cr, sh.full) {
				if r.hole {
					// Reads zeros: differs from d only where d is not zero.
					for lo := r.lo; lo < r.hi; lo += hashPage {
						hi := min(lo+hashPage, r.hi)
						if lo >= dlen {
							continue
						}
						db, ok := sh.readDurable(d, lo, min(hi, dlen))
						if !ok {
							f.Close()
							return stateKey{}, false
						}
						if allZero(db) {
							continue
						}
						for _, h := range []*maphash.Hash{&h1, &h2} {
							maphash.WriteComparable(h, lo)
							h.Write(zeroPage[:hi-lo])
						}
					}
					continue
				}
				if int64(cap(sh.buf)) < r.hi-r.lo {
					sh.buf = make([]byte, r.hi-r.lo)
				}
				b := sh.buf[:r.hi-r.lo]
				if _, err := f.ReadAt(b, r.lo); err != nil && err != io.EOF {
					f.Close()
					return stateKey{}, false
				}
				var db []byte // durable bytes of [r.lo, min(r.hi, dlen))
				if r.lo < dlen {
					var ok bool
					if db, ok = sh.readDurable(d, r.lo, min(r.hi, dlen)); !ok {
						f.Close()
						return stateKey{}, false
					}
				}
				for lo := int64(0); lo < int64(len(b)); lo += hashPage {
					hi := min(lo+hashPage, int64(len(b)))
					abs := r.lo + lo
					if abs+hi-lo <= dlen && bytes.Equal(b[lo:hi], db[lo:hi]) {
						continue
					}
					if abs >= dlen && allZero(b[lo:hi]) {
						continue // zeros past the durable length, as a hole there
					}
					for _, h := range []*maphash.Hash{&h1, &h2} {
						maphash.WriteComparable(h, abs)
						h.Write(b[lo:hi])
					}
				}
			}
		}
		f.Close()
	}
	return stateKey{snap: snap, k: p.K(), h1: h1.Sum64(), h2: h2.Sum64()}, true
}

// zeroPage is what a hole page reads.
var zeroPage [hashPage]byte

func allZero(b []byte) bool {
	for len(b) >= hashPage {
		if !bytes.Equal(b[:hashPage], zeroPage[:]) {
			return false
		}
		b = b[hashPage:]
	}
	return bytes.Equal(b, zeroPage[:len(b)])
}

// run is a byte range of a file, a hole (reads zeros) or possibly data.
type run struct {
	lo, hi int64
	hole   bool
}

// dataRuns splits the page-aligned range r of f into holes and data with
// SEEK_DATA and SEEK_HOLE (crashsim.SeekData; a 1 GiB table of a big
// geometry is mostly a hole that need not be read), or returns r as one
// data run when f cannot tell (or full is set: tests compare everything).
//
// A page's bytes past the durable length hash nothing when they are zeros,
// whether read or a hole: both states' keys then cover the same bytes
// (their lengths are hashed too), so the key stays exact.
func dataRuns(f afero.File, r [2]int64, full bool) []run {
	one := []run{{lo: r[0], hi: r[1]}}
	if full {
		return one
	}
	var out []run
	for pos := r[0]; pos < r[1]; {
		d, err := f.Seek(pos, crashsim.SeekData)
		if errors.Is(err, crashsim.ErrNoData) {
			return append(out, run{lo: pos, hi: r[1], hole: true})
		}
		if err != nil || d < pos {
			return one
		}
		d = min(d/hashPage*hashPage, r[1])
		if d > pos {
			out = append(out, run{lo: pos, hi: d, hole: true})
			pos = d
			continue
		}
		h, err := f.Seek(pos, crashsim.SeekHole)
		if err != nil || h <= pos {
			return one
		}
		h = min((h+hashPage-1)/hashPage*hashPage, r[1])
		out = append(out, run{lo: pos, hi: h})
		pos = h
	}
	return out
}

// candidates returns the page-aligned byte ranges [lo, hi) of the file at
// pth (length n; its durable file has length dlen, if haveD) that may
// differ from the durable file: everything unless exact, else the pages
// overlapping the point's dirty ranges for pth and those past dlen;
// sorted, merged, clipped to n.
func (sh *stateHasher) candidates(pth string, n, dlen int64, haveD bool) [][2]int64 {
	if !sh.exact || !haveD {
		return [][2]int64{{0, n}}
	}
	rs := slices.Clone(sh.dirty[path.Clean(pth)])
	if n > dlen {
		rs = append(rs, [2]int64{dlen, n})
	}
	var out [][2]int64
	slices.SortFunc(rs, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	for _, r := range rs {
		lo := r[0] / hashPage * hashPage
		hi := min(n, (min(r[1], math.MaxInt64-hashPage)+hashPage-1)/hashPage*hashPage)
		if lo >= hi {
			continue
		}
		if k := len(out); k > 0 && lo <= out[k-1][1] {
			out[k-1][1] = max(out[k-1][1], hi)
			continue
		}
		out = append(out, [2]int64{lo, hi})
	}
	return out
}
