package crashsim

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// checkSeekData states SeekData and SeekHole's guarantees on f (contents
// want): from every offset, every nonzero byte at or after it lies at or
// after SeekData's answer; SeekHole's answer starts a run of zeros that
// lasts to the next data offset or the end; both fail with ErrNoData at
// or past the end.
func checkSeekData(t *testing.T, f *File, want []byte) {
	t.Helper()
	size := int64(len(want))
	for off := int64(0); off < size+PageSize; off += 512 {
		d, errD := f.Seek(off, SeekData)
		h, errH := f.Seek(off, SeekHole)
		if off >= size {
			if !errors.Is(errD, ErrNoData) || !errors.Is(errH, ErrNoData) {
				t.Fatalf("off %d >= size %d: SeekData %d %v, SeekHole %d %v; want ErrNoData", off, size, d, errD, h, errH)
			}
			continue
		}
		first := int64(-1)
		for i := off; i < size; i++ {
			if want[i] != 0 {
				first = i
				break
			}
		}
		switch {
		case errD != nil && !errors.Is(errD, ErrNoData):
			t.Fatalf("off %d: SeekData: %v", off, errD)
		case errD != nil && first >= 0:
			t.Fatalf("off %d: SeekData says no data, byte %d is %#x", off, first, want[first])
		case errD == nil && (d < off || d >= size || (first >= 0 && d > first)):
			t.Fatalf("off %d: SeekData %d, first nonzero byte at %d, size %d", off, d, first, size)
		}
		if errH != nil || h < off || h > size {
			t.Fatalf("off %d: SeekHole %d %v (size %d)", off, h, errH, size)
		}
		end := size
		if h < size {
			if d2, err := f.Seek(h, SeekData); err == nil {
				end = d2
			}
		}
		for i := h; i < end; i++ {
			if want[i] != 0 {
				t.Fatalf("off %d: hole from %d to %d, but byte %d is %#x", off, h, end, i, want[i])
			}
		}
	}
	if _, err := f.Seek(-1, SeekData); err == nil {
		t.Fatal("SeekData at -1 succeeded")
	}
}

func TestSeekDataHole(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for iter := range 30 {
		fs := New(Options{ImplicitDirSync: true})
		af, err := fs.Create("/f")
		if err != nil {
			t.Fatal(err)
		}
		f := af.(*File)
		var want []byte
		apply := func(file *File, syncEvery int) {
			for i := range 12 {
				switch rng.IntN(4) {
				case 0: // extend or shrink
					n := rng.Int64N(40 * PageSize)
					if err := file.Truncate(n); err != nil {
						t.Fatal(err)
					}
					if n < int64(len(want)) {
						want = want[:n]
					} else {
						want = append(want, make([]byte, n-int64(len(want)))...)
					}
				default:
					off := rng.Int64N(40 * PageSize)
					b := make([]byte, 1+rng.IntN(3*PageSize))
					for j := range b {
						if rng.IntN(3) > 0 {
							b[j] = byte(1 + rng.IntN(255))
						}
					}
					if _, err := file.WriteAt(b, off); err != nil {
						t.Fatal(err)
					}
					if end := off + int64(len(b)); end > int64(len(want)) {
						want = append(want, make([]byte, end-int64(len(want)))...)
					}
					copy(want[off:], b)
				}
				if syncEvery > 0 && i%syncEvery == 0 {
					if err := file.Sync(); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		apply(f, 4)
		checkSeekData(t, f, want)
		if iter%2 == 0 {
			continue
		}
		// A crash state keeping every write lazily (an overlay over the
		// durable pages): the same guarantees.
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		apply(f, 0)
		p := fs.Crash()
		n, _ := p.Count(Model{Base: Prefix})
		st, err := p.FinalState(StateID{K: p.K(), Model: Model{Base: Prefix}, Ordinal: n - 1})
		if err != nil {
			t.Fatal(err)
		}
		g, err := st.Open("/f")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(g)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("crash state keeping every write differs from the live file (%v)", err)
		}
		checkSeekData(t, g.(*File), want)
	}
}
