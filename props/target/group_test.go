package target_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/props/target"
)

// TestGroupPattern: the byte a pattern-only group write carries is never
// zero (a zero write's bytes) and differs from its neighbours' across the
// wrap of the id (255 ids per cycle), so adjacent writes of a group stay
// told apart.
func TestGroupPattern(t *testing.T) {
	for _, c := range []struct {
		id   uint32
		want byte
	}{{0, 1}, {1, 2}, {253, 254}, {254, 255}, {255, 1}, {510, 1}, {1<<32 - 1, byte((1<<32-1)%255) + 1}} {
		if got := target.GroupPattern(c.id); got != c.want {
			t.Errorf("GroupPattern(%d) = %d, want %d", c.id, got, c.want)
		}
	}
	for id := uint32(0); id < 1024; id++ {
		p, q := target.GroupPattern(id), target.GroupPattern(id+1)
		if p == 0 {
			t.Fatalf("GroupPattern(%d) = 0", id)
		}
		if p == q {
			t.Fatalf("GroupPattern(%d) = GroupPattern(%d) = %d", id, id+1, p)
		}
	}
}
