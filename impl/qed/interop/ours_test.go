package interop

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
)

// interopSeed is the workload seed: INTEROP_SEED or a fixed default, so
// every run is replayable.
func interopSeed(t *testing.T) int64 {
	t.Helper()
	seed := int64(0x9ed2026)
	if s := os.Getenv("INTEROP_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			t.Fatalf("INTEROP_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %#x (replay with INTEROP_SEED=%#x)", seed, seed)
	return seed
}

// workload applies ops seeded random writes and write-zeroes to the open
// image and to model (the guest contents), then writes pattern regions
// for qemu-io read -P and returns the qemu-io commands that verify them.
func workload(t *testing.T, im *qed.Image, model []byte, cluster int64, rng *rand.Rand, ops int) []string {
	t.Helper()
	size := int64(len(model))
	for i := 0; i < ops; i++ {
		off := rng.Int63n(size)
		n := 1 + rng.Int63n(min(3*cluster, 1<<20, size-off))
		switch rng.Intn(4) {
		case 0: // write-zeroes, cluster-aligned where possible
			off = off / cluster * cluster
			n = min(max(n/cluster, 1)*cluster, size-off)
			fallthrough
		case 1:
			if err := im.WriteZeroes(off, n); err != nil {
				t.Fatalf("op %d: WriteZeroes(%d, %d): %v", i, off, n, err)
			}
			clear(model[off : off+n])
		default:
			p := make([]byte, n)
			rng.Read(p)
			if _, err := im.WriteAt(p, off); err != nil {
				t.Fatalf("op %d: WriteAt(%d, %d): %v", i, off, n, err)
			}
			copy(model[off:], p)
		}
		if rng.Intn(10) == 0 {
			if err := im.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Four disjoint regions, one per quarter of the image: three patterns
	// and one write-zeroes.
	var cmds []string
	slot := size / 4 &^ 511
	for i, b := range []byte{0xe1, 0xe2, 0xe3, 0} {
		start := int64(i) * slot
		off := start + rng.Int63n(slot/2)&^511
		n := min(1+rng.Int63n(2*cluster), start+slot-off)
		if b == 0 {
			if err := im.WriteZeroes(off, n); err != nil {
				t.Fatal(err)
			}
		} else {
			p := bytes.Repeat([]byte{b}, int(n))
			if _, err := im.WriteAt(p, off); err != nil {
				t.Fatalf("pattern %d: %v", i, err)
			}
		}
		for j := off; j < off+n; j++ {
			model[j] = b
		}
		cmds = append(cmds, fmt.Sprintf("read -P %#x %d %d", b, off, n))
	}
	return cmds
}

// verifyWithQEMU: qemu-img check is clean, qemu-img compare finds img
// equal to model, and qemu-io read -P confirms the pattern regions.
func (r *rig) verifyWithQEMU(img string, model []byte, reads []string) {
	r.t.Helper()
	c, code, err := r.q.Check(img, "")
	if err != nil || code != 0 || c.Corruptions != 0 || c.Leaks != 0 || c.CheckErrors != 0 {
		r.t.Fatalf("qemu-img check of impl/qed's image: exit %d %+v %v", code, c, err)
	}
	ours := r.checkJSON(img)
	if ours.AllocatedClusters != c.AllocatedClusters || ours.TotalClusters != c.TotalClusters ||
		ours.FragmentedClusters != c.FragmentedClusters {
		r.t.Errorf("counts differ: qedtorture %+v, qemu-img %+v", ours, c)
	}
	raw := img + ".model"
	if err := os.WriteFile(raw, model, 0o644); err != nil {
		r.t.Fatal(err)
	}
	res, err := r.q.RunImg("compare", "-f", "raw", "-F", "qed", raw, img)
	if err != nil || res.ExitCode != 0 {
		r.t.Fatalf("qemu-img compare model vs impl/qed image: exit %d %v\n%s%s", res.ExitCode, err, res.Stdout, res.Stderr)
	}
	r.io(img, "qed", reads...)
}

// TestOursReadByQEMU: images made by qedtorture create and written through
// impl/qed by a seeded workload pass qemu-img check clean and read as the
// model with qemu-img compare and qemu-io read -P.
func TestOursReadByQEMU(t *testing.T) {
	seed := interopSeed(t)
	gs := []geometry{{4 << 10, 2}, {4 << 10, 16}, {64 << 10, 4}, {1 << 20, 4}, {2 << 20, 2}}
	if fullRun() {
		gs = append(gs, geometry{1 << 20, 16}, geometry{2 << 20, 8})
	}
	for i, g := range gs {
		// Alternate an unaligned and an aligned size across geometries.
		for j, size := range [][]int64{{3<<20 + 1536}, {8 << 20}}[i%2] {
			t.Run(fmt.Sprintf("%v-s%d", g, size), func(t *testing.T) {
				r := newRig(t)
				rng := rand.New(rand.NewSource(seed + int64(10*i+j)))
				img := r.path("ours.qed")
				r.qtOK("create", "-q", "-o", fmt.Sprintf("cluster_size=%d,table_size=%d", g.cluster, g.table), img, strconv.FormatInt(size, 10))
				im, err := qed.Open(r.osfs, img, qed.OpenOptions{IdleClearDelay: -1})
				if err != nil {
					t.Fatal(err)
				}
				model := make([]byte, size)
				reads := workload(t, im, model, g.cluster, rng, 60)
				if err := im.Close(); err != nil {
					t.Fatal(err)
				}
				r.verifyWithQEMU(img, model, reads)
			})
		}
	}
}

// TestOursChainsReadByQEMU: overlays made by qedtorture create -b on a
// raw and on a QED backing file (both shorter than the overlay), written
// through impl/qed (copy-on-write), then grown with Resize, read as the
// model in QEMU.
func TestOursChainsReadByQEMU(t *testing.T) {
	seed := interopSeed(t)
	for i, backingFmt := range []string{"raw", "qed"} {
		t.Run(backingFmt, func(t *testing.T) {
			r := newRig(t)
			rng := rand.New(rand.NewSource(seed + 100 + int64(i)))
			const baseSize, size, grown = 1<<20 + 512, 3<<20 + 1536, 5 << 20
			baseData := make([]byte, baseSize)
			rng.Read(baseData)
			baseRaw := r.path("base.raw")
			if err := os.WriteFile(baseRaw, baseData, 0o644); err != nil {
				t.Fatal(err)
			}
			backing := "base.raw"
			if backingFmt == "qed" {
				backing = "base.qed"
				r.qtOK("convert", "-q", "-f", "raw", "-O", "qed", "-o", "cluster_size=4K", baseRaw, r.path(backing))
			}
			img := r.path("ov.qed")
			r.qtOK("create", "-q", "-o", "cluster_size=64K,table_size=2", "-b", backing, "-F", backingFmt, img, strconv.Itoa(size))
			im, err := qed.Open(r.osfs, img, qed.OpenOptions{IdleClearDelay: -1})
			if err != nil {
				t.Fatal(err)
			}
			model := make([]byte, size)
			copy(model, baseData)
			reads := workload(t, im, model, 64<<10, rng, 40)
			if err := im.Resize(grown); err != nil {
				t.Fatal(err)
			}
			model = append(model, make([]byte, grown-size)...)
			p := []byte("written past the old end")
			if _, err := im.WriteAt(p, grown-100); err != nil {
				t.Fatal(err)
			}
			copy(model[grown-100:], p)
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			r.verifyWithQEMU(img, model, reads)
		})
	}
}

// TestConvertReadByQEMU: qedtorture convert -O qed output is clean for
// qemu-img check and equal to its raw source for qemu-img compare, and
// converting back to raw gives the source bytes.
func TestConvertReadByQEMU(t *testing.T) {
	seed := interopSeed(t)
	rng := rand.New(rand.NewSource(seed + 200))
	r := newRig(t)
	const size = 5<<20 + 1000 // not a multiple of 512
	data := make([]byte, size)
	for i := 0; i < 30; i++ {
		off := rng.Intn(size - 5000)
		rng.Read(data[off : off+1+rng.Intn(5000)])
	}
	src := r.path("src.raw")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, g := range []geometry{{4 << 10, 2}, {64 << 10, 4}, {2 << 20, 2}} {
		out := r.path(g.String() + ".qed")
		r.qtOK("convert", "-q", "-O", "qed", "-o", fmt.Sprintf("cluster_size=%d,table_size=%d", g.cluster, g.table), src, out)
		model := append(append([]byte(nil), data...), make([]byte, (size+511)/512*512-size)...)
		r.verifyWithQEMU(out, model, nil)
		back := out + ".raw"
		r.qtOK("convert", "-q", "-f", "qed", "-O", "raw", out, back)
		res, err := r.q.RunImg("compare", "-f", "raw", "-F", "raw", out+".model", back)
		if err != nil || res.ExitCode != 0 {
			t.Errorf("qedtorture convert back to raw differs: %s%s %v", res.Stdout, res.Stderr, err)
		}
	}
}
