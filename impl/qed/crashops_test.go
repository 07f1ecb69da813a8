package qed_test

// Crash tests of the metadata-changing operations (SetBacking, Rebase,
// Commit, Resize): every crash state crashsim.Explore builds from a run of
// the operation must pass the independent structural checker (props) —
// consistent, or NEED_CHECK set and repairable — and, after recovery (a
// writable open), read either the guest data before the operation or the
// data after it (docs/format.md, "Changing the backing file, committing,
// resizing": what a crash may leave).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/check"
)

const opsCluster = 4096

// pattern returns n bytes of a pattern derived from seed (never all zero).
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i*7+i/512)
		if b[i] == 0 {
			b[i] = seed | 1
		}
	}
	return b
}

// setup builds files on an in-memory filesystem with mk and returns them
// as a crashsim start image.
func setup(t *testing.T, mk func(fs afero.Fs)) *crashsim.Image {
	t.Helper()
	mem := afero.NewMemMapFs()
	mk(mem)
	files := map[string][]byte{}
	err := afero.Walk(mem, "/", func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := afero.ReadFile(mem, p)
		files[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := crashsim.NewImage(files)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustCreate(t *testing.T, fs afero.Fs, p string, o qed.CreateOptions, writes map[int64][]byte, zeroes ...int64) {
	t.Helper()
	if o.ClusterSize == 0 {
		o.ClusterSize = opsCluster
	}
	if err := qed.Create(fs, p, o); err != nil {
		t.Fatal(err)
	}
	im, err := qed.Open(fs, p, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	for off, b := range writes {
		if _, err := im.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	for _, z := range zeroes {
		if err := im.WriteZeroes(z, opsCluster); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkFile runs the independent structural checker on the image at p.
func checkFile(fs afero.Fs, p string) (*check.Report, error) {
	f, err := fs.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return check.File(f)
}

// guest recovers the image at p (a writable open, repairing it when
// NEED_CHECK is set, then a close) and returns its header and guest data
// read by a read-only open. The structural checker judges the file first.
func guest(fs afero.Fs, p string) (qed.Header, []byte, error) {
	rep, err := checkFile(fs, p)
	if err != nil {
		return qed.Header{}, nil, err
	}
	if !rep.IsConsistent() && !(rep.NeedCheck() && rep.RepairableByCheck()) {
		return qed.Header{}, nil, fmt.Errorf("%s: structure: %v", p, rep.Err())
	}
	im, err := qed.Open(fs, p, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		return qed.Header{}, nil, fmt.Errorf("recovery: %w", err)
	}
	if err := im.Close(); err != nil {
		return qed.Header{}, nil, fmt.Errorf("recovery close: %w", err)
	}
	rep, err = checkFile(fs, p)
	if err != nil {
		return qed.Header{}, nil, err
	}
	if !rep.IsConsistent() {
		return qed.Header{}, nil, fmt.Errorf("%s: structure after recovery: %v", p, rep.Err())
	}
	im, err = qed.Open(fs, p, qed.OpenOptions{ReadOnly: true, IdleClearDelay: -1})
	if err != nil {
		return qed.Header{}, nil, fmt.Errorf("reopen: %w", err)
	}
	defer im.Close()
	b := make([]byte, im.Size())
	if _, err := im.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return qed.Header{}, nil, fmt.Errorf("read: %w", err)
	}
	return im.Header(), b, nil
}

// view is the guest data the image at p reads on fs (no recovery).
func view(t *testing.T, fs afero.Fs, p string) []byte {
	t.Helper()
	im, err := qed.Open(fs, p, qed.OpenOptions{ReadOnly: true, IdleClearDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	b := make([]byte, im.Size())
	if _, err := im.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return b
}

// explore runs op from start under crashsim and judges every crash state
// (every operation index) with check.
func explore(t *testing.T, start *crashsim.Image, op func(fs afero.Fs) error, check func(fs afero.Fs) error) *crashsim.ExploreReport {
	t.Helper()
	const seed = 18
	o := crashsim.ExploreOptions{Start: start, AllPoints: true, Seed: seed, MaxFailures: 3,
		Models: []crashsim.Model{
			{Base: crashsim.Subset, Size: true},
			{Base: crashsim.Torn, Sector: 512, Size: true},
			{Base: crashsim.Prefix},
		}}
	rep, err := crashsim.Explore(func(fs *crashsim.FS) error { return op(fs) }, o,
		func(s crashsim.State) error { return check(s.FS) })
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d: %d crash points, %d states, none failing", seed, rep.Points, rep.States)
	if rep.States < 10 {
		t.Fatalf("only %d crash states judged", rep.States)
	}
	return rep
}

// after runs op on a copy of start and returns the filesystem after it.
func after(t *testing.T, start *crashsim.Image, op func(fs afero.Fs) error) afero.Fs {
	t.Helper()
	fs := start.NewFS(crashsim.Options{})
	if err := op(fs); err != nil {
		t.Fatal(err)
	}
	return fs
}

// longName is a backing name of about n bytes that names file: "./"
// repeated, so that it spans 512-byte sectors and still resolves.
func longName(n int, file string) string {
	return strings.Repeat("./", (n-len(file))/2) + file
}

// TestCrashSetBacking: rebase -u, with names that span sectors. Every
// crash state names the old backing file or the new one, whole, and reads
// the view that name gives.
func TestCrashSetBacking(t *testing.T) {
	crashDefectFromEnv(t)
	for _, tc := range []struct{ name, oldName, newName string }{
		{"beside", longName(600, "a.raw"), longName(700, "b.raw")},
		{"sector0", longName(4000, "a.raw"), longName(300, "b.raw")},
		{"drop", longName(600, "a.raw"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) { crashSetBacking(t, tc.oldName, tc.newName) })
	}
}

func crashSetBacking(t *testing.T, oldName, newName string) {
	start := setup(t, func(fs afero.Fs) {
		afero.WriteFile(fs, "/a.raw", pattern(1, 8*opsCluster), 0o644)
		afero.WriteFile(fs, "/b.raw", pattern(2, 8*opsCluster), 0o644)
		mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: oldName, BackingFormat: "raw"},
			map[int64][]byte{opsCluster: pattern(3, 1000)})
	})
	format := "raw"
	if newName == "" {
		format = ""
	}
	op := func(fs afero.Fs) error { return qed.SetBacking(fs, "/top.qed", newName, format, qed.OpenOptions{}) }
	before := view(t, start.NewFS(crashsim.Options{}), "/top.qed")
	want := view(t, after(t, start, op), "/top.qed")
	if bytes.Equal(before, want) {
		t.Fatal("the new backing file reads the same: the test cannot tell the views apart")
	}
	explore(t, start, op, func(fs afero.Fs) error {
		h, got, err := guest(fs, "/top.qed")
		if err != nil {
			return err
		}
		switch h.BackingFilename {
		case oldName:
			if !bytes.Equal(got, before) {
				return errors.New("old backing name, but not the old guest data")
			}
		case newName:
			if !bytes.Equal(got, want) {
				return errors.New("new backing name, but not the new guest data")
			}
		default:
			return fmt.Errorf("backing name is neither the old nor the new one: %q", h.BackingFilename)
		}
		return nil
	})
}

// TestCrashRebase: safe rebase onto a backing file that differs in some
// clusters, and removing the backing file: the guest data never changes.
func TestCrashRebase(t *testing.T) {
	racetest.Heavy(t)
	crashDefectFromEnv(t)
	for _, tc := range []struct {
		name, newName, newFmt string
		fresh                 bool // the image allocates nothing: the copies link a new L2 table
	}{
		{"onto-b", "b.raw", "raw", false},
		{"onto-b-fresh", "b.raw", "raw", true},
		{"drop", "", "", false},
		{"onto-qed", "c.qed", "qed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := setup(t, func(fs afero.Fs) {
				a := pattern(1, 8*opsCluster)
				b := append([]byte(nil), a...)
				copy(b[2*opsCluster:], pattern(2, 2*opsCluster)) // clusters 2, 3 differ
				copy(b[6*opsCluster+100:], pattern(4, 10))       // cluster 6 differs a little
				clear(b[7*opsCluster:])                          // cluster 7: b zeros
				afero.WriteFile(fs, "/a.raw", a, 0o644)
				afero.WriteFile(fs, "/b.raw", b, 0o644)
				mustCreate(t, fs, "/c.qed", qed.CreateOptions{Size: 6 * opsCluster}, map[int64][]byte{0: pattern(5, opsCluster)})
				writes := map[int64][]byte{3 * opsCluster: pattern(3, opsCluster)}
				if tc.fresh {
					writes = nil
				}
				mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: "a.raw", BackingFormat: "raw"}, writes)
			})
			op := func(fs afero.Fs) error {
				return qed.Rebase(fs, "/top.qed", tc.newName, tc.newFmt, qed.RebaseOptions{Open: qed.OpenOptions{IdleClearDelay: -1}})
			}
			want := view(t, start.NewFS(crashsim.Options{}), "/top.qed")
			fs := after(t, start, op)
			if got := view(t, fs, "/top.qed"); !bytes.Equal(got, want) {
				t.Fatal("the rebase changed the guest data")
			}
			explore(t, start, op, func(fs afero.Fs) error {
				h, got, err := guest(fs, "/top.qed")
				if err != nil {
					return err
				}
				if h.BackingFilename != "a.raw" && h.BackingFilename != tc.newName {
					return fmt.Errorf("backing name %q", h.BackingFilename)
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("guest data changed (backing name %q)", h.BackingFilename)
				}
				return nil
			})
		})
	}
}

// TestCrashCommit: commit into a QED base (growing it) or a raw one, with
// and without emptying the image: the image reads the same guest data at
// every crash state, and every 512-byte sector of the base reads its old
// or its new contents.
func TestCrashCommit(t *testing.T) {
	racetest.Heavy(t)
	crashDefectFromEnv(t)
	for _, tc := range []struct {
		name string
		raw  bool
		drop bool
	}{
		{"qed-base", false, false},
		{"qed-base-drop", false, true},
		{"raw-base", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := setup(t, func(fs afero.Fs) {
				if tc.raw {
					afero.WriteFile(fs, "/base", pattern(1, 6*opsCluster), 0o644)
				} else {
					mustCreate(t, fs, "/base", qed.CreateOptions{Size: 6 * opsCluster},
						map[int64][]byte{0: pattern(1, 6*opsCluster)})
				}
				f := "qed"
				if tc.raw {
					f = "raw"
				}
				mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: "base", BackingFormat: f},
					map[int64][]byte{opsCluster + 512: pattern(2, 2*opsCluster), 7 * opsCluster: pattern(3, 512)}, 5*opsCluster)
			})
			op := func(fs afero.Fs) error {
				return qed.Commit(fs, "/top.qed", qed.CommitOptions{Drop: tc.drop, Open: qed.OpenOptions{IdleClearDelay: -1}})
			}
			baseView := func(fs afero.Fs) ([]byte, error) {
				if tc.raw {
					return afero.ReadFile(fs, "/base")
				}
				_, b, err := guest(fs, "/base")
				return b, err
			}
			s0 := start.NewFS(crashsim.Options{})
			want := view(t, s0, "/top.qed")
			oldBase, err := baseView(s0)
			if err != nil {
				t.Fatal(err)
			}
			fs := after(t, start, op)
			newBase, err := baseView(fs)
			if err != nil {
				t.Fatal(err)
			}
			if got := view(t, fs, "/top.qed"); !bytes.Equal(got, want) {
				t.Fatal("the commit changed the image's guest data")
			}
			if !bytes.Equal(newBase[:len(want)], want) {
				t.Fatal("the base does not read the image's data after the commit")
			}
			if !tc.drop {
				im, err := qed.Open(fs, "/top.qed", qed.OpenOptions{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				ext, _ := im.Map()
				im.Close()
				if len(ext) != 1 || ext[0].Kind != qed.ExtentUnallocated {
					t.Fatalf("the image is not empty after the commit: %+v", ext)
				}
			}
			explore(t, start, op, func(fs afero.Fs) error {
				_, got, err := guest(fs, "/top.qed")
				if err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					return errors.New("the image's guest data changed")
				}
				b, err := baseView(fs)
				if err != nil {
					return fmt.Errorf("base: %w", err)
				}
				for off := 0; off < len(b); off += 512 {
					s := b[off:min(off+512, len(b))]
					if !sectorIs(s, oldBase, off) && !sectorIs(s, newBase, off) {
						return fmt.Errorf("base sector at %d is neither old nor new", off)
					}
				}
				return nil
			})
		})
	}
}

