package oracle_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/stretchr/testify/require"
)

// TestDataStageProvenBounds: stage 4 samples a lost pending write's
// proven range only above FullReadLimit, and only when at most one
// backing name is allowed: an image of exactly FullReadLimit bytes is
// read whole, as is one judged while a rebase may have changed its
// backing file (two names); with the one name of its backing file, it
// is sampled. (Mutants checked by hand: `size >= limit` and
// `len(o.BackingNames) < 1` in Judge fail this test.)
func TestDataStageProvenBounds(t *testing.T) {
	const lo, hi = 0x40000, 0x60000
	for _, c := range []struct {
		what    string
		o       oracle.Options
		sampled bool
	}{
		{"an image of exactly FullReadLimit", oracle.Options{FullReadLimit: 1 << 20}, false},
		{"an image one byte over FullReadLimit", oracle.Options{FullReadLimit: 1<<20 - 1}, true},
		{"its backing file's name", oracle.Options{FullReadLimit: 4096, BackingNames: []string{"backing0.raw"}}, true},
		{"two backing names", oracle.Options{FullReadLimit: 4096, BackingNames: []string{"backing0.raw", "alt9.raw"}}, false},
	} {
		st, e, _ := oracleCases(t, lostWriteScript)
		var n int64
		v := oracle.Judge(recoveryFlipTarget{flipAt: -1, lo: lo, hi: hi, n: &n}, st, e.ImagePath(), e.Model.Clone(), c.o)
		require.True(t, v.OK(), "%s: %v", c.what, v)
		if c.sampled {
			require.Positive(t, n, "%s: the lost write's range is not sampled", c.what)
			require.LessOrEqual(t, n, int64(3*4096), "%s: stage 4 read %d bytes of the lost write's range", c.what, n)
		} else {
			require.Equal(t, int64(hi-lo), n, "%s: the lost write's range is read whole", c.what)
		}
	}
}
