package qed

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/spf13/afero"
)

// qemuCheckJSON is every field `qemu-img check --output=json` prints
// (QAPI ImageCheck); decoding refuses any other, so a field QEMU adds is
// noticed rather than silently left uncompared.
type qemuCheckJSON struct {
	Filename           string `json:"filename"`
	Format             string `json:"format"`
	CheckErrors        int64  `json:"check-errors"`
	ImageEndOffset     *int64 `json:"image-end-offset"`
	Corruptions        int64  `json:"corruptions"`
	Leaks              int64  `json:"leaks"`
	CorruptionsFixed   int64  `json:"corruptions-fixed"`
	LeaksFixed         int64  `json:"leaks-fixed"`
	TotalClusters      int64  `json:"total-clusters"`
	AllocatedClusters  int64  `json:"allocated-clusters"`
	FragmentedClusters int64  `json:"fragmented-clusters"`
	CompressedClusters int64  `json:"compressed-clusters"`
}

// qemuCheck runs `qemu-img check --output=json` (with -r all if repair)
// and returns every field it printed.
func qemuCheck(t *testing.T, qimg, path string, repair bool) qemuCheckJSON {
	t.Helper()
	args := []string{"check", "-f", "qed", "--output=json"}
	if repair {
		args = append(args, "-r", "all")
	}
	out, _ := exec.Command(qimg, append(args, path)...).Output()
	var j qemuCheckJSON
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		t.Fatalf("qemu-img check output %q: %v", out, err)
	}
	if j.Format != "qed" || j.Filename != path || j.CompressedClusters != 0 {
		t.Fatalf("qemu-img check of %s: %+v", path, j)
	}
	return j
}

// sameCheck compares every field of our CheckReport with qemu-img's
// report; a field of CheckReport this function does not know fails the
// test (add it here). QEMU prints no image-end-offset for QED: ours must be
// the file's length. Problems (ours only, in words) must name each
// corruption, fixed corruption and check error once.
func sameCheck(t *testing.T, what, path string, got CheckReport, want qemuCheckJSON) {
	t.Helper()
	st, err := os.Stat(path)
	mustNil(t, err)
	fields := map[string][2]int64{
		"Corruptions":      {got.Corruptions, want.Corruptions},
		"CorruptionsFixed": {got.CorruptionsFixed, want.CorruptionsFixed},
		"Leaks":            {got.Leaks, want.Leaks},
		"LeaksFixed":       {got.LeaksFixed, want.LeaksFixed},
		"Allocated":        {got.Allocated, want.AllocatedClusters},
		"Fragmented":       {got.Fragmented, want.FragmentedClusters},
		"TotalClusters":    {got.TotalClusters, want.TotalClusters},
		"CheckErrors":      {got.CheckErrors, want.CheckErrors},
		"ImageEndOffset":   {got.ImageEndOffset, st.Size()},
		"Problems":         {int64(len(got.Problems)), got.Corruptions + got.CorruptionsFixed + got.CheckErrors},
	}
	rt := reflect.TypeOf(got)
	for i := range rt.NumField() {
		name := rt.Field(i).Name
		v, ok := fields[name]
		if !ok {
			t.Fatalf("CheckReport.%s is not compared with qemu-img check: add it to sameCheck", name)
		}
		if v[0] != v[1] {
			t.Errorf("%s: %s is %d, want %d (qemu-img check's count; the file length for ImageEndOffset, one per finding for Problems)\nours %+v\nqemu %+v", what, name, v[0], v[1], got, want)
		}
	}
	if want.ImageEndOffset != nil {
		t.Errorf("%s: qemu-img now prints image-end-offset %d for QED: compare it", what, *want.ImageEndOffset)
	}
}

