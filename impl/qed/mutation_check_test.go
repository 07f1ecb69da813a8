package qed

import (
	"fmt"
	"slices"
	"testing"

	"github.com/spf13/afero"
)

// Tests written for mutants of check.go that survived impl/qed's suite
// (docs/mutation.md, "impl/qed: the code changed since 78d146e").

// TestCheckProblemsNameOffsets: each Problems line of a check names the
// entry, its value and the file offset of the entry (L1[i] at the L1
// table's offset + 8i, L2[j] at its table's + 8j), and a cluster
// referenced twice by its index and offset; a repair's lines say the
// entry was cleared.
func TestCheckProblemsNameOffsets(t *testing.T) {
	const l2Span = 512 * cs4k
	for _, repair := range []bool{false, true} {
		t.Run(fmt.Sprint("repair=", repair), func(t *testing.T) {
			fs := afero.NewMemMapFs()
			path := "/p.qed"
			im := mustCreate(t, fs, path, CreateOptions{Size: 4 * l2Span, ClusterSize: cs4k, TableSize: 1}, OpenOptions{})
			_, err := im.WriteAt(fill(2*cs4k, 7), 0)
			mustNil(t, err)
			mustNil(t, im.Close())
			h, err := ReadHeader(fs, path)
			mustNil(t, err)
			l2 := l1Entry(t, fs, path, 0)
			pokeL2(t, fs, path, cs4k, 1<<30)
			setHeaderField(t, fs, path, int64(h.L1TableOffset)+16, 8, 1<<40)
			setHeaderField(t, fs, path, int64(h.L1TableOffset)+24, 8, 0x10008)
			rw, err := Open(fs, path, OpenOptions{})
			mustNil(t, err)
			defer rw.Close()
			rep, err := rw.Check(repair)
			mustNil(t, err)
			suffix := ": invalid offset"
			if repair {
				suffix += ", cleared"
			}
			want := []string{
				fmt.Sprintf("L2[1] of table %d = 0x40000000 at offset %d%s", l2, l2+8, suffix),
				fmt.Sprintf("L1[2] = 0x10000000000 at offset %d%s", h.L1TableOffset+16, suffix),
				fmt.Sprintf("L1[3] = 0x10008 at offset %d%s", h.L1TableOffset+24, suffix),
			}
			if !slices.Equal(rep.Problems, want) {
				t.Errorf("Problems\n%q\nwant\n%q", rep.Problems, want)
			}
		})
	}
	t.Run("double reference", func(t *testing.T) {
		fs := afero.NewMemMapFs()
		path := "/d.qed"
		im := mustCreate(t, fs, path, CreateOptions{Size: l2Span, ClusterSize: cs4k, TableSize: 1}, OpenOptions{})
		_, err := im.WriteAt(fill(3*cs4k, 7), 0)
		mustNil(t, err)
		mustNil(t, im.Close())
		host := l2Entry(t, fs, path, 0)
		pokeL2(t, fs, path, 2*cs4k, host)
		rw, err := Open(fs, path, OpenOptions{ReadOnly: true})
		mustNil(t, err)
		defer rw.Close()
		rep, err := rw.Check(false)
		mustNil(t, err)
		want := []string{fmt.Sprintf("cluster %d (offset %d) is referenced more than once", host/cs4k, host)}
		if !slices.Equal(rep.Problems, want) {
			t.Errorf("Problems %q, want %q", rep.Problems, want)
		}
	})
}
