package campaign

import (
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestRecordFaultedEndMap: a run with faults keeps the map of its image at
// the end (where silent faults landed is located with it), its metadata
// written back first: the L2 table of the run's write is listed; a run
// without faults keeps none.
func TestRecordFaultedEndMap(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\n"))
	require.NoError(t, err)
	rec, err := Record(qedtarget.Target{}, w, 1, "sync:lost@nth=1")
	require.NoError(t, err)
	require.NotNil(t, rec.EndMap, "the map of a faulted run")
	require.Len(t, rec.EndMap.Tables, 2, "the L1 and the L2 table of the write: %+v", rec.EndMap.Tables)
	rec, err = Record(qedtarget.Target{}, w, 1, "")
	require.NoError(t, err)
	require.Nil(t, rec.EndMap)
}

// TestSilentUpTo: the faults that may have shaped a crash state are those
// injected up to the end of the op in progress at its point, each with
// the op in progress when it was injected (the last mark before it).
func TestSilentUpTo(t *testing.T) {
	end, err := crashsim.New(fsOptions).Point() // K 0: before every point asked
	require.NoError(t, err)
	lost := faultfs.Injection{Op: faultfs.OpWrite, Fault: faultfs.FaultLost, Path: ImagePath}
	r := &Recording{End: end, Injected: []faultfs.Injection{lost, lost, lost},
		Marks: []Mark{{Op: -1, K: 1, Injected: 0}, {Op: 0, K: 5, Injected: 0}, {Op: 1, K: 10, Injected: 1}, {Op: 2, K: 15, Injected: 3}}}
	for _, c := range []struct {
		k   int64
		ops []int
	}{{3, nil}, {7, []int{0}}, {12, []int{0, 1, 1}}, {20, []int{0, 1, 1}}} {
		injs, ops := r.silentUpTo(c.k)
		require.Equal(t, c.ops, ops, "k=%d", c.k)
		require.Len(t, injs, len(c.ops), "k=%d", c.k)
	}
}
