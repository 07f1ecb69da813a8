package model

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func sources(m *Mismatch) []string {
	var s []string
	for _, c := range m.Candidates {
		state := "pending"
		if c.Durable {
			state = "durable"
		}
		s = append(s, state+" "+c.Source.String())
	}
	return s
}

// TestCrashCandidates checks the candidate sets of overlapping writes in one
// epoch, byte by byte.
func TestCrashCandidates(t *testing.T) {
	b, _ := New(4096, nil)
	mustWrite(t, b, 0, 4096) // backing id 1
	b.Flush()
	d, _ := New(4096, b)
	a := mustWrite(t, d, 0, 1000)   // op 1, id 2
	d.Flush()                       // op 2
	c := mustWrite(t, d, 500, 1000) // op 3, id 3
	must(t, d.WriteZeroes(700, 100))
	must(t, d.WriteBytes(750, []byte{0xee}))
	if a != 2 || c != 3 {
		t.Fatalf("ids %d %d", a, c)
	}
	tests := []struct {
		off     int64
		allowed []byte // sorted allowed values
		sources []string
	}{
		{100, []byte{PatternByte(a, 100)}, []string{"durable write id 2 (op 1) [0x0,+0x3e8)"}},
		{600, sortU(PatternByte(a, 600), PatternByte(c, 600)), []string{
			"durable write id 2 (op 1) [0x0,+0x3e8)", "pending write id 3 (op 3) [0x1f4,+0x3e8)"}},
		{750, sortU(PatternByte(a, 750), PatternByte(c, 750), 0, 0xee), []string{
			"durable write id 2 (op 1) [0x0,+0x3e8)", "pending write id 3 (op 3) [0x1f4,+0x3e8)",
			"pending write-zeroes (op 4) [0x2bc,+0x64)", "pending write-bytes (op 5) [0x2ee,+0x1)"}},
		{1200, sortU(PatternByte(1, 1200), PatternByte(c, 1200)), []string{
			"durable write id 1 (op 1 in backing layer 1) [0x0,+0x1000)", "pending write id 3 (op 3) [0x1f4,+0x3e8)"}},
		{3000, []byte{PatternByte(1, 3000)}, []string{"durable write id 1 (op 1 in backing layer 1) [0x0,+0x1000)"}},
	}
	for _, tc := range tests {
		for v := 0; v < 256; v++ {
			err := d.VerifyCrash(tc.off, []byte{byte(v)})
			_, allowed := slices.BinarySearch(tc.allowed, byte(v))
			if allowed != (err == nil) {
				t.Fatalf("off %d value %#x: allowed %v, error %v", tc.off, v, allowed, err)
			}
			var m *Mismatch
			if err != nil {
				if !errors.As(err, &m) || !m.Crash || m.Off != tc.off || m.Len != 1 {
					t.Fatalf("off %d: error %v", tc.off, err)
				}
				if got := sources(m); !slices.Equal(got, tc.sources) {
					t.Fatalf("off %d: candidates\n%q\nwant\n%q", tc.off, got, tc.sources)
				}
			}
		}
	}
	// A mixture of allowed bytes is not enough: the sector at 0x200 shows
	// write 3 over [500,600) but write 1 after it, where write 3 does not
	// end.
	got := pat(a, 0, 1000)
	copy(got[500:600], pat(c, 500, 100))
	copy(got[700:720], zeros(20))
	got[750] = 0xee
	var m *Mismatch
	if err := d.VerifyCrash(0, got); !errors.As(err, &m) || m.Reason != ReasonTorn || m.Off != 512 {
		t.Fatalf("torn mixture: %v", err)
	}
	// Every pending write applied to both sectors, in issue order, is.
	copy(got[500:1000], pat(c, 500, 500))
	copy(got[700:800], zeros(100))
	must(t, d.VerifyCrash(0, got))
	// But the running disk must show the latest values only.
	if err := d.Verify(0, got); err == nil {
		t.Fatal("Verify accepted a crash mixture")
	}
}

func sortU(v ...byte) []byte {
	slices.Sort(v)
	return slices.Compact(v)
}

