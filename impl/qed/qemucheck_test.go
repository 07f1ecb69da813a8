package qed

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"
)

// qemuCheck runs `qemu-img check --output=json` and returns its counts.
func qemuCheck(t *testing.T, qimg, path string, repair bool) CheckReport {
	t.Helper()
	args := []string{"check", "-f", "qed", "--output=json"}
	if repair {
		args = append(args, "-r", "all")
	}
	out, _ := exec.Command(qimg, append(args, path)...).Output()
	var j struct {
		Corruptions      int64 `json:"corruptions"`
		CorruptionsFixed int64 `json:"corruptions-fixed"`
		Leaks            int64 `json:"leaks"`
		Allocated        int64 `json:"allocated-clusters"`
		Fragmented       int64 `json:"fragmented-clusters"`
		Total            int64 `json:"total-clusters"`
		CheckErrors      int64 `json:"check-errors"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatalf("qemu-img check output %q: %v", out, err)
	}
	return CheckReport{Corruptions: j.Corruptions, Leaks: j.Leaks, Allocated: j.Allocated,
		Fragmented: j.Fragmented, TotalClusters: j.Total, CheckErrors: j.CheckErrors}
}

// TestCheckAgreesWithQEMU plants corruption and compares counts with
// qemu-img check (a quick cross-check; impl/qed/interop has the suite).
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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.qed")
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
			want := qemuCheck(t, qimg, path, false)
			ro, err := Open(fs, path, OpenOptions{ReadOnly: true})
			mustNil(t, err)
			got, err := ro.Check(false)
			mustNil(t, err)
			ro.Close()
			got.ImageEndOffset, got.Problems = 0, nil
			if got.Corruptions != want.Corruptions || got.Leaks != want.Leaks || got.Allocated != want.Allocated ||
				got.Fragmented != want.Fragmented || got.TotalClusters != want.TotalClusters || got.CheckErrors != want.CheckErrors {
				t.Fatalf("ours %+v\nqemu %+v", got, want)
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
