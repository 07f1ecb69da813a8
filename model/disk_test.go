package model

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// pat returns the data of pattern write id at off.
func pat(id uint64, off int64, n int) []byte {
	p := make([]byte, n)
	Fill(p, id, off)
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, d *Disk, off, n int64) uint64 {
	t.Helper()
	id, err := d.Write(off, n)
	must(t, err)
	return id
}

func read(t *testing.T, d *Disk, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	must(t, d.ReadAt(p, off))
	return p
}

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func zeros(n int) []byte { return make([]byte, n) }

func TestContents(t *testing.T) {
	base := func(t *testing.T, size int64, writes ...[2]int64) *Disk {
		b, err := New(size, nil)
		must(t, err)
		for _, w := range writes {
			mustWrite(t, b, w[0], w[1])
		}
		b.Flush()
		return b
	}
	tests := []struct {
		name string
		run  func(t *testing.T) (*Disk, []byte) // the disk and its whole expected contents
	}{
		{"empty disk reads zeros", func(t *testing.T) (*Disk, []byte) {
			d, err := New(2048, nil)
			must(t, err)
			return d, zeros(2048)
		}},
		{"unaligned write", func(t *testing.T) (*Disk, []byte) {
			d, _ := New(1024, nil)
			id := mustWrite(t, d, 3, 500)
			return d, cat(zeros(3), pat(id, 3, 500), zeros(521))
		}},
		{"backing shorter than disk", func(t *testing.T) (*Disk, []byte) {
			b := base(t, 1024, [2]int64{0, 1024})
			d, err := New(4096, b)
			must(t, err)
			return d, cat(pat(1, 0, 1024), zeros(3072))
		}},
		{"backing longer than disk is cut, grow exposes zeros", func(t *testing.T) (*Disk, []byte) {
			b := base(t, 8192, [2]int64{0, 8192})
			d, _ := New(4096, b)
			must(t, d.Grow(8192))
			return d, cat(pat(1, 0, 4096), zeros(4096))
		}},
		{"write-zeroes over backing data", func(t *testing.T) (*Disk, []byte) {
			b := base(t, 4096, [2]int64{0, 4096})
			d, _ := New(4096, b)
			must(t, d.WriteZeroes(100, 1000))
			return d, cat(pat(1, 0, 100), zeros(1000), pat(1, 1100, 2996))
		}},
		{"overlapping writes, last wins", func(t *testing.T) (*Disk, []byte) {
			d, _ := New(2048, nil)
			a := mustWrite(t, d, 0, 1000)
			b := mustWrite(t, d, 500, 1000)
			must(t, d.WriteZeroes(700, 100))
			must(t, d.WriteBytes(1499, []byte{1, 2}))
			return d, cat(pat(a, 0, 500), pat(b, 500, 200), zeros(100), pat(b, 800, 699), []byte{1, 2}, zeros(547))
		}},
		{"two-layer chain with ids continued", func(t *testing.T) (*Disk, []byte) {
			b := base(t, 2048, [2]int64{0, 2048})
			m, _ := New(2048, b)
			if id := mustWrite(t, m, 1024, 512); id != 2 {
				t.Errorf("id in child = %d, want 2", id)
			}
			m.Flush()
			d, _ := New(3072, m)
			return d, cat(pat(1, 0, 1024), pat(2, 1024, 512), pat(1, 1536, 512), zeros(1024))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, want := tc.run(t)
			if d.Size() != int64(len(want)) {
				t.Fatalf("size %d, want %d", d.Size(), len(want))
			}
			got := read(t, d, 0, len(want))
			if !bytes.Equal(got, want) {
				t.Fatalf("contents differ at %d\n%s", firstDiff(got, want), d.Describe(20))
			}
			must(t, d.Verify(0, want))
			// Every sub-range too, at odd offsets.
			for off := 0; off < len(want); off += 333 {
				n := min(777, len(want)-off)
				must(t, d.Verify(int64(off), want[off:off+n]))
			}
			bad := slices.Clone(want)
			bad[len(bad)/2] ^= 0x80
			var m *Mismatch
			if err := d.Verify(0, bad); !errors.As(err, &m) || m.Off != int64(len(bad)/2) || m.Len != 1 || m.Bad != 1 {
				t.Fatalf("Verify(corrupted) = %v", err)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestArgumentErrors(t *testing.T) {
	d, _ := New(4096, nil)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"new odd size", func() error { _, err := New(1000, nil); return err }(), ErrSize},
		{"new negative", func() error { _, err := New(-512, nil); return err }(), ErrSize},
		{"new too large", func() error { _, err := New(MaxSize+512, nil); return err }(), ErrSize},
		{"write past end", func() error { _, err := d.Write(4000, 97); return err }(), ErrRange},
		{"write negative offset", func() error { _, err := d.Write(-1, 1); return err }(), ErrRange},
		{"write negative length", func() error { _, err := d.Write(0, -1); return err }(), ErrRange},
		{"zeroes overflow", d.WriteZeroes(1, 1<<62+(1<<62-1)), ErrRange},
		{"bytes past end", d.WriteBytes(4095, []byte{1, 2}), ErrRange},
		{"read past end", d.ReadAt(make([]byte, 2), 4095), ErrRange},
		{"verify past end", d.Verify(4096, []byte{0}), ErrRange},
		{"verify-crash past end", d.VerifyCrash(4095, []byte{0, 0}), ErrRange},
		{"shrink", d.Grow(2048), ErrShrink},
		{"grow odd", d.Grow(5000), ErrSize},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	var re *RangeError
	if _, err := d.Write(4000, 97); !errors.As(err, &re) || re.Off != 4000 || re.Len != 97 || re.Size != 4096 || re.Op != "write" {
		t.Errorf("RangeError fields: %+v", re)
	}
	if d.Ops() != 0 {
		t.Errorf("failed operations counted: ops = %d", d.Ops())
	}
	b, _ := New(4096, nil)
	mustWrite(t, b, 0, 1)
	if _, err := New(4096, b); !errors.Is(err, ErrBacking) {
		t.Errorf("unflushed backing: %v", err)
	}
}

func TestCrashSizes(t *testing.T) {
	d, _ := New(4096, nil)
	if got := d.CrashSizes(); !slices.Equal(got, []int64{4096}) {
		t.Errorf("new: %v", got)
	}
	must(t, d.Grow(8192))
	must(t, d.Grow(8192))
	must(t, d.Grow(16384))
	if got := d.CrashSizes(); !slices.Equal(got, []int64{4096, 8192, 16384}) {
		t.Errorf("after grows: %v", got)
	}
	d.Flush()
	if got := d.CrashSizes(); !slices.Equal(got, []int64{16384}) {
		t.Errorf("after flush: %v", got)
	}
}

func TestDescribe(t *testing.T) {
	b, _ := New(4096, nil)
	mustWrite(t, b, 0, 4096)
	b.Flush()
	d, _ := New(8192, b)
	mustWrite(t, d, 512, 512)
	d.Flush()
	must(t, d.WriteZeroes(0, 100))
	got := d.Describe(0)
	for _, want := range []string{
		"size 0x2000", "layers 1", "ops 3", "last flush op 2", "4 current extents", "1 pending ops",
		"[0x0,0x64) write-zeroes (op 3) [0x0,+0x64)",
		"[0x64,0x200) write id 1 (op 1 in backing layer 1) [0x0,+0x1000)",
		"[0x200,0x400) write id 2 (op 1) [0x200,+0x200)",
		"[0x400,0x1000) write id 1 (op 1 in backing layer 1)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe lacks %q:\n%s", want, got)
		}
	}
	if got := d.Describe(1); !strings.Contains(got, "... 3 more") {
		t.Errorf("Describe(1) not cut:\n%s", got)
	}
}

func TestClone(t *testing.T) {
	d, _ := New(4096, nil)
	id := mustWrite(t, d, 0, 4096)
	d.Flush()
	mustWrite(t, d, 0, 512)
	c := d.Clone()
	must(t, c.Recover(4096, func(p []byte, off int64) error { Fill(p, id, off); return nil }))
	if len(d.Uncertain()) != 1 || len(c.Uncertain()) != 0 {
		t.Fatalf("Recover on the clone changed the original: %s / %s", d, c)
	}
	id3 := mustWrite(t, c, 0, 100)
	if id4 := mustWrite(t, d, 0, 100); id4 != id3 {
		t.Errorf("ids diverge: clone %d, original %d", id3, id4)
	}
	if err := d.Verify(0, pat(id, 0, 512)); err == nil {
		t.Error("original shows the clone's recovered data")
	}
	must(t, c.Verify(0, cat(pat(id3, 0, 100), pat(id, 100, 3996))))
}

func TestIDSpace(t *testing.T) {
	d, _ := New(4096, nil)
	d.nextID = MaxPatternID
	if id, err := d.Write(0, 1); err != nil || id != MaxPatternID {
		t.Fatalf("last id: %d %v", id, err)
	}
	if _, err := d.Write(0, 1); !errors.Is(err, ErrIDSpace) {
		t.Fatalf("past the last id: %v", err)
	}
}

func TestWriteIDGaps(t *testing.T) {
	d, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteID(0, 4096, 5); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteID(4096, 4096, 9); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteID(0, 1, 9); err == nil {
		t.Fatal("reusing id 9 was accepted")
	}
	buf := make([]byte, 8192)
	want := make([]byte, 8192)
	Fill(want[:4096], 5, 0)
	Fill(want[4096:], 9, 4096)
	if err := d.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if string(buf) != string(want) {
		t.Fatal("contents differ from the patterns of ids 5 and 9")
	}
	if err := d.Verify(0, want); err != nil {
		t.Fatal(err)
	}
	if id, err := d.Write(0, 1); err != nil || id != 10 {
		t.Fatalf("next id %d, %v; want 10", id, err)
	}
}

func TestWriteIDGapsInBacking(t *testing.T) {
	b, _ := New(8192, nil)
	if err := b.WriteID(0, 4096, 3); err != nil {
		t.Fatal(err)
	}
	b.Flush()
	d, err := New(8192, b)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 4096)
	Fill(want, 3, 0)
	if err := d.Verify(0, want); err != nil {
		t.Fatal(err)
	}
}
