package qed

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/spf13/afero"
)

// withPortableEntries runs f with the table coding of a big-endian host
// (hostLittleEndian false: a buffer and binary.LittleEndian in a loop,
// readEntries/writeEntries/decodeTable/encodeTable's other branch), which
// is exactly right on any host, so this little-endian machine tests the
// code a big-endian one runs. Not parallel: hostLittleEndian is global.
func withPortableEntries(f func()) {
	defer func(v bool) { hostLittleEndian = v }(hostLittleEndian)
	hostLittleEndian = false
	f()
}

// TestPortableEntriesSameFile: a seeded run of writes, write-zeroes,
// grows, flushes, reopens and checks leaves byte-identical files and
// reads with the in-place table coding and the portable one, for whole
// tables and paged ones (writes across a page boundary of a paged table
// included), so the big-endian branches write and read the format
// exactly as the little-endian ones do.
func TestPortableEntriesSameFile(t *testing.T) {
	if !hostLittleEndian {
		t.Skip("big-endian host: the portable coding is the only one")
	}
	seed := newRand(t).Uint64()                                                     // QED_SEED replays
	for _, g := range []struct{ cs, ts uint32 }{{4096, 1}, {4096, 4}, {65536, 2}} { // 64 KiB tables are whole, 128 KiB paged
		run := func() ([]byte, []byte, CheckReport) {
			rng := rand.New(rand.NewPCG(seed, uint64(g.cs)*16+uint64(g.ts)))
			fs := afero.NewMemMapFs()
			cs := int64(g.cs)
			size := uint64(600 * cs) // past guest cluster 512: a page boundary of a paged table
			im := mustCreate(t, fs, "/i.qed", CreateOptions{Size: size, ClusterSize: g.cs, TableSize: g.ts}, OpenOptions{IdleClearDelay: -1})
			for i := range 60 {
				off := rng.Int64N(int64(size) - 3*cs)
				if i%10 == 0 {
					off = 512*cs - 1 - rng.Int64N(cs) // clusters 511 and 512
				}
				n := 1 + rng.Int64N(2*cs)
				var err error
				switch rng.IntN(6) {
				case 0:
					err = im.WriteZeroes(off, n)
				case 1:
					err = im.Flush()
				case 2:
					if err = im.Close(); err == nil {
						im, err = Open(fs, "/i.qed", OpenOptions{IdleClearDelay: -1})
					}
				case 3:
					size += uint64(cs)
					err = im.Resize(int64(size))
				default:
					_, err = im.WriteAt(bytes.Repeat([]byte{byte(1 + i)}, int(n)), off)
				}
				if err != nil {
					t.Fatalf("%d/%d: op %d: %v", g.cs, g.ts, i, err)
				}
			}
			data := readAll(t, im)
			rep := assertClean(t, im)
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			file, err := afero.ReadFile(fs, "/i.qed")
			if err != nil {
				t.Fatal(err)
			}
			return file, data, rep
		}
		file, data, rep := run()
		var pfile, pdata []byte
		var prep CheckReport
		withPortableEntries(func() { pfile, pdata, prep = run() })
		if !bytes.Equal(file, pfile) {
			t.Errorf("%d-byte clusters, %d-cluster tables: the portable coding wrote another file", g.cs, g.ts)
		}
		assertEqual(t, pdata, data)
		if fmt.Sprint(rep) != fmt.Sprint(prep) {
			t.Errorf("%d/%d: check %+v with the portable coding, %+v in place", g.cs, g.ts, prep, rep)
		}
	}
}

// TestPortableEntriesRoundTrip: entries written by one coding read back
// through the other, whole and within a file (a short read is an error in
// both).
func TestPortableEntriesRoundTrip(t *testing.T) {
	rng := newRand(t)
	src := make([]uint64, 700)
	for i := range src {
		src[i] = rng.Uint64()
	}
	for _, w := range []bool{true, false} {
		f := &memAt{}
		write := func() {
			if err := writeEntries(f, 512, src); err != nil {
				t.Fatal(err)
			}
		}
		if w {
			write()
		} else {
			withPortableEntries(write)
		}
		got, pgot := make([]uint64, len(src)), make([]uint64, len(src))
		if err := readEntries(f, 512, got); err != nil {
			t.Fatal(err)
		}
		withPortableEntries(func() {
			if err := readEntries(f, 512, pgot); err != nil {
				t.Fatal(err)
			}
			if err := readEntries(f, 1024, pgot); err == nil {
				t.Error("a short read through the portable coding is not an error")
			}
		})
		if !slices.Equal(got, src) || !slices.Equal(pgot, src) {
			t.Fatalf("written in place %v: read back differently", w)
		}
		for i, v := range src[:4] {
			if e := f.b[512+8*i : 520+8*i]; !bytes.Equal(e, binary.LittleEndian.AppendUint64(nil, v)) {
				t.Fatalf("entry %d on disk %x, want %#x little-endian", i, e, v)
			}
		}
	}
}

// memAt is a growing in-memory io.ReaderAt and io.WriterAt.
type memAt struct{ b []byte }

func (m *memAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

// BenchmarkEntries: a table's read and write in place (this host) against
// the portable coding (a pooled buffer and binary.LittleEndian in a loop),
// interleaved in one run: compare the medians of -count N
// (docs/performance.md, "The big-endian branches").
func BenchmarkEntries(b *testing.B) {
	for _, n := range []int{512, 8192} { // one 4 KiB page; a 64 KiB whole table
		f := &memAt{b: make([]byte, n*entrySize)}
		e := make([]uint64, n)
		for _, mode := range []string{"inplace", "portable"} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				bench := func() {
					b.SetBytes(int64(2 * n * entrySize))
					for b.Loop() {
						if err := readEntries(f, 0, e); err != nil {
							b.Fatal(err)
						}
						if err := writeEntries(f, 0, e); err != nil {
							b.Fatal(err)
						}
					}
				}
				if mode == "portable" {
					withPortableEntries(bench)
				} else {
					bench()
				}
			})
		}
	}
}
