package oracle

import (
	"testing"

	"github.com/qedtorture/qedtorture/model"
)

// BenchmarkDurableMostlyUnwritten is what one op's durable contents cost
// the campaign on issue 19 goal 5's geometry: a 32 MiB image with 6 MiB
// of flushed data (NewDurable once per op) and then, per crash state
// judged, the durable comparison of 8 MiB read back, half of it data and
// half zeros, off the 4 KiB grid (stage 4's chunks start where the
// uncertain ranges end). Compare builds with ns/op, interleaved.
func BenchmarkDurableMostlyUnwritten(b *testing.B) {
	const size, written, read, states = 32 << 20, 6 << 20, 8 << 20, 4
	m, err := model.New(size, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.WriteID(0, written, 1); err != nil {
		b.Fatal(err)
	}
	m.Flush()
	src := make([]byte, size)
	if err := m.ReadDurableAt(src, 0); err != nil {
		b.Fatal(err)
	}
	p := make([]byte, oracleChunk)
	var out [][2]int
	b.ReportAllocs()
	for b.Loop() {
		d, err := NewDurable(m)
		if err != nil {
			b.Fatal(err)
		}
		for range states {
			for off := int64(written - read/2 + 512); off < written+read/2; off += oracleChunk {
				copy(p, src[off:])
				if out = d.diffSpans(off, p, out[:0]); len(out) != 0 {
					b.Fatal("a block differs")
				}
			}
		}
	}
}
