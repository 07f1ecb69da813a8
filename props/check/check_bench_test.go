package check

import (
	"bytes"
	"testing"
)

// BenchmarkCheckStructure checks a 1 MiB guest with 4 KiB clusters, 50
// allocated and 2 zero clusters, from a []byte with a reused checker (the
// campaign's per-crash-state cost).
func BenchmarkCheckStructure(b *testing.B) {
	img := benchImage(b, 50).buf
	var c Checker
	rep := c.Check(img)
	if !rep.IsConsistent() || rep.AllocatedClusters != 50 || rep.ZeroClusters != 2 {
		b.Fatalf("bench image:\n%s", rep)
	}
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	for b.Loop() {
		c.Check(img)
	}
}

// BenchmarkCheckStructurePooled is the same through the package-level
// function (a pooled checker).
func BenchmarkCheckStructurePooled(b *testing.B) {
	img := benchImage(b, 50).buf
	b.ReportAllocs()
	for b.Loop() {
		Structure(img)
	}
}

// BenchmarkCheckStructureReaderAt is the same through an io.ReaderAt.
func BenchmarkCheckStructureReaderAt(b *testing.B) {
	img := benchImage(b, 50).buf
	r := bytes.NewReader(img)
	var c Checker
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CheckReaderAt(r, int64(len(img))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckStructureCorrupt measures the slow path: violations with
// messages and the second walk that names first references.
func BenchmarkCheckStructureCorrupt(b *testing.B) {
	im := benchImage(b, 50)
	im.put64(im.l2Entry(1), im.get64(im.l2Entry(0)))
	im.put64(im.l2Entry(2), 1<<40)
	var c Checker
	b.ReportAllocs()
	for b.Loop() {
		c.Check(im.buf)
	}
}