// TestCheckAgreesWithQEMU plants corruption and compares every field of
// the check report with qemu-img check's, read-only and with repair (then
// also the re-check of both repaired files): a quick cross-check;
// impl/qed/interop has the suite.
func TestCheckAgreesWithQEMU(t *testing.T) {
	qimg := qemuImg(t)
	fs := afero.NewOsFs()
	cases := []struct {
		name  string
		plant func(t *testing.T, path string)
	}{
		{"clean", func(t *testing.T, path string) {}},
		{"l2-past-eof", func(t *testing.T, path string) { pokeL2(t, fs, path, 2*cs4k, 1<<30) }},
		{"l2-misaligned", func(t *testing.T, path string) { pokeL2(t, fs, path, 2*cs4k, 5*cs4k+8) }},
		{"l2-into-header", func(t *testing.T, path string) { pokeL2(t, fs, path, 2*cs4k, 0x200) }},
		{"double-ref", func(t *testing.T, path string) {
			pokeL2(t, fs, path, 3*cs4k, l2Entry(t, fs, path, 0))
		}},
		{"double-ref-l1-table", func(t *testing.T, path string) {
			pokeL2(t, fs, path, 3*cs4k, cs4k) // data entry pointing at the L1 table
		}},
		{"leak", func(t *testing.T, path string) {
			f, err := fs.OpenFile(path, 2, 0)
			mustNil(t, err)
			st, _ := f.Stat()
			f.WriteAt(make([]byte, 3*cs4k), st.Size())
			f.Close()
		}},
		{"l1-invalid", func(t *testing.T, path string) {
			setHeaderField(t, fs, path, cs4k+8, 8, 1<<40) // L1[1]
		}},
		{"l1-and-l2-invalid", func(t *testing.T, path string) {
			setHeaderField(t, fs, path, cs4k+8, 8, 1<<40) // L1[1]
			pokeL2(t, fs, path, 2*cs4k, 1<<30)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.qed")
			// 4 KiB clusters, 2-cluster tables: 1024 entries per table,
			// L1[1] covers guest clusters 1024 onwards.
			mustNil(t, Create(fs, path, CreateOptions{Size: 8 << 20, ClusterSize: cs4k, TableSize: 2}))
			im, err := Open(fs, path, OpenOptions{})
			mustNil(t, err)
			for _, c := range []int64{0, 1, 2, 3, 7, 1100} {
				_, err := im.WriteAt([]byte{1}, c*cs4k)
				mustNil(t, err)
			}
			mustNil(t, im.Close())
			tc.plant(t, path)
			ro, err := Open(fs, path, OpenOptions{ReadOnly: true})
			mustNil(t, err)
			got, err := ro.Check(false)
			mustNil(t, err)
			ro.Close()
			sameCheck(t, "read-only check", path, got, qemuCheck(t, qimg, path, false))

			// Repair two copies, one each; the fixed counts agree, and
			// so do the re-checks of both repaired files.
			ours, theirs := filepath.Join(dir, "ours.qed"), filepath.Join(dir, "theirs.qed")
			for _, p := range []string{ours, theirs} {
				b, err := os.ReadFile(path)
				mustNil(t, err)
				mustNil(t, os.WriteFile(p, b, 0o644))
				skipFinalCheck(t, p)
			}
			rw, err := Open(fs, ours, OpenOptions{})
			mustNil(t, err)
			fixed, err := rw.Check(true)
			mustNil(t, err)
			mustNil(t, rw.Close())
			q := qemuCheck(t, qimg, theirs, true)
			if fixed.CorruptionsFixed != q.CorruptionsFixed || fixed.LeaksFixed != q.LeaksFixed {
				t.Errorf("repair: fixed %d corruptions and %d leaks, qemu-img -r all %d and %d",
					fixed.CorruptionsFixed, fixed.LeaksFixed, q.CorruptionsFixed, q.LeaksFixed)
			}
			for _, p := range []string{ours, theirs} {
				ro, err := Open(fs, p, OpenOptions{ReadOnly: true})
				mustNil(t, err)
				got, err := ro.Check(false)
				mustNil(t, err)
				ro.Close()
				sameCheck(t, "re-check of "+filepath.Base(p), p, got, qemuCheck(t, qimg, p, false))
			}
		})
	}
}

// TestQEMUBackingBothWays: a QEMU-made chain (raw base, qed overlay with
// zero clusters and partial writes) reads identically through this
// package; then we write COW into it and QEMU reads our result.
func TestQEMUBackingBothWays(t *testing.T) {
	qimg := qemuImg(t)
	qio, err := exec.LookPath("qemu-io")
	if err != nil {
		t.Skip("qemu-io not installed")
	}
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	base := filepath.Join(dir, "base.raw")
	run(qimg, "create", "-q", "-f", "raw", base, "100K")
	run(qio, "-f", "raw", "-c", "write -P 0x41 0 100k", base)
	top := filepath.Join(dir, "top.qed")
	// Overlay larger than its backing, unaligned size.
	run(qimg, "create", "-q", "-f", "qed", "-o", "cluster_size=4096,table_size=2", "-b", "base.raw", "-F", "raw", top, "257536")
	run(qio, "-f", "qed", "-c", "write -P 0x42 5000 3000", "-c", "write -z 16k 8k", "-c", "write -P 0x43 98k 6k", top)
	compare := func() {
		t.Helper()
		raw := filepath.Join(dir, "out.raw")
		run(qimg, "convert", "-f", "qed", "-O", "raw", top, raw)
		want, err := os.ReadFile(raw)
		mustNil(t, err)
		im, err := Open(afero.NewOsFs(), top, OpenOptions{ReadOnly: true})
		mustNil(t, err)
		defer im.Close()
		assertEqual(t, readAll(t, im), want)
	}
	compare()
	im, err := Open(afero.NewOsFs(), top, OpenOptions{})
	mustNil(t, err)
	_, err = im.WriteAt(fill(100, 0x44), 30*1024+7) // COW from backing
	mustNil(t, err)
	_, err = im.WriteAt(fill(100, 0x45), 16*1024+10) // into a zero cluster
	mustNil(t, err)
	_, err = im.WriteAt(fill(10, 0x46), 99*1024+4090) // COW past the backing end
	mustNil(t, err)
	mustNil(t, im.WriteZeroes(40*1024+100, 10000))
	mustNil(t, im.Close())
	run(qimg, "check", "-f", "qed", top)
	compare()
}
