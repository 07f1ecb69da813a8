//go:build qeddefects

package qed

import (
	"testing"
	"time"
)

// TestDefectConcurrentSharedCOWBuffer: with the seeded defect, concurrent
// allocations build their clusters in one shared buffer, and a cluster
// ends up holding another write's bytes: the check of
// TestConcurrentAllocationsOverlapBackingReads, which passes without the
// defect, fails with it.
func TestDefectConcurrentSharedCOWBuffer(t *testing.T) {
	defer SetDefect(SetDefect(DefectConcurrentSharedCOWBuffer))
	_, bad := parallelAllocations(t, 5*time.Millisecond)
	if bad < 0 {
		t.Fatal("with the defect every cluster still holds its own write")
	}
	t.Logf("with the defect: cluster %d holds bytes of another write", bad)
}
