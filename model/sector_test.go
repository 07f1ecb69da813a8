package model

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestSectorRule states the crash rule with crafted states: legal ones
// accepted, illegal ones rejected with their reason. Every disk is 4 KiB
// with a flushed write of id 1 over all of it; w(n) is the n-th pending
// write's pattern over its range.
func TestSectorRule(t *testing.T) {
	type pw struct {
		off, n int64
		group  bool // in one concurrent group with the other group writes
	}
	type piece struct {
		w       int // index of the pending write whose bytes go here
		off, to int64
	}
	tests := []struct {
		name    string
		writes  []pw
		pieces  []piece // applied over the durable contents, in order
		reason  string  // "" = legal
		badOff  int64   // for illegal states: Mismatch.Off
		details string  // for illegal states: in Mismatch.Detail
	}{
		{"nothing applied", []pw{{0, 2048, false}}, nil, "", 0, ""},
		{"whole-sector tears of one write", []pw{{0, 2048, false}},
			[]piece{{0, 0, 512}, {0, 1024, 1536}}, "", 0, ""},
		{"tear inside a sector of one write", []pw{{0, 2048, false}},
			[]piece{{0, 0, 256}}, ReasonTorn, 0, "is applied at 0x0 but not at 0x100"},
		{"tear at a 4 KiB boundary inside a write is a sector tear", []pw{{512, 3584, false}},
			[]piece{{0, 512, 1536}}, "", 0, ""},
		{"partial-sector writes torn at their own edges", []pw{{100, 200, false}, {300, 400, false}},
			[]piece{{0, 100, 300}, {1, 300, 512}}, "", 0, ""},
		{"partial-sector write torn inside itself", []pw{{100, 200, false}, {300, 400, false}},
			[]piece{{1, 300, 400}}, ReasonTorn, 300, "but not at 0x190"},
		{"a partial write's second sector without its first", []pw{{300, 400, false}},
			[]piece{{0, 512, 700}}, "", 0, ""},
		{"overlap, both in issue order", []pw{{0, 300, false}, {200, 312, false}},
			[]piece{{0, 0, 300}, {1, 200, 512}}, "", 0, ""},
		{"overlap, only the later", []pw{{0, 300, false}, {200, 312, false}},
			[]piece{{1, 200, 512}}, "", 0, ""},
		{"overlap, only the earlier", []pw{{0, 300, false}, {200, 312, false}},
			[]piece{{0, 0, 300}}, "", 0, ""},
		{"overlap, out of issue order", []pw{{0, 300, false}, {200, 312, false}},
			[]piece{{1, 200, 512}, {0, 0, 300}}, ReasonOrder, 300, "shows at 0xc8 over write id 3"},
		{"overlap of a concurrent group, either order", []pw{{0, 300, true}, {200, 312, true}},
			[]piece{{1, 200, 512}, {0, 0, 300}}, "", 0, ""},
		{"concurrent group torn inside a sector", []pw{{0, 300, true}, {200, 312, true}},
			[]piece{{1, 200, 400}}, ReasonTorn, 200, ""},
		{"same sector twice, the earlier kept over the later's absence", []pw{{0, 512, false}, {0, 512, false}},
			[]piece{{0, 0, 512}}, "", 0, ""},
		{"per sector, different subsets", []pw{{0, 1024, false}, {0, 1024, false}},
			[]piece{{1, 0, 512}, {0, 512, 1024}}, "", 0, ""},
		{"two writes in one sector, torn at their edges", []pw{{0, 512, false}, {64, 64, false}},
			[]piece{{0, 0, 512}, {1, 64, 128}}, "", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := New(4096, nil)
			base := mustWrite(t, d, 0, 4096)
			d.Flush()
			ids := make([]uint64, len(tc.writes))
			for i, w := range tc.writes {
				if w.group && (i == 0 || !tc.writes[i-1].group) {
					d.BeginGroup()
				}
				ids[i] = mustWrite(t, d, w.off, w.n)
				if w.group && (i+1 == len(tc.writes) || !tc.writes[i+1].group) {
					d.EndGroup()
				}
			}
			got := pat(base, 0, 4096)
			for _, p := range tc.pieces {
				copy(got[p.off:p.to], pat(ids[p.w], p.off, int(p.to-p.off)))
			}
			err := d.VerifyCrash(0, got)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("legal state rejected: %v", err)
				}
				// Recover adopts it exactly.
				c := d.Clone()
				must(t, c.Recover(4096, (&crashDisk{data: got}).read))
				if back := read(t, c, 0, 4096); !slices.Equal(back, got) {
					t.Fatalf("recovered contents differ at %#x", firstDiff(back, got))
				}
				return
			}
			var m *Mismatch
			if !errors.As(err, &m) {
				t.Fatalf("illegal state: error %v, want a *Mismatch", err)
			}
			if m.Reason != tc.reason || m.Off != tc.badOff || !strings.Contains(m.Detail, tc.details) {
				t.Fatalf("reason %q at %#x (%s), want %q at %#x containing %q", m.Reason, m.Off, m.Detail, tc.reason, tc.badOff, tc.details)
			}
			if !strings.Contains(err.Error(), "rule broken ("+tc.reason+")") {
				t.Fatalf("error does not state the rule: %v", err)
			}
			// Recover rejects it the same way and leaves the model as it was.
			before := d.String()
			var rm *Mismatch
			if err := d.Recover(4096, (&crashDisk{data: got}).read); !errors.As(err, &rm) || rm.Reason != tc.reason {
				t.Fatalf("Recover: %v, want reason %q", err, tc.reason)
			}
			if d.String() != before {
				t.Fatal("a failed Recover changed the model")
			}
		})
	}
}