// sectorIs reports whether s equals view's bytes at off (zeros past its
// end).
func sectorIs(s, view []byte, off int) bool {
	for i, c := range s {
		v := byte(0)
		if off+i < len(view) {
			v = view[off+i]
		}
		if c != v {
			return false
		}
	}
	return true
}

// TestCrashResize: growing an image over a longer backing file. Every
// crash state has the old size and the old data, or the new size with the
// old data and zeros in the grown part (never the backing file's bytes).
func TestCrashResize(t *testing.T) {
	crashGrow(t, 12*opsCluster, func(afero.Fs) {})
}

// crashGrow grows /top.qed (3 clusters and 1 KiB over a longer raw
// backing file, one cluster of its own data, then prepare) to newSize
// and checks every crash state: the old size and data, or the new size
// with the old data and zeros in the grown part.
func crashGrow(t *testing.T, newSize int64, prepare func(afero.Fs)) {
	crashDefectFromEnv(t)
	start := setup(t, func(fs afero.Fs) {
		afero.WriteFile(fs, "/b.raw", pattern(1, 16*opsCluster), 0o644)
		mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 3*opsCluster + 1024, BackingFile: "b.raw", BackingFormat: "raw"},
			map[int64][]byte{opsCluster: pattern(2, 100)})
		prepare(fs)
	})
	op := func(fs afero.Fs) error {
		im, err := qed.Open(fs, "/top.qed", qed.OpenOptions{IdleClearDelay: -1})
		if err != nil {
			return err
		}
		if err := im.Resize(newSize); err != nil {
			im.Close()
			return err
		}
		return im.Close()
	}
	old := view(t, start.NewFS(crashsim.Options{}), "/top.qed")
	want := append(append([]byte(nil), old...), make([]byte, newSize-int64(len(old)))...)
	if got := view(t, after(t, start, op), "/top.qed"); !bytes.Equal(got, want) {
		t.Fatal("the grown part does not read zeros")
	}
	explore(t, start, op, func(fs afero.Fs) error {
		_, got, err := guest(fs, "/top.qed")
		if err != nil {
			return err
		}
		if !bytes.Equal(got, old) && !bytes.Equal(got, want) {
			return fmt.Errorf("guest data of %d bytes is neither the old nor the grown view", len(got))
		}
		return nil
	})
}

