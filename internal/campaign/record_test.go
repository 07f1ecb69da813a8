package campaign

import (
	"strings"
	"testing"

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
