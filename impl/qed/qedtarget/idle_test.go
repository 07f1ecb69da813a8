package qedtarget_test

import (
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestIdle: a Disk's idle NEED_CHECK clear happens at Idle and at no
// other time (its clock stands still: a real second passing does not
// fire it), after an allocating write; with a clock or delay of the
// Target's own, Idle leaves the timer to that clock.
func TestIdle(t *testing.T) {
	needCheck := func(fs afero.Fs) bool {
		h, err := qed.ReadHeaderWith(fs, "/i.qed", qed.OpenOptions{ForceShare: true})
		require.NoError(t, err)
		return h.Features&qed.FeatureNeedCheck != 0
	}
	for _, c := range []struct {
		name  string
		tg    qedtarget.Target
		clear bool
	}{
		{"default", qedtarget.Target{}, true},
		{"a delay of its own", qedtarget.Target{Options: qed.OpenOptions{IdleClearDelay: time.Hour}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := afero.NewMemMapFs()
			require.NoError(t, c.tg.Create(fs, "/i.qed", target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1}))
			d, err := c.tg.Open(fs, "/i.qed", target.OpenOptions{})
			require.NoError(t, err)
			defer d.Close()
			idler, ok := d.(target.Idler)
			require.True(t, ok)
			require.NoError(t, idler.Idle())
			require.False(t, needCheck(fs), "nothing written")
			for i := range 2 {
				_, err = d.WriteAt([]byte{1}, int64(i)*8192)
				require.NoError(t, err)
				require.True(t, needCheck(fs), "an allocating write sets NEED_CHECK")
				time.Sleep(20 * time.Millisecond) // the real clock plays no part
				require.True(t, needCheck(fs), "no clear before Idle")
				require.NoError(t, idler.Idle())
				require.Equal(t, !c.clear, needCheck(fs), "after Idle")
			}
			buf := make([]byte, 1)
			_, err = d.ReadAt(buf, 8192)
			require.NoError(t, err)
			require.Equal(t, byte(1), buf[0])
		})
	}
}
