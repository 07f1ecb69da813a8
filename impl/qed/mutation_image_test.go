package qed

import (
	"os"
	"testing"

	"github.com/spf13/afero"
)

// Tests written for mutants of image.go that survived impl/qed's suite
// (docs/mutation.md, "impl/qed: the code changed since 78d146e").

// TestGrowZerosStaleTail: bytes past the image size inside the last data
// cluster (an image size that ends mid-cluster) are not guaranteed zero
// (a safe rebase none copies a partial cluster whole); a grow checks that
// very tail and zeros it, so the guest reads zeros there afterwards,
// whatever the bytes before the cluster (here an L2 table's zero
// entries) hold.
func TestGrowZerosStaleTail(t *testing.T) {
	fs := afero.NewMemMapFs()
	path := "/g.qed"
	im := mustCreate(t, fs, path, CreateOptions{Size: cs4k + cs4k/2, ClusterSize: cs4k, TableSize: 1}, OpenOptions{IdleClearDelay: -1})
	_, err := im.WriteAt(fill(cs4k/2, 0x5A), cs4k)
	mustNil(t, err)
	mustNil(t, im.Close())
	host := l2Entry(t, fs, path, cs4k)
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	mustNil(t, err)
	_, err = f.WriteAt(fill(cs4k/2, 0xEE), int64(host)+cs4k/2) // stale bytes past the size
	mustNil(t, err)
	mustNil(t, f.Close())

	im, err = Open(fs, path, OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	mustNil(t, im.Resize(4*cs4k))
	got := make([]byte, cs4k)
	mustRead(t, im, got, cs4k)
	want := append(fill(cs4k/2, 0x5A), make([]byte, cs4k/2)...)
	assertEqual(t, got, want)
	mustNil(t, im.Close())
}
