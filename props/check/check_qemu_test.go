package check

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/internal/qemutool"
)

// TestCheckStructureQEMUImages checks images created and written by
// qemu-img/qemu-io: they must be consistent, leak nothing, and agree with
// `qemu-img check` on every count.
func TestCheckStructureQEMUImages(t *testing.T) {
	tool := qemutool.Require(t)
	seed := time.Now().UnixNano()
	if s := os.Getenv("QEDTORTURE_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (replay with QEDTORTURE_SEED=%d)", seed, seed)

	type config struct {
		cs, ts  int
		backing string // "", "raw" or "qed"
		zeroes  bool
	}
	configs := []config{
		{cs: 4096, ts: 4, zeroes: true},
		{cs: 4096, ts: 2},
		{cs: 4096, ts: 16, zeroes: true},
		{cs: 65536, ts: 4, zeroes: true},
		{cs: 65536, ts: 16},
		{cs: 4096, ts: 4, backing: "raw", zeroes: true},
		{cs: 4096, ts: 8, backing: "qed"},
	}
	const size = 64 << 20
	for i, cfg := range configs {
		cfg := cfg
		name := fmt.Sprintf("cs%d-ts%d-backing%s-zeroes%v", cfg.cs, cfg.ts, cfg.backing, cfg.zeroes)
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed + int64(i)))
			dir := t.TempDir()
			img := filepath.Join(dir, "img.qed")
			args := []string{"create", "-f", "qed", "-o", fmt.Sprintf("cluster_size=%d,table_size=%d", cfg.cs, cfg.ts)}
			switch cfg.backing {
			case "raw":
				base := filepath.Join(dir, "base.raw")
				mustRun(t, tool, "create", "-f", "raw", base, "3M")
				if _, err := tool.IOBatch(base, "raw", "write -P 0x11 0 3M"); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-b", "base.raw", "-F", "raw")
			case "qed":
				base := filepath.Join(dir, "base.qed")
				mustRun(t, tool, "create", "-f", "qed", "-o", "cluster_size=4096", base, "5M")
				if _, err := tool.IOBatch(base, "qed", "write -P 0x22 4k 1M", "write -P 0x23 2M 5k"); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-b", "base.qed", "-F", "qed")
			}
			mustRun(t, tool, append(args, img, fmt.Sprint(size))...)

			fresh := checkFileBoth(t, img)
			if !fresh.IsConsistent() || fresh.Leaks != 0 || fresh.AllocatedClusters != 0 || fresh.NeedCheck() {
				t.Fatalf("fresh qemu-img image:\n%s", fresh)
			}
			if got, want := fresh.Header.Features&featNoProbe != 0, cfg.backing == "raw"; got != want {
				t.Errorf("NO_PROBE = %v, want %v", got, want)
			}

			var cmds []string
			for k := 0; k < 24; k++ {
				off := rng.Int63n(size - 256<<10)
				n := 1 + rng.Int63n(3*int64(cfg.cs))
				if k%3 == 0 { // sector-aligned
					off, n = off&^511, (n+511)&^511
				}
				cmds = append(cmds, fmt.Sprintf("write -P 0x%02x %d %d", 0x30+k, off, n))
			}
			if cfg.zeroes {
				// Cluster-aligned write-zeroes over unallocated clusters
				// become zero clusters; one over written data too.
				cmds = append(cmds,
					fmt.Sprintf("write -z %d %d", size-8*cfg.cs, 4*cfg.cs),
					fmt.Sprintf("write -z %d %d", 0, 2*cfg.cs),
					"write -z 12345 777")
			}
			if _, err := tool.IOBatch(img, "qed", cmds...); err != nil {
				t.Fatal(err)
			}
			rep := checkFileBoth(t, img)
			q, code, err := tool.Check(img, "")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("qemu-img check exit %d: %+v", code, q)
			if !rep.IsConsistent() || rep.NeedCheck() || rep.Leaks != 0 || code != 0 {
				t.Fatalf("after qemu-io writes (qemu-img check exit %d):\n%s", code, rep)
			}
			if int64(rep.AllocatedClusters) != q.AllocatedClusters || int64(rep.FragmentedClusters) != q.FragmentedClusters ||
				int64(rep.TotalClusters) != q.TotalClusters || int64(rep.Corruptions()) != q.Corruptions || int64(rep.Leaks) != q.Leaks {
				t.Fatalf("counts differ from qemu-img check %+v:\n%s", q, rep)
			}
			if rep.AllocatedClusters == 0 || rep.L2Tables == 0 {
				t.Fatalf("workload allocated nothing:\n%s", rep)
			}
			if cfg.zeroes && rep.ZeroClusters == 0 {
				t.Errorf("write -z made no zero clusters:\n%s", rep)
			}
		})
	}
}

// TestCheckStructureQEMUTableSize1 checks a table_size 1 image from
// qemu-img create. QEMU 7.2 cannot open it (its table-offset check rejects
// one-cluster tables), so only the fresh image is compared.
func TestCheckStructureQEMUTableSize1(t *testing.T) {
	tool := qemutool.Require(t)
	img := filepath.Join(t.TempDir(), "img.qed")
	mustRun(t, tool, "create", "-f", "qed", "-o", "cluster_size=4096,table_size=1", img, "1M")
	rep := checkFileBoth(t, img)
	if !rep.IsConsistent() || rep.Leaks != 0 || rep.Header.TableSize != 1 || rep.FileClusters != 2 {
		t.Fatalf("fresh table_size 1 image:\n%s", rep)
	}
	if _, err := tool.IOBatch(img, "qed", "write -P 1 0 4k"); err != nil {
		t.Logf("as expected for QEMU 7.2, qemu-io cannot write a table_size 1 image: %v", err)
	}
}

// TestCheckStructureAgreesWithQEMU plants each corruption that QEMU can
// open and compares the counts with `qemu-img check`.
func TestCheckStructureAgreesWithQEMU(t *testing.T) {
	tool := qemutool.Require(t)
	dir := t.TempDir()
	for _, tc := range corruptions() {
		if !tc.qemu {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			im := smallImage(t)
			tc.poke(im)
			rep := Structure(im.buf)
			path := filepath.Join(dir, tc.name+".qed")
			if err := os.WriteFile(path, im.buf, 0o644); err != nil {
				t.Fatal(err)
			}
			q, code, err := tool.Check(path, "")
			if err != nil {
				t.Fatal(err)
			}
			if code == 1 {
				t.Fatalf("qemu-img check failed to check %s (exit 1): %+v", tc.name, q)
			}
			if int64(rep.Corruptions()) != q.Corruptions || int64(rep.Leaks) != q.Leaks ||
				int64(rep.AllocatedClusters) != q.AllocatedClusters || int64(rep.FragmentedClusters) != q.FragmentedClusters {
				t.Fatalf("qemu-img check (exit %d) says %+v; checker says:\n%s", code, q, rep)
			}
			wantCode := 0
			switch {
			case rep.Corruptions() > 0:
				wantCode = 2
			case rep.Leaks > 0:
				wantCode = 3
			}
			if code != wantCode {
				t.Errorf("qemu-img check exit %d, want %d", code, wantCode)
			}
		})
	}
}

func mustRun(t *testing.T, tool *qemutool.Tool, args ...string) {
	t.Helper()
	if _, err := tool.Img(args...); err != nil {
		t.Fatal(err)
	}
}

// checkFileBoth checks path through an *os.File and as bytes, and requires
// identical reports.
func checkFileBoth(t *testing.T, path string) *Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := File(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	assertSameReports(t, b, rep)
	return rep
}
