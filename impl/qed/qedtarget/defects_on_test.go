//go:build qeddefects

package qedtarget_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/stretchr/testify/require"
)

// TestDefects: one target per seeded defect, named defect:NAME, carrying
// the defect's oracle read limit and switching its defect on.
func TestDefects(t *testing.T) {
	defer qed.SetDefect(qed.DefectNone)
	ds := qedtarget.Defects()
	require.Len(t, ds, len(qed.DefectCatalogue))
	for i, d := range ds {
		info := qed.DefectCatalogue[i]
		require.Equal(t, "defect:"+info.Name, d.Name())
		rl, ok := d.(target.ReadLimiter)
		require.True(t, ok, d.Name())
		require.Equal(t, qed.DefectReadLimit(info.Defect), rl.FullReadLimit(), d.Name())
		qed.SetDefect(qed.DefectNone)
		fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
		require.NoError(t, d.Create(fs, "/image.qed", target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1}))
		require.Equal(t, info.Defect, qed.ActiveDefect(), "%s switches its defect on", d.Name())
	}
}
