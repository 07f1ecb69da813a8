package qed

import (
	"testing"
	"time"
)

// Tests written for mutants of alloc.go that survived impl/qed's suite
// (docs/mutation.md, "impl/qed: the code changed since 78d146e"): the
// drain of Lock and which allocations in flight overlap.

// waitFor polls cond (under the lock held exclusively) until it holds or
// the deadline passes.
func waitFor(t *testing.T, m *imageMutex, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		m.lockMeta()
		ok := cond()
		m.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLockHoldsNewAllocationsBack: while Lock waits for an allocation in
// flight it counts itself as draining, so that a new allocation waits
// (waitDrained) until Lock has had the image; when the drain ends the
// waiting allocation is woken and proceeds once Lock is released, and
// the count is back to 0 (a second drain works the same).
func TestLockHoldsNewAllocationsBack(t *testing.T) {
	var m imageMutex
	m.init()
	for round := 0; round < 2; round++ {
		m.lockMeta()
		m.inflight = append(m.inflight, inflightAlloc{id: 1, first: 0, n: 1})
		m.Unlock()

		locked := make(chan struct{})
		release := make(chan struct{})
		go func() {
			m.Lock()
			close(locked)
			<-release
			m.Unlock()
		}()
		waitFor(t, &m, "Lock to drain", func() bool { return m.draining != 0 })
		m.lockMeta()
		if m.draining != 1 {
			t.Fatalf("round %d: draining = %d while one Lock waits, want 1", round, m.draining)
		}
		m.Unlock()

		passed := make(chan struct{})
		go func() {
			m.lockMeta()
			m.waitDrained()
			close(passed)
			m.Unlock()
		}()
		select {
		case <-passed:
			t.Fatalf("round %d: a new allocation passed while Lock was draining", round)
		case <-time.After(50 * time.Millisecond):
		}

		// The allocation in flight links (step 3): Lock gets the image.
		m.lockMeta()
		m.inflight = m.inflight[:0]
		m.cond.Broadcast()
		m.Unlock()
		select {
		case <-locked:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Lock never got the image", round)
		}
		select {
		case <-passed:
			t.Fatalf("round %d: a new allocation passed while Lock held the image", round)
		default:
		}
		close(release)
		select {
		case <-passed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the waiting allocation was never woken after the drain", round)
		}
		m.lockMeta()
		if m.draining != 0 {
			t.Fatalf("round %d: draining = %d after the drain, want 0", round, m.draining)
		}
		m.Unlock()
	}
}

// TestOverlappingInflight: an allocation in flight overlaps exactly the
// guest clusters it holds; its neighbours on either side are free to
// allocate at the same time.
func TestOverlappingInflight(t *testing.T) {
	var m imageMutex
	m.init()
	m.inflight = []inflightAlloc{{id: 1, first: 4, n: 2}} // clusters 4 and 5
	for _, c := range []struct {
		first, n uint64
		want     bool
	}{
		{2, 2, false}, {6, 1, false}, {0, 4, false}, {6, 10, false},
		{3, 2, true}, {5, 1, true}, {4, 1, true}, {5, 3, true}, {0, 100, true},
	} {
		if got := m.overlapping(c.first, c.n); got != c.want {
			t.Errorf("overlapping(%d, %d) with clusters [4, 6) in flight = %v, want %v", c.first, c.n, got, c.want)
		}
	}
}
