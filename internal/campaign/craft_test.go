package campaign

import (
	"context"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// craftScripts are one workload per kind of legal image the create
// commands cannot write (issue 14, part 3), with writes that allocate,
// a reopen and flushes.
var craftScripts = map[string]string{
	"compat":       "image cluster_size=4096 table_size=1 size=65536 compat=0x100",
	"autoclear":    "image cluster_size=4096 table_size=1 size=65536 autoclear=0x8000000000000000",
	"need_check":   "image cluster_size=4096 table_size=1 size=65536 need_check=1",
	"header_size":  "image cluster_size=4096 table_size=2 size=65536 header_size=3",
	"l1_gap":       "image cluster_size=4096 table_size=1 size=65536 l1_gap=2",
	"backing_name": "image cluster_size=4096 table_size=1 size=65536 header_size=2 backing_name=3584\nbacking qed size=65536 cluster_size=4096 table_size=1 fill=1",
	"probe":        "image cluster_size=4096 table_size=1 size=65536 probe=1\nbacking raw size=40960 fill=1",
	"no_probe":     "image cluster_size=4096 table_size=1 size=65536\nbacking raw size=40960 fill=1",
	"tail":         "image cluster_size=65536 table_size=1 size=1048576 tail=1536",
	"all":          "image cluster_size=4096 table_size=1 size=65536 header_size=2 l1_gap=1 compat=0x200 autoclear=0x400 need_check=1 backing_name=1000 probe=1 tail=512\nbacking raw size=40960 fill=1",
}

const craftOps = `
write 0x1000 0x1000 id=10
flush
write 0x3e00 0x400 id=11
reopen
write 0x0 0x3000 id=12
flush
read 0x0 0x10000
`

// TestCraftedImagesCampaign: impl/qed opens, writes, recovers and reopens
// every crafted legal image under every crash model, and the script form
// keeps the craft (parse of format is the same workload).
func TestCraftedImagesCampaign(t *testing.T) {
	seed := testSeed(t)
	for name, img := range craftScripts {
		t.Run(name, func(t *testing.T) {
			w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\n" + img + craftOps))
			require.NoError(t, err)
			if name != "no_probe" {
				require.False(t, w.Geometry.Craft.IsZero())
			}
			again, err := workload.Parse(strings.NewReader(w.String()))
			require.NoError(t, err)
			require.Equal(t, w.String(), again.String())
			require.Equal(t, w.Geometry.Craft, again.Geometry.Craft)
			// Every workload crashes during the creation too: the image is
			// absent, as created or as crafted, never a header pointing
			// past what is durable (a craft that wrote the header before
			// the file's extension failed here).
			rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: seed, Workload: w, Iterations: 2,
				Bound: 32, Samples: 8, SampledPoints: 3, CreateShare: 1})
			require.NoError(t, err)
			require.Empty(t, rep.Failures, "%+v", rep.Failures)
			require.EqualValues(t, 2, rep.Workloads)
		})
	}
}

// TestCraftInvalid: a craft that would make the image illegal or cannot
// apply is a parse error naming it.
func TestCraftInvalid(t *testing.T) {
	for _, c := range []struct{ img, want string }{
		{"image cluster_size=4096 table_size=1 size=4096 backing_name=100", "backing_name needs a backing file"},
		{"image cluster_size=4096 table_size=1 size=4096 probe=1\nbacking qed size=4096 cluster_size=4096 table_size=1 fill=1", "probe needs a raw backing file"},
		{"image cluster_size=4096 table_size=1 size=4096 tail=4096", "tail 4096"},
		{"image cluster_size=4096 table_size=1 size=4096 compat=1", "bits 8..63"},
		{"image cluster_size=4096 table_size=1 size=4096 backing_name=4000\nbacking raw size=4096 fill=1", "backing_name 4000 must be in 15..3584"},
	} {
		_, err := workload.Parse(strings.NewReader("qedtorture-workload v1\n" + c.img + "\n"))
		require.ErrorContains(t, err, c.want, c.img)
	}
}