// TestSectorRuleValue: a byte that no candidate allows is reported as
// such, at that byte.
func TestSectorRuleValue(t *testing.T) {
	d, _ := New(4096, nil)
	base := mustWrite(t, d, 0, 4096)
	d.Flush()
	w := mustWrite(t, d, 0, 1024)
	got := cat(pat(w, 0, 1024), pat(base, 1024, 3072))
	got[700] ^= 0xff
	var m *Mismatch
	if err := d.VerifyCrash(0, got); !errors.As(err, &m) || m.Reason != ReasonValue || m.Off != 700 || m.Bad != 1 {
		t.Fatalf("corrupted byte: %v", err)
	}
}

// TestCrashSizesEveryGrow: every pending grow's size is allowed after a
// crash, and Recover takes each; other sizes are refused.
func TestCrashSizesEveryGrow(t *testing.T) {
	d, _ := New(4096, nil)
	must(t, d.Grow(8192))
	mustWrite(t, d, 6000, 100)
	must(t, d.Grow(16384))
	if got := d.CrashSizes(); !slices.Equal(got, []int64{4096, 8192, 16384}) {
		t.Fatalf("CrashSizes = %#x", got)
	}
	for _, size := range []int64{4096, 8192, 16384} {
		c := d.Clone()
		must(t, c.Recover(size, (&crashDisk{data: zeros(16384)}).read))
		if c.Size() != size {
			t.Fatalf("size %#x after Recover(%#x)", c.Size(), size)
		}
	}
	for _, size := range []int64{0, 12288, 20480} {
		if err := d.Clone().Recover(size, (&crashDisk{data: zeros(20480)}).read); !errors.Is(err, ErrCrashSize) {
			t.Fatalf("Recover(%#x) = %v, want ErrCrashSize", size, err)
		}
	}
}

// TestFailedWriteByteWise: a write that returned an error may have landed
// in part anywhere (a short host write), so its bytes are judged one by
// one; the other writes keep the sector rule.
func TestFailedWriteByteWise(t *testing.T) {
	d, _ := New(4096, nil)
	base := mustWrite(t, d, 0, 4096)
	d.Flush()
	w := mustWrite(t, d, 256, 256)
	got := cat(pat(base, 0, 256), pat(w, 256, 128), pat(base, 384, 4096-384))
	var m *Mismatch
	if err := d.VerifyCrash(0, got); !errors.As(err, &m) || m.Reason != ReasonTorn {
		t.Fatalf("torn write accepted before it failed: %v", err)
	}
	if !d.FailWrite(0) {
		t.Fatal("FailWrite(0) = false")
	}
	must(t, d.VerifyCrash(0, got))
	c := d.Clone()
	must(t, c.Recover(4096, (&crashDisk{data: got}).read))
	if back := read(t, c, 0, 4096); !slices.Equal(back, got) {
		t.Fatalf("recovered contents differ at %#x", firstDiff(back, got))
	}
	// A later write in the same sector still obeys the rule.
	w2 := mustWrite(t, d, 0, 512)
	got2 := cat(pat(w2, 0, 100), got[100:])
	if err := d.VerifyCrash(0, got2); !errors.As(err, &m) || m.Reason != ReasonTorn {
		t.Fatalf("torn later write accepted: %v", err)
	}
	if d.FailWrite(5) || d.FailWrite(-1) {
		t.Fatal("FailWrite of no pending write = true")
	}
}

// TestExcuse: an excused range allows any value, running or after a
// crash, and stays excused after Recover; outside it nothing changes.
func TestExcuse(t *testing.T) {
	d, _ := New(4096, nil)
	base := mustWrite(t, d, 0, 4096)
	d.Flush()
	d.Excuse(1024, 512)
	got := pat(base, 0, 4096)
	copy(got[1024:1536], zeros(512))
	got[1100] = 0x77
	must(t, d.Verify(0, got))
	must(t, d.VerifyCrash(0, got))
	bad := slices.Clone(got)
	bad[1600] ^= 1
	if err := d.VerifyCrash(0, bad); err == nil {
		t.Fatal("damage outside the excused range accepted")
	}
	must(t, d.Recover(4096, (&crashDisk{data: got}).read))
	got[1200] = 0x99
	must(t, d.VerifyCrash(0, got))
	w := mustWrite(t, d, 1024, 512) // written again: no longer excused
	d.Flush()
	if err := d.Verify(0, got); err == nil {
		t.Fatal("a range written after Excuse still allows anything")
	}
	must(t, d.Verify(1024, pat(w, 1024, 512)))
}

// TestExcuseInsideSector: excused bytes agree with every pending write, so
// a write kept around them is not torn by them.
func TestExcuseInsideSector(t *testing.T) {
	d, _ := New(4096, nil)
	d.Excuse(300, 100)
	w := mustWrite(t, d, 0, 512)
	got := pat(w, 0, 512)
	copy(got[300:400], zeros(100))
	must(t, d.VerifyCrash(0, got))
	got[450] ^= 1
	if err := d.VerifyCrash(0, got); err == nil {
		t.Fatal("a corrupted byte outside the excused range accepted")
	}
}

// TestExcuseSurvivesRecover: bytes excused stay excused after a Recover in
// which a pending write agreed with them.
func TestExcuseSurvivesRecover(t *testing.T) {
	d, _ := New(4096, nil)
	d.Excuse(0, 512)
	must(t, d.WriteZeroes(0, 512))
	must(t, d.Recover(4096, (&crashDisk{data: zeros(4096)}).read))
	got := zeros(4096)
	got[10] = 0x55
	must(t, d.Verify(0, got))
}