func TestMismatchExplanations(t *testing.T) {
	d, _ := New(1<<20, nil)
	w1 := mustWrite(t, d, 0x1000, 0x1000)
	w2 := mustWrite(t, d, 0x3000, 0x1000)
	d.Flush()
	w3 := mustWrite(t, d, 0x1000, 0x200) // pending
	tests := []struct {
		name      string
		off       int64
		got       []byte
		crash     bool
		wantOff   int64
		wantLen   int64
		wantLooks string
		wantErr   []string
	}{
		{"misdirected: write 2's data at write 1's place", 0x1000, pat(w2, 0x3000, 0x200), true,
			0x1000, 0x200, "pattern of write id 2 (op 2) [0x3000,+0x1000) for 0x200 bytes, generated for guest offset 0x3000 (misplaced by -0x2000)",
			[]string{"bad data at 0x1000: run of 0x200 bytes (0x1fa bad in the read [0x1000,+0x200))",
				"allowed (durable) write id 1 (op 1) [0x1000,+0x1000): ",
				"allowed (pending) write id 3 (op 4) [0x1000,+0x200): "}},
		{"lost data reads zeros", 0x3000, zeros(512), true,
			0x3000, 0x200, "zeros (0x200 bytes)",
			[]string{"crash check", "allowed (durable) write id 2 (op 2)"}},
		{"shifted by 3 bytes", 0x3100, pat(w2, 0x3103, 64), true,
			0x3100, 64, "generated for guest offset 0x3103 (misplaced by -0x3)", nil},
		{"stale data at its own offset", 0x1000, pat(w1, 0x1000, 16), false,
			0x1000, 16, "pattern of write id 1 (op 1) [0x1000,+0x1000) for 0x10 bytes, at its own offset",
			[]string{"read check", "allowed (current) write id 3 (op 4)"}},
		{"unknown garbage", 0x5000, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, true,
			0x5000, 9, "unknown (neither zeros nor a known pattern)", []string{"read:    010203040506070809"}},
		{"foreign pattern", 0x5000, pat(999, 0x5000, 16), true,
			0x5000, 16, "pattern of id 999, never issued on this disk chain", nil},
		{"zeros then data", 0x8000, cat(zeros(16), pat(w3, 0x1000, 32)), true,
			0x8010, 32, "pattern of write id 3 (op 4) [0x1000,+0x200) for 0x20 bytes, generated for guest offset 0x1000", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.crash {
				err = d.VerifyCrash(tc.off, tc.got)
			} else {
				err = d.Verify(tc.off, tc.got)
			}
			var m *Mismatch
			if !errors.As(err, &m) {
				t.Fatalf("error %v, want a *Mismatch", err)
			}
			if m.Off != tc.wantOff || m.Len != tc.wantLen || m.Crash != tc.crash {
				t.Errorf("Off %#x Len %#x Crash %v, want %#x %#x %v", m.Off, m.Len, m.Crash, tc.wantOff, tc.wantLen, tc.crash)
			}
			if !strings.Contains(m.Looks, tc.wantLooks) {
				t.Errorf("Looks = %q, want it to contain %q", m.Looks, tc.wantLooks)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
			if len(m.Got) > excerptLen || len(m.Candidates) == 0 {
				t.Errorf("excerpt %d bytes, %d candidates", len(m.Got), len(m.Candidates))
			}
		})
	}
}

func TestUncertain(t *testing.T) {
	d, _ := New(1<<20, nil)
	mustWrite(t, d, 0, 100)
	d.Flush()
	if u := d.Uncertain(); len(u) != 0 {
		t.Fatalf("after flush: %v", u)
	}
	mustWrite(t, d, 5000, 100)
	must(t, d.WriteZeroes(1000, 200))
	must(t, d.WriteBytes(1100, make([]byte, 300)))
	must(t, d.Grow(2<<20))
	mustWrite(t, d, 1400, 10) // touches: merged
	mustWrite(t, d, 7000, 0)  // empty: ignored
	want := []Range{{1000, 410}, {5000, 100}}
	if u := d.Uncertain(); !slices.Equal(u, want) {
		t.Fatalf("Uncertain = %v, want %v", u, want)
	}
}

