package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	fs := afero.NewOsFs()
	for _, c := range []struct {
		args         []string
		size         uint64
		cluster, tbl uint32
		fileLen      int64
		backing      string
		features     uint64
	}{
		{[]string{"d.qed", "10G"}, 10 << 30, 65536, 4, 327680, "", 0},
		{[]string{"-o", "cluster_size=4K,table_size=16", "s.qed", "64M"}, 64 << 20, 4096, 16, 17 * 4096, "", 0},
		{[]string{"-o", "cluster_size=2M", "-o", "table_size=1", "b.qed", "1049088"}, 1049088, 2 << 20, 1, 4 << 20, "", 0},
		{[]string{"z.qed", "0"}, 0, 65536, 4, 327680, "", 0},
		{[]string{"-o", "size=1M", "o.qed"}, 1 << 20, 65536, 4, 327680, "", 0},
	} {
		img := filepath.Join(dir, c.args[len(c.args)-1])
		if !strings.HasSuffix(img, ".qed") {
			img = filepath.Join(dir, c.args[len(c.args)-2])
		}
		args := append([]string{"create"}, c.args...)
		for i, a := range args {
			if strings.HasSuffix(a, ".qed") {
				args[i] = filepath.Join(dir, a)
			}
		}
		r := runWant(t, exitOK, args...)
		if !strings.HasPrefix(r.stdout, "Formatting '") {
			t.Errorf("create %q printed %q", args, r.stdout)
		}
		h, err := qed.ReadHeader(fs, img)
		if err != nil {
			t.Fatalf("create %q: %v", args, err)
		}
		if h.ImageSize != c.size || h.ClusterSize != c.cluster || h.TableSize != c.tbl || h.Features != c.features {
			t.Errorf("create %q: header %+v", args, h)
		}
		if st, err := os.Stat(img); err != nil || st.Size() != c.fileLen {
			t.Errorf("create %q: file length %v (%v), want %d", args, st.Size(), err, c.fileLen)
		}
	}
}

func TestCreateQuietOverwrite(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "q.qed")
	writeFile(t, img, make([]byte, 1<<20)) // garbage to be replaced
	r := runWant(t, exitOK, "create", "-q", img, "1M")
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("create -q printed %q / %q", r.stdout, r.stderr)
	}
	if st, _ := os.Stat(img); st.Size() != 327680 {
		t.Errorf("overwritten image is %d bytes, want 327680", st.Size())
	}
}

func TestCreateWithBacking(t *testing.T) {
	dir := t.TempDir()
	fs := afero.NewOsFs()
	base := filepath.Join(dir, "base.raw")
	writeFile(t, base, make([]byte, 3<<20+1000)) // not a multiple of 512
	ov := filepath.Join(dir, "ov.qed")
	runWant(t, exitOK, "create", "-q", "-b", "base.raw", "-F", "raw", ov)
	h, err := qed.ReadHeader(fs, ov)
	if err != nil {
		t.Fatal(err)
	}
	if h.BackingFilename != "base.raw" || h.Features != qed.FeatureBackingFile|qed.FeatureBackingNoProbe || h.ImageSize != 3<<20+1024 {
		t.Errorf("overlay header %+v: want backing base.raw, backing|no-probe, size rounded up to 512", h)
	}
	// A QED backing file gives its own guest size; no -F leaves probing on.
	top := filepath.Join(dir, "top.qed")
	runWant(t, exitOK, "create", "-q", "-b", "ov.qed", top)
	h, err = qed.ReadHeader(fs, top)
	if err != nil {
		t.Fatal(err)
	}
	if h.ImageSize != 3<<20+1024 || h.Features != qed.FeatureBackingFile {
		t.Errorf("top header %+v", h)
	}
	// -u skips opening the backing file but then needs a size.
	runWant(t, exitOK, "create", "-q", "-u", "-b", "nowhere.qed", filepath.Join(dir, "u.qed"), "1M")
	r := runWant(t, exitRuntime, "create", "-q", "-u", "-b", "nowhere.qed", filepath.Join(dir, "u2.qed"))
	if !strings.Contains(r.stderr, "nowhere.qed") {
		t.Errorf("stderr %q does not name the backing file", r.stderr)
	}
	// A backing name longer than the header cluster is refused.
	long := strings.Repeat("n", 70000)
	r = runWant(t, exitUsage, "create", "-q", "-u", "-b", long, filepath.Join(dir, "l.qed"), "1M")
	if !strings.Contains(r.stderr, "does not fit") {
		t.Errorf("long backing name: %q", r.stderr)
	}
}