// TestCrashOpsRandom runs the crash checks of this file on seeded random
// chains: random geometry-preserving images (4 KiB clusters, 2 to 40
// clusters), backing files of random length and contents, random writes
// and zero clusters in the image, and a random operation among safe
// rebase (onto another raw file, a QED file or none), rebase -u, commit
// (with or without emptying) and grow. The seed is printed; set
// QED_CRASHOPS_SEED to replay it, QED_CRASHOPS_CASES for more cases than 12.
func TestCrashOpsRandom(t *testing.T) {
	racetest.Heavy(t)
	crashDefectFromEnv(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QED_CRASHOPS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("QED_CRASHOPS_SEED: %v", err)
		}
		seed = v
	}
	n := 12
	if testing.Short() {
		n = 4
	}
	if s := os.Getenv("QED_CRASHOPS_CASES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("QED_CRASHOPS_CASES=%q: want a positive number", s)
		}
		n = v
	}
	t.Logf("seed %d (QED_CRASHOPS_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 18))
	for i := range n {
		cs := rng.Uint64()
		t.Run(fmt.Sprintf("seed=%d", cs), func(t *testing.T) { crashOpsCase(t, cs) })
		if t.Failed() {
			t.Fatalf("case %d failed: QED_CRASHOPS_SEED=%d replays the cases up to it", i, seed)
		}
	}
}

