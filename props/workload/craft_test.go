package workload_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestCraftImage: the crafted image has the header fields and layout the
// craft asks for (read back by the independent checker), is consistent,
// and keeps its guest contents (the backing file's, through the long
// name); a writable open clears the unknown autoclear bits and NEED_CHECK
// and cuts the partial cluster, keeping the unknown compat bits.
func TestCraftImage(t *testing.T) {
	script := func(name int) string {
		return fmt.Sprintf("qedtorture-workload v1\n"+
			"image cluster_size=4096 table_size=2 size=65536 header_size=2 l1_gap=1 compat=0x300 autoclear=0x8000 need_check=1 backing_name=%d probe=1 tail=1000\n"+
			"backing raw size=8192 fill=1\nread 0x0 0x3000\n", name)
	}
	_, err := workload.Parse(strings.NewReader(script(5000)))
	require.ErrorContains(t, err, "backing_name 5000 must be in 15..3584") // two header clusters: MaxBackingName
	w, err := workload.Parse(strings.NewReader(script(3584)))
	require.NoError(t, err)
	fs := afero.NewMemMapFs()
	e, err := workload.NewExec(qedtarget.Target{}, fs, "/w", w)
	require.NoError(t, err)
	require.NoError(t, e.RunAll(), "the read through the long backing name")
	require.NoError(t, e.Disk.Close())

	// NewExec opened the image writable: read what the craft left first.
	fs2 := afero.NewMemMapFs()
	require.NoError(t, fs2.MkdirAll("/w", 0o755))
	_, err = workload.BuildBacking(qedtarget.Target{}, fs2, "/w", w.Geometry.Backing)
	require.NoError(t, err)
	require.NoError(t, qedtarget.Target{}.Create(fs2, "/w/image.qed", workloadCreateOptions(w)))
	require.NoError(t, workload.CraftImage(fs2, "/w/image.qed", w.Geometry, w.Geometry.Craft))
	rep := checkFile(t, fs2, "/w/image.qed")
	h := rep.Header
	require.EqualValues(t, 2, h.HeaderSize)
	require.EqualValues(t, 3*4096, h.L1TableOffset)
	require.EqualValues(t, 0x300, h.CompatFeatures)
	require.EqualValues(t, 0x8000, h.AutoclearFeatures)
	require.True(t, rep.NeedCheck())
	require.Zero(t, h.Features&0x04, "NO_PROBE cleared")
	require.EqualValues(t, 3584, h.BackingNameSize)
	require.EqualValues(t, (3+2)*4096+1000, rep.FileSize)
	require.True(t, rep.IsConsistent(), "%v", rep.Err())

	rep = checkFile(t, fs, "/w/image.qed") // after the writable open and close
	require.EqualValues(t, 0x300, rep.Header.CompatFeatures, "compat bits kept")
	require.Zero(t, rep.Header.AutoclearFeatures, "autoclear bits cleared")
	require.False(t, rep.NeedCheck())
	require.Zero(t, rep.FileSize%4096, "partial cluster cut")
	require.True(t, rep.IsConsistent(), "%v", rep.Err())
}

func workloadCreateOptions(w *workload.Workload) (o target.CreateOptions) {
	g := w.Geometry
	o = target.CreateOptions{Size: g.Size, ClusterSize: g.ClusterSize, TableSize: g.TableSize}
	if len(g.Backing) > 0 {
		o.BackingFile, o.BackingFormat = workload.BackingName(0, g.Backing[0].Format), g.Backing[0].Format
	}
	return o
}

func checkFile(t *testing.T, fs afero.Fs, p string) *check.Report {
	t.Helper()
	f, err := fs.Open(p)
	require.NoError(t, err)
	defer f.Close()
	rep, err := check.File(f)
	require.NoError(t, err)
	return rep
}
