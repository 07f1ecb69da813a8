package qed

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/spf13/afero"
)

// recFs records WriteAt and Sync calls on files opened through it.
type recFs struct {
	afero.Fs
	mu  sync.Mutex
	ops []recOp
}

type recOp struct {
	path   string
	sync   bool
	off, n int64
}

func (o recOp) String() string {
	if o.sync {
		return "sync " + o.path
	}
	return fmt.Sprintf("write %s [%d,+%d)", o.path, o.off, o.n)
}

type recFile struct {
	afero.File
	fs *recFs
}

func (r *recFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := r.Fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &recFile{File: f, fs: r}, nil
}

func (r *recFs) Open(name string) (afero.File, error) { return r.OpenFile(name, os.O_RDONLY, 0) }

func (r *recFs) reset() { r.mu.Lock(); r.ops = nil; r.mu.Unlock() }

func (f *recFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	f.fs.ops = append(f.fs.ops, recOp{path: f.Name(), off: off, n: int64(len(p))})
	f.fs.mu.Unlock()
	return f.File.WriteAt(p, off)
}

func (f *recFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.ops = append(f.fs.ops, recOp{path: f.Name(), sync: true})
	f.fs.mu.Unlock()
	return f.File.Sync()
}

// firstIndex returns the index of the first op satisfying pred, or -1.
func firstIndex(ops []recOp, pred func(recOp) bool) int {
	for i, o := range ops {
		if pred(o) {
			return i
		}
	}
	return -1
}

// syncBetween reports whether a sync happens strictly between i and j.
func syncBetween(ops []recOp, i, j int) bool {
	for k := i + 1; k < j; k++ {
		if ops[k].sync {
			return true
		}
	}
	return false
}

func TestOrderingWithBacking(t *testing.T) {
	rfs := &recFs{Fs: afero.NewMemMapFs()}
	afero.WriteFile(rfs.Fs, "/base.raw", fill(8*cs4k, 0xaa), 0o644)
	im := mustCreate(t, rfs, "/top.qed", CreateOptions{Size: 8 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}, OpenOptions{})
	l1 := int64(im.Header().L1TableOffset)
	hdrEnd := int64(cs4k)
	for round := range 2 { // first with a new L2 table, then into the existing one
		rfs.reset()
		_, err := im.WriteAt(fill(100, 1), int64(round*2*cs4k)+50)
		mustNil(t, err)
		// Table updates reach the file at the metadata writeback.
		mustNil(t, im.Flush())
		ops := rfs.ops
		// The data goes out with its COW fill as one whole-cluster write.
		data := firstIndex(ops, func(o recOp) bool { return !o.sync && o.off >= l1+cs4k*DefaultTableSize && o.n == cs4k })
		lastData := -1
		for i, o := range ops {
			if !o.sync && o.n <= cs4k && o.off%cs4k+o.n <= cs4k && o.off >= hdrEnd+DefaultTableSize*cs4k && o.n != 512 {
				lastData = i
			}
		}
		l2 := firstIndex(ops, func(o recOp) bool { return !o.sync && (o.n == 512 || o.n == DefaultTableSize*cs4k) && o.off != l1 })
		if data < 0 || l2 < 0 || lastData > l2 || !syncBetween(ops, lastData, l2) {
			t.Fatalf("round %d: data (incl. COW fill) not synced before the L2 update: %v", round, ops)
		}
		if round == 0 {
			l1w := firstIndex(ops, func(o recOp) bool { return !o.sync && o.off == l1 })
			if l1w < 0 || !syncBetween(ops, l2, l1w) {
				t.Fatalf("new L2 table not synced before the L1 link: %v", ops)
			}
		}
		if hw := firstIndex(ops, func(o recOp) bool { return !o.sync && o.off == 0 }); hw >= 0 {
			t.Fatalf("header written (NEED_CHECK?) with a backing file: %v", ops)
		}
	}
	mustNil(t, im.Close())
}

func TestOrderingWithoutBacking(t *testing.T) {
	rfs := &recFs{Fs: afero.NewMemMapFs()}
	im := mustCreate(t, rfs, "/n.qed", CreateOptions{Size: 8 * cs4k, ClusterSize: cs4k}, OpenOptions{IdleClearDelay: -1})
	rfs.reset()
	_, err := im.WriteAt(fill(100, 1), 50)
	mustNil(t, err)
	mustNil(t, im.Flush()) // table updates reach the file at the metadata writeback
	ops := rfs.ops
	hw := firstIndex(ops, func(o recOp) bool { return !o.sync && o.off == 0 })
	meta := firstIndex(ops, func(o recOp) bool { return !o.sync && o.off != 0 && (o.n == 512 || o.n == DefaultTableSize*cs4k) })
	if hw < 0 || meta < 0 || hw > meta || !syncBetween(ops, hw, meta) {
		t.Fatalf("NEED_CHECK not durable before the first table update: %v", ops)
	}
	h, _ := ReadHeader(rfs.Fs, "/n.qed")
	if h.Features&FeatureNeedCheck == 0 {
		t.Fatal("NEED_CHECK not set")
	}
	rfs.reset()
	mustNil(t, im.Close())
	ops = rfs.ops
	clr := firstIndex(ops, func(o recOp) bool { return !o.sync && o.off == 0 })
	if clr < 1 || !ops[0].sync || !ops[len(ops)-1].sync || clr == len(ops)-1 {
		t.Fatalf("NEED_CHECK cleared without a flush before and after: %v", ops)
	}
}
