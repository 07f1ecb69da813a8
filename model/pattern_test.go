package model

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestMixInverse(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, x := range []uint64{0, 1, 1 << 63, ^uint64(0)} {
		if got := unmix(mix(x)); got != x {
			t.Fatalf("unmix(mix(%#x)) = %#x", x, got)
		}
	}
	for i := 0; i < 10000; i++ {
		x := rng.Uint64()
		if got := unmix(mix(x)); got != x {
			t.Fatalf("unmix(mix(%#x)) = %#x", x, got)
		}
	}
	if mixK1*mixK1Inv != 1 || mixK2*mixK2Inv != 1 {
		t.Fatal("modular inverses wrong")
	}
}

func TestPatternWordDecode(t *testing.T) {
	for _, c := range []struct {
		id uint64
		w  int64
	}{{1, 0}, {1, 8}, {7, 0x3000}, {MaxPatternID, MaxSize - 8}, {12345, 1 << 40}} {
		word := PatternWord(c.id, c.w)
		if word == 0 {
			t.Errorf("PatternWord(%d, %#x) = 0", c.id, c.w)
		}
		id, w := DecodeWord(word)
		if id != c.id || w != c.w {
			t.Errorf("DecodeWord(PatternWord(%d, %#x)) = %d, %#x", c.id, c.w, id, w)
		}
	}
	if id, _ := DecodeWord(0); id != 0 {
		t.Errorf("zero word decodes to id %d, want 0", id)
	}
	// Unaligned offsets round down to their word.
	if PatternWord(3, 0x1007) != PatternWord(3, 0x1000) {
		t.Error("PatternWord does not round the offset down")
	}
}

func TestFillMatchesPatternByte(t *testing.T) {
	// Heads, several four-word blocks and tails, also where the word
	// index wraps at patternOffBits.
	for _, base := range []int64{0x1000, 1<<(patternOffBits+3) - 40} {
		for off := int64(0); off < 20; off++ {
			for n := 0; n < 100; n++ {
				p := make([]byte, n)
				Fill(p, 9, base+off)
				for i := range p {
					if want := PatternByte(9, base+off+int64(i)); p[i] != want {
						t.Fatalf("Fill(off %#x, n %d)[%d] = %#x, want %#x", base+off, n, i, p[i], want)
					}
				}
			}
		}
	}
	a, b := make([]byte, 512), make([]byte, 512)
	Fill(a, 1, 0)
	Fill(b, 2, 0)
	if bytes.Equal(a, b) {
		t.Error("writes 1 and 2 have equal data")
	}
	Fill(b, 1, 512)
	if bytes.Equal(a, b) {
		t.Error("write 1 has equal data at offsets 0 and 512")
	}
}

func TestIdentify(t *testing.T) {
	buf := make([]byte, 100)
	Fill(buf, 5, 0x3003) // data of write 5 generated for offset 0x3003
	known := func(id uint64) bool { return id == 5 }
	for _, start := range []int{0, 1, 5, 13} {
		m, ok := Identify(buf[start:], known)
		if !ok {
			t.Fatalf("start %d: not identified", start)
		}
		want := Match{ID: 5, Index: 0, Len: 100 - start, SrcOff: 0x3003 + int64(start)}
		if m != want {
			t.Errorf("start %d: got %+v, want %+v", start, m, want)
		}
	}
	// Garbage in front: the match starts later.
	copy(buf, []byte{0, 0, 0})
	m, ok := Identify(buf, known)
	if !ok || m.Index != 3 || m.SrcOff != 0x3006 {
		t.Errorf("with 3 garbage bytes: %+v %v", m, ok)
	}
	if _, ok := Identify(buf, func(uint64) bool { return false }); ok {
		t.Error("identified an unknown id")
	}
	if _, ok := Identify(make([]byte, 64), nil); ok {
		t.Error("zeros identified as a pattern")
	}
	if _, ok := Identify(buf[:7], nil); ok {
		t.Error("identified 7 bytes")
	}
	var w [8]byte
	binary.LittleEndian.PutUint64(w[:], PatternWord(1, 8))
	if m, ok := Identify(w[:], nil); !ok || m.ID != 1 || m.SrcOff != 8 || m.Len != 8 {
		t.Errorf("one word: %+v %v", m, ok)
	}
}