// crashDisk is a crashed medium for Recover: bytes plus a log of the reads.
type crashDisk struct {
	data  []byte
	reads []Range
}

func (c *crashDisk) read(p []byte, off int64) error {
	c.reads = append(c.reads, Range{off, int64(len(p))})
	copy(p, c.data[off:])
	return nil
}

func TestRecover(t *testing.T) {
	b, _ := New(8192, nil)
	mustWrite(t, b, 0, 8192)
	b.Flush()
	d, _ := New(8192, b)
	w2 := mustWrite(t, d, 1000, 1000)
	d.Flush()
	w3 := mustWrite(t, d, 1500, 1000)
	must(t, d.WriteZeroes(3000, 600))
	must(t, d.Grow(16384))
	w4 := mustWrite(t, d, 9000, 100)

	// The crash kept write 3's first sector (its first 548 bytes, to the
	// sector boundary at 2048), the first sector of the zeroes, the grow
	// and write 4.
	medium := &crashDisk{data: cat(pat(1, 0, 1000), pat(w2, 1000, 1000), zeros(16384-2000))}
	copy(medium.data[2000:], pat(1, 2000, 8192-2000))
	copy(medium.data[1500:], pat(w3, 1500, 548))
	copy(medium.data[3000:3072], zeros(72))
	copy(medium.data[9000:], pat(w4, 9000, 100))
	all := slices.Clone(medium.data)

	// Errors leave the model unchanged.
	if err := d.Recover(12288, medium.read); !errors.Is(err, ErrCrashSize) {
		t.Fatalf("Recover(bad size) = %v", err)
	}
	medium.data[1600] ^= 1
	var m *Mismatch
	if err := d.Recover(16384, medium.read); !errors.As(err, &m) || m.Off != 1600 {
		t.Fatalf("Recover(corrupt) = %v", err)
	}
	medium.data[1600] ^= 1
	if err := d.Recover(16384, func([]byte, int64) error { return errors.New("EIO") }); !errors.Is(err, ErrRead) {
		t.Fatalf("Recover(EIO) = %v", err)
	}
	if len(d.Uncertain()) != 3 || d.Size() != 16384 {
		t.Fatalf("failed Recover changed the model: %s", d)
	}

	medium.reads = nil
	must(t, d.Recover(16384, medium.read))
	wantReads := []Range{{1500, 1000}, {3000, 600}, {9000, 100}}
	if !slices.Equal(medium.reads, wantReads) {
		t.Errorf("reads %v, want only the uncertain ranges %v", medium.reads, wantReads)
	}
	if u := d.Uncertain(); len(u) != 0 {
		t.Errorf("Uncertain after Recover = %v", u)
	}
	if got := read(t, d, 0, 16384); firstDiff(got, all) != len(all) {
		t.Fatalf("collapsed contents differ at %d\n%s", firstDiff(got, all), d.Describe(0))
	}
	must(t, d.VerifyCrash(0, all)) // durable now: the only allowed value
	all[1700] ^= 1
	if err := d.VerifyCrash(0, all); err == nil {
		t.Fatal("collapsed model still allows a lost write")
	}
	// Collapsed extents refer to the original operations, not to copies.
	desc := d.Describe(0)
	for _, s := range []string{"[0x5dc,0x800) write id 3 (op 3)", "[0x2328,0x238c) write id 4 (op 6)"} {
		if !strings.Contains(desc, s) {
			t.Errorf("Describe lacks %q:\n%s", s, desc)
		}
	}
	// The workload continues.
	w5 := mustWrite(t, d, 0, 10)
	must(t, d.Verify(0, pat(w5, 0, 10)))

	// Recovering at the old size drops the grow and write 4.
	d2, _ := New(4096, nil)
	must(t, d2.Grow(8192))
	mustWrite(t, d2, 5000, 10)
	must(t, d2.Recover(4096, (&crashDisk{data: zeros(4096)}).read))
	if d2.Size() != 4096 || !slices.Equal(d2.CrashSizes(), []int64{4096}) {
		t.Errorf("after Recover(4096): %s", d2)
	}
	must(t, d2.Grow(8192))
	must(t, d2.Verify(0, zeros(8192)))
}

