package qed

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
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

// TestRepairWholeTableAtLimit: tables of exactly 64 KiB (maxWholeTable:
// 4 KiB clusters, 16-cluster tables) are held whole, so a repair writes a
// fixed table whole, as QEMU's check does (one 64 KiB write), not the
// sectors of its cleared entries as it does for bigger, paged tables.
func TestRepairWholeTableAtLimit(t *testing.T) {
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	const tableBytes = 16 * cs4k
	mustNil(t, Create(fs, "/w.qed", CreateOptions{Size: 64 * cs4k, ClusterSize: cs4k, TableSize: 16}))
	im, err := Open(fs, "/w.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	_, err = im.WriteAt(fill(cs4k, 0x55), 0)
	mustNil(t, err)
	mustNil(t, im.Close())
	pokeL2(t, fs, "/w.qed", cs4k, 3)
	setHeaderField(t, fs, "/w.qed", offFeatures, 8, FeatureNeedCheck)
	before := len(fs.Trace().Ops)
	im, err = Open(fs, "/w.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	mustNil(t, im.Close())
	var writes []int
	for _, op := range fs.Trace().Ops[before:] {
		if op.Kind == crashsim.OpWrite {
			writes = append(writes, len(op.Data))
		}
	}
	// The fixed L2 table whole, then the header (NEED_CHECK cleared).
	if len(writes) != 2 || writes[0] != tableBytes {
		t.Errorf("repair writes %v, want the %d-byte table whole and the header", writes, tableBytes)
	}
	if e := l2Entry(t, fs, "/w.qed", cs4k); e != 0 {
		t.Errorf("the invalid entry reads %d after the repair", e)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) WriteAt([]byte, int64) (int, error) { return 0, errors.New("injected") }

// TestTableWriteErrorOffset: a failed table write reports the file offset
// it wrote at (the table's offset plus its first sector's), both for a
// range within one page and for one assembled across pages.
func TestTableWriteErrorOffset(t *testing.T) {
	for _, c := range []struct {
		paged       bool
		first, n    uint64
		wantAtDelta uint64
	}{
		{false, 100, 1, 512},       // entry 100: sector 1 of a whole table
		{true, 600, 1, 4096 + 512}, // entry 600: page 1, its sector 1
		{true, 500, 100, 7 * 512},  // entries 500..599: sectors 7 to 9, two pages
	} {
		tb := newTable(16384, c.paged)
		const off = 1 << 20
		at, err := tb.write(failWriter{}, off, c.first, c.n)
		if err == nil || at != off+c.wantAtDelta {
			t.Errorf("paged=%v, entries [%d, %d): write at %d (%v), want an error at %d", c.paged, c.first, c.first+c.n, at, err, off+c.wantAtDelta)
		}
		tb.release()
	}
}
