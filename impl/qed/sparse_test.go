package qed_test

import (
	"bytes"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	qed "github.com/qedtorture/qedtorture/impl/qed"
)

// TestBigTablesNotWrittenWhole: with tables above 64 KiB (here 1 MiB
// clusters and 16-cluster tables: 16 MiB tables), creating an image and
// allocating a cluster write the header, the data and the sectors of the
// entries set, not tables of zeros: the file is extended instead (issue
// 19, goal 5). The image is consistent, reads back, and a new table in a
// reopened image is made the same way. Tables of at most 64 KiB are still
// written whole (TestJudgedStatesPinned pins their I/O).
func TestBigTablesNotWrittenWhole(t *testing.T) {
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	const cs, ts = 1 << 20, 16
	tableBytes := int64(cs * ts)
	span := int64(cs) * tableBytes / 8 // guest bytes one L2 table maps
	if err := qed.Create(fs, "/big.qed", qed.CreateOptions{Size: uint64(4 * span), ClusterSize: cs, TableSize: ts}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0xa5}, 3*512)
	for round, off := range []int64{5*cs + 512, 3*span + 7} {
		im, err := qed.Open(fs, "/big.qed", qed.OpenOptions{IdleClearDelay: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := im.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
		written := int64(0)
		for _, op := range fs.Trace().Ops {
			if op.Kind == crashsim.OpWrite {
				written += int64(len(op.Data))
			}
		}
		// Header, data, one L2 sector, one L1 sector, NEED_CHECK set
		// and cleared, per round.
		if limit := int64(round+1) * 8 * 512; written > limit {
			t.Fatalf("round %d: %d bytes written, want at most %d (no table written whole)", round, written, limit)
		}
		rep, err := checkFile(fs, "/big.qed")
		if err != nil || !rep.IsConsistent() {
			t.Fatalf("round %d: not consistent: %v %v", round, err, rep.Err())
		}
		im, err = qed.Open(fs, "/big.qed", qed.OpenOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(data)+2)
		if _, err := im.ReadAt(got, off-1); err != nil {
			t.Fatal(err)
		}
		want := append(append([]byte{0}, data...), 0)
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: read back %x..., want %x...", round, got[:8], want[:8])
		}
		im.Close()
	}
}