func crashOpsCase(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0))
	clusters := 2 + rng.IntN(39)
	size := int64(clusters*opsCluster - rng.IntN(8)*512)
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i < n; i += 512 {
			if rng.IntN(3) > 0 {
				v := byte(rng.IntN(255) + 1)
				for j := i; j < min(i+512, n); j++ {
					b[j] = v
				}
			}
		}
		return b
	}
	aLen := rng.IntN(int(size)/512+8) * 512
	a := randBytes(aLen)
	b := append([]byte(nil), a...)
	if rng.IntN(2) == 0 {
		b = b[:rng.IntN(len(b)+1)]
	}
	for range rng.IntN(4) {
		if len(b) > 0 {
			off := rng.IntN(len(b))
			copy(b[off:], randBytes(1+rng.IntN(3*opsCluster)))
		}
	}
	op := rng.IntN(6)
	start := setup(t, func(fs afero.Fs) {
		afero.WriteFile(fs, "/a.raw", a, 0o644)
		afero.WriteFile(fs, "/b.raw", b, 0o644)
		mustCreate(t, fs, "/c.qed", qed.CreateOptions{Size: uint64(len(b)+511) &^ 511}, map[int64][]byte{0: b[:len(b)&^511]})
		writes := map[int64][]byte{}
		var zeroes []int64
		for range rng.IntN(6) {
			off := rng.Int64N(size)
			n := min(int64(1+rng.IntN(2*opsCluster)), size-off)
			writes[off] = randBytes(int(n))
		}
		for range rng.IntN(3) {
			zeroes = append(zeroes, rng.Int64N(size/opsCluster)*opsCluster)
		}
		mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: uint64(size), BackingFile: "a.raw", BackingFormat: "raw"}, writes, zeroes...)
	})
	o := qed.OpenOptions{IdleClearDelay: -1}
	newSize := size + int64(rng.IntN(8)+1)*4096
	var name string
	var apply func(fs afero.Fs) error
	switch op {
	case 0:
		name, apply = "rebase onto b.raw", func(fs afero.Fs) error {
			return qed.Rebase(fs, "/top.qed", "b.raw", "raw", qed.RebaseOptions{Open: o})
		}
	case 1:
		name, apply = "rebase onto c.qed", func(fs afero.Fs) error {
			return qed.Rebase(fs, "/top.qed", "c.qed", "qed", qed.RebaseOptions{Open: o})
		}
	case 2:
		name, apply = "rebase onto nothing", func(fs afero.Fs) error {
			return qed.Rebase(fs, "/top.qed", "", "", qed.RebaseOptions{Open: o})
		}
	case 3:
		n := longName(rng.IntN(900)+10, "b.raw")
		name, apply = fmt.Sprintf("rebase -u onto a %d-byte name of b.raw", len(n)), func(fs afero.Fs) error {
			return qed.SetBacking(fs, "/top.qed", n, "raw", o)
		}
	case 4:
		drop := rng.IntN(2) == 0
		name, apply = fmt.Sprintf("commit (drop %v)", drop), func(fs afero.Fs) error {
			return qed.Commit(fs, "/top.qed", qed.CommitOptions{Open: o, Drop: drop})
		}
	default:
		name, apply = fmt.Sprintf("grow to %d", newSize), func(fs afero.Fs) error {
			im, err := qed.Open(fs, "/top.qed", o)
			if err != nil {
				return err
			}
			if err := im.Resize(newSize); err != nil {
				im.Close()
				return err
			}
			return im.Close()
		}
	}
	t.Logf("%d clusters, size %d, a.raw %d bytes, b.raw %d bytes: %s", clusters, size, len(a), len(b), name)
	s0 := start.NewFS(crashsim.Options{})
	before := view(t, s0, "/top.qed")
	after := view(t, after(t, start, apply), "/top.qed")
	switch op {
	case 0, 1, 2, 4:
		if !bytes.Equal(before, after) {
			t.Fatal("the operation changed the guest data")
		}
	case 5:
		if !bytes.Equal(after[:len(before)], before) || !allZeroBytes(after[len(before):]) {
			t.Fatal("the grow changed the data or the new part is not zeros")
		}
	}
	explore(t, start, apply, func(fs afero.Fs) error {
		_, got, err := guest(fs, "/top.qed")
		if err != nil {
			return err
		}
		if !bytes.Equal(got, before) && !bytes.Equal(got, after) {
			return errors.New("guest data is neither the old nor the new view")
		}
		return nil
	})
}

func allZeroBytes(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// TestCrashResizeAfterRebaseNone: growing an image whose partial last
// cluster holds copy-on-write bytes of a backing file removed by a safe
// rebase none. Every crash state has the old size and data, or the new
// size with zeros in the grown part: the tail's zeroing is durable before
// the header announces the new size.
func TestCrashResizeAfterRebaseNone(t *testing.T) {
	crashGrow(t, 5*opsCluster, func(fs afero.Fs) {
		if err := qed.Rebase(fs, "/top.qed", "", "", qed.RebaseOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}
