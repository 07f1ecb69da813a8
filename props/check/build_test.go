package check

import (
	"encoding/binary"
	"testing"
)

// testImage builds QED images byte by byte, laid out as QEMU lays them out
// (header, L1, then clusters appended in allocation order), so that the
// checker's tests need neither impl/qed nor QEMU.
type testImage struct {
	cs, ts, hs uint64
	l1         uint64
	buf        []byte
}

func newTestImage(t testing.TB, cs, ts, hs uint32, size uint64) *testImage {
	t.Helper()
	im := &testImage{cs: uint64(cs), ts: uint64(ts), hs: uint64(hs)}
	im.buf = make([]byte, hdrFieldsSize)
	le := binary.LittleEndian
	le.PutUint32(im.buf[hdrMagic:], qedMagic)
	le.PutUint32(im.buf[hdrClusterSize:], cs)
	le.PutUint32(im.buf[hdrTableSize:], ts)
	le.PutUint32(im.buf[hdrHeaderSize:], hs)
	im.l1 = uint64(hs) * uint64(cs)
	le.PutUint64(im.buf[hdrL1TableOffset:], im.l1)
	le.PutUint64(im.buf[hdrImageSize:], size)
	im.buf = append(im.buf, make([]byte, int(im.l1+im.tableBytes())-len(im.buf))...)
	return im
}

func (im *testImage) tableBytes() uint64 { return im.ts * im.cs }
func (im *testImage) entries() uint64    { return im.tableBytes() / entrySize }

// appendClusters appends n zeroed clusters and returns their offset.
func (im *testImage) appendClusters(n uint64) uint64 {
	off := uint64(len(im.buf))
	im.buf = append(im.buf, make([]byte, n*im.cs)...)
	return off
}

func (im *testImage) get64(off uint64) uint64 { return binary.LittleEndian.Uint64(im.buf[off:]) }
func (im *testImage) put64(off, v uint64)     { binary.LittleEndian.PutUint64(im.buf[off:], v) }
func (im *testImage) put32(off uint64, v uint32) {
	binary.LittleEndian.PutUint32(im.buf[off:], v)
}

// l1Entry returns the host offset of L1 entry i.
func (im *testImage) l1Entry(i uint64) uint64 { return im.l1 + i*entrySize }

// l2Table returns the offset of the L2 table for L1 index i, allocating it.
func (im *testImage) l2Table(i uint64) uint64 {
	if off := im.get64(im.l1Entry(i)); off != 0 {
		return off
	}
	off := im.appendClusters(im.ts)
	im.put64(im.l1Entry(i), off)
	return off
}

// l2Entry returns the host offset of the L2 entry for guest cluster gc.
func (im *testImage) l2Entry(gc uint64) uint64 {
	l2 := im.l2Table(gc / im.entries())
	return l2 + (gc%im.entries())*entrySize
}

// write allocates guest cluster gc (if needed) and fills it with fill.
func (im *testImage) write(gc uint64, fill byte) uint64 {
	e := im.l2Entry(gc)
	off := im.get64(e)
	if off <= 1 {
		off = im.appendClusters(1)
		im.put64(e, off)
	}
	for i := off; i < off+im.cs; i++ {
		im.buf[i] = fill
	}
	return off
}

// zero makes guest cluster gc a zero cluster.
func (im *testImage) zero(gc uint64) { im.put64(im.l2Entry(gc), 1) }

func (im *testImage) setFeatures(f uint64) { im.put64(hdrFeatures, f) }

func (im *testImage) clone() *testImage {
	c := *im
	c.buf = append([]byte(nil), im.buf...)
	return &c
}

// smallImage is the fixture of the corrupter tests: 4 KiB clusters,
// table_size 2 (1024 entries, 4 MiB per L2 table), a 2-cluster header,
// 8 MiB guest. Layout:
//
//	0x0000 header (2 clusters)   0x2000 L1 (2 clusters)
//	0x4000 L2a (L1[0], 2 cl.)    0x6000 d0  0x7000 d1  0x8000 d2
//	0x9000 L2b (L1[1], 2 cl.)    0xb000 d3              file 0xc000
//
// Guest clusters 0..2 -> d0..d2, 1024 -> d3, 5 is a zero cluster.
func smallImage(t testing.TB) *testImage {
	im := newTestImage(t, 4096, 2, 2, 8<<20)
	im.write(0, 0xa0)
	im.write(1, 0xa1)
	im.write(2, 0xa2)
	im.write(1024, 0xa3)
	im.zero(5)
	if len(im.buf) != 0xc000 || im.get64(im.l1Entry(1)) != 0x9000 {
		t.Fatalf("smallImage layout changed: size 0x%x, L1[1]=0x%x", len(im.buf), im.get64(im.l1Entry(1)))
	}
	return im
}

// benchImage is a 1 MiB guest with 4 KiB clusters and the default table
// size, with n of its clusters allocated in a shuffled order and a few zero
// clusters.
func benchImage(t testing.TB, n int) *testImage {
	im := newTestImage(t, 4096, 4, 1, 1<<20)
	for i := 0; i < n; i++ {
		im.write(uint64((i*37)%256), byte(i))
	}
	im.zero(255)
	im.zero(254)
	return im
}