// TestConcurrentChecks runs the read-only methods from several goroutines
// (meaningful under -race).
func TestConcurrentChecks(t *testing.T) {
	d, _ := New(1<<20, nil)
	id := mustWrite(t, d, 0, 8192)
	d.Flush()
	mustWrite(t, d, 4096, 100)
	good := pat(id, 0, 8192)
	bad := zeros(8192)
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				if err := d.VerifyCrash(0, good); err != nil {
					done <- err
					return
				}
				if err := d.VerifyCrash(0, bad); err == nil {
					done <- errors.New("zeros accepted")
					return
				}
				_ = d.Uncertain()
				_ = d.String()
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadDurableAt(t *testing.T) {
	d, _ := New(4096, nil)
	id := mustWrite(t, d, 0, 4096)
	d.Flush()
	must(t, d.Grow(8192))
	mustWrite(t, d, 0, 8192)
	got := make([]byte, 8192)
	must(t, d.ReadDurableAt(got, 0))
	if want := cat(pat(id, 0, 4096), zeros(4096)); firstDiff(got, want) != len(want) {
		t.Fatalf("durable contents differ at %d", firstDiff(got, want))
	}
	must(t, d.VerifyCrash(0, got))
	if err := d.ReadDurableAt(got, 1); !errors.Is(err, ErrRange) {
		t.Fatalf("ReadDurableAt past end: %v", err)
	}
}

// TestBackingForZeros: bytes read as a backing layer's write at their own
// offset where the guest zeroed the range (or grew the disk over it) are
// told apart from every other bad read: a stale write of the disk itself,
// backing data where data was written, misplaced backing data, lost data
// read as zeros.
func TestBackingForZeros(t *testing.T) {
	base, _ := New(1<<20, nil)
	b1 := mustWrite(t, base, 0, 0x4000)
	base.Flush()
	d, err := New(1<<20, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteZeroes(0, 0x1000); err != nil {
		t.Fatal(err)
	}
	w := mustWrite(t, d, 0x1000, 0x1000)
	if err := d.WriteZeroes(0x2000, 0x1000); err != nil {
		t.Fatal(err)
	}
	d.Flush()
	w2 := mustWrite(t, d, 0x2000, 0x200) // pending over the zeroed range
	small, _ := New(0x2000, base)
	if err := small.Grow(0x4000); err != nil { // the grown tail reads zeros, not the backing file's
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		d     *Disk
		off   int64
		got   []byte
		crash bool
		want  bool
	}{
		{"backing data where zeros were written", d, 0, pat(b1, 0, 0x200), false, true},
		{"the same after a crash", d, 0, pat(b1, 0, 0x200), true, true},
		{"backing data past a grow", small, 0x2000, pat(b1, 0x2000, 0x200), false, true},
		{"backing data where data was written", d, 0x1000, pat(b1, 0x1000, 0x200), false, false},
		{"backing data where a pending write may land", d, 0x2000, pat(b1, 0x2000, 0x200), true, false},
		{"misplaced backing data", d, 0, pat(b1, 0x800, 0x200), false, false},
		{"the disk's own write where zeros were written", d, 0, pat(w, 0, 0x200), false, false},
		{"the disk's own pending write misplaced", d, 0, pat(w2, 0, 0x200), true, false},
		{"zeros where data was written", d, 0x1000, zeros(0x200), false, false},
	} {
		var err error
		if c.crash {
			err = c.d.VerifyCrash(c.off, c.got)
		} else {
			err = c.d.Verify(c.off, c.got)
		}
		var m *Mismatch
		if !errors.As(err, &m) {
			t.Fatalf("%s: error %v, want a *Mismatch", c.name, err)
		}
		if m.BackingForZeros() != c.want {
			t.Errorf("%s: BackingForZeros %v, want %v (found %v, candidates %v)", c.name, !c.want, c.want, m.Found, m.Candidates)
		}
	}
}
