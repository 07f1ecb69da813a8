package crashsim

import (
	"math/rand/v2"
	"testing"
)

// bigFilePoint: a fully written 64 MiB file, synced, then n unsynced 4 KiB
// writes at random page-aligned offsets (seeded).
func bigFilePoint(b *testing.B, size int64, n int) *Point {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(b, f, "/img")
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for off := int64(0); off < size; off += int64(len(chunk)) {
		mustWriteAt(b, h, string(chunk), off)
	}
	must(b, h.Sync())
	r := rand.New(rand.NewPCG(1, 2))
	page := make([]byte, 4096)
	for range n {
		mustWriteAt(b, h, string(page), r.Int64N(size/4096)*4096)
	}
	return f.Crash()
}

// BenchmarkBuildState64MiB builds the state keeping all 32 unsynced writes
// of a 64 MiB file: the cost must not depend on the file size.
func BenchmarkBuildState64MiB(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20} {
		b.Run(byteSize(size), func(b *testing.B) {
			p := bigFilePoint(b, size, 32)
			id := StateID{K: p.K(), Model: Model{Base: Subset}, Ordinal: 1<<32 - 1}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := p.State(id); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/state")
		})
	}
}

func byteSize(n int64) string {
	if n >= 1<<20 {
		return itoa(n>>20) + "MiB"
	}
	return itoa(n>>10) + "KiB"
}

func itoa(n int64) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// BenchmarkSubset1024 materializes all 2^10 subset states of 10 unsynced
// 512-byte writes to a small file; ns/state and B/state are per state.
func BenchmarkSubset1024(b *testing.B) {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(b, f, "/img")
	mustWriteAt(b, h, string(make([]byte, 64<<10)), 0)
	must(b, h.Sync())
	buf := make([]byte, 512)
	for i := range 10 {
		mustWriteAt(b, h, string(buf), int64(i)*4096+512)
	}
	p := f.Crash()
	m := Model{Base: Subset}
	if n, _ := p.Count(m); n != 1024 {
		b.Fatalf("count %d", n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	states := 0
	for b.Loop() {
		for _, s := range p.States(m, EnumOptions{Bound: 1024}) {
			_ = s
			states++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(states), "ns/state")
	b.ReportMetric(float64(states)/b.Elapsed().Seconds(), "states/s")
}

// BenchmarkTorn512 samples torn states of 10 unsynced 4 KiB writes.
func BenchmarkTorn512(b *testing.B) {
	p := bigFilePoint(b, 1<<20, 10)
	m := Model{Base: Torn, Sector: 512}
	b.ReportAllocs()
	states := 0
	for b.Loop() {
		for range p.States(m, EnumOptions{Bound: 1, Samples: 100, Seed: 3}) {
			states++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(states), "ns/state")
}

// BenchmarkSubset1024Read is BenchmarkSubset1024 plus reading the whole
// 64 KiB file of every state through the afero API (what a checker does).
func BenchmarkSubset1024Read(b *testing.B) {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(b, f, "/img")
	mustWriteAt(b, h, string(make([]byte, 64<<10)), 0)
	must(b, h.Sync())
	buf := make([]byte, 512)
	for i := range 10 {
		mustWriteAt(b, h, string(buf), int64(i)*4096+512)
	}
	p := f.Crash()
	out := make([]byte, 64<<10)
	b.ReportAllocs()
	states := 0
	for b.Loop() {
		for _, s := range p.States(Model{Base: Subset}, EnumOptions{Bound: 1024}) {
			g, err := s.Open("/img")
			if err != nil {
				b.Fatal(err)
			}
			if n, _ := g.ReadAt(out, 0); n != len(out) {
				b.Fatalf("read %d", n)
			}
			states++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(states), "ns/state")
	b.ReportMetric(float64(states)/b.Elapsed().Seconds(), "states/s")
}

// BenchmarkFirstWriteOnState measures the recovery's first write to a
// crash state of a 64 MiB file with 32 kept writes: it flattens the lazy
// overlay into pages (32 page copies), independent of the file size.
func BenchmarkFirstWriteOnState(b *testing.B) {
	p := bigFilePoint(b, 64<<20, 32)
	id := StateID{K: p.K(), Model: Model{Base: Subset}, Ordinal: 1<<32 - 1}
	b.ReportAllocs()
	for b.Loop() {
		s, err := p.State(id)
		if err != nil {
			b.Fatal(err)
		}
		g, err := s.OpenFile("/img", 2, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := g.WriteAt([]byte("x"), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeekData asks SeekData at the start of a fully written 4 MiB
// file, as props/check's table walk does before every chunk: the answer
// is the offset itself, and its cost must not grow with the data after it
// (it walked every page up to the next hole while SeekHole's answer was
// computed for SeekData too: 1,024 pages here).
func BenchmarkSeekData(b *testing.B) {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(b, f, "/img")
	mustWriteAt(b, h, string(make([]byte, 4<<20)), 0)
	b.ResetTimer()
	for b.Loop() {
		if pos, err := h.Seek(0, SeekData); err != nil || pos != 0 {
			b.Fatal(pos, err)
		}
	}
}
