package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// countsIn extracts key=value counts from a bench output line starting
// with prefix.
func countsIn(t *testing.T, out, prefix string) map[string]int64 {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		m := map[string]int64{}
		for _, kv := range regexp.MustCompile(`(\w+)=(\d+)`).FindAllStringSubmatch(line, -1) {
			n, _ := strconv.ParseInt(kv[2], 10, 64)
			m[kv[1]] = n
		}
		return m
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return nil
}

func TestBenchAllocatingWrites(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.qed")
	runWant(t, 0, "create", img, "64M")
	args := []string{"bench", "-w", "-c", "16", "-d", "4", "-s", "4K", "-S", "64K", "--pattern", "171", img}
	r := runWant(t, 0, args...)
	for _, want := range []string{
		"Sending 16 write requests, 4096 bytes each, 4 in parallel (starting at offset 0, step size 65536)\n",
		"Run completed in ",
		"Allocating writes: 16 clusters allocated; per allocating write: ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	c := countsIn(t, r.stdout, "I/O reaching "+img)
	// At least the 16 data writes and the sync at close reached the file.
	if c["writes"] < 16 || c["write_bytes"] < 16*4096 || c["syncs"] < 1 {
		t.Errorf("counts %v: want >= 16 writes of >= 64 KiB and a sync", c)
	}

	// The data landed where qemu-img bench would have put it.
	im, err := qed.Open(afero.NewOsFs(), img, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 64<<10)
	for i := range 17 {
		if _, err := im.ReadAt(got, int64(i)<<16); err != nil {
			t.Fatal(err)
		}
		want := make([]byte, len(got))
		if i < 16 {
			copy(want, bytes.Repeat([]byte{171}, 4096))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("cluster %d holds the wrong bytes", i)
		}
	}
	// Our read-only open locks the image: a writing bench is refused.
	r = runWant(t, exitRuntime, args...)
	if !strings.Contains(r.stderr, `Failed to get "write" lock`) {
		t.Errorf("bench -w beside a reader: %q", r.stderr)
	}
	im.Close()

	// Rewriting the same clusters allocates nothing.
	r = runWant(t, 0, args...)
	if strings.Contains(r.stdout, "Allocating writes") {
		t.Errorf("in-place rewrite reported allocations:\n%s", r.stdout)
	}
}

func TestBenchRawReadsAndFlushInterval(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "r.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runWant(t, 0, "bench", "-f", "raw", "-c", "100", "-d", "3", "-s", "512", "-S", "12K", img)
	c := countsIn(t, r.stdout, "I/O reaching "+img)
	if c["reads"] != 100 || c["read_bytes"] != 100*512 || c["writes"] != 0 {
		t.Errorf("read run counts %v: want 100 reads of 512 bytes, no writes", c)
	}
	// Probing: a file without the QED magic is raw.
	runWant(t, 0, "bench", "-c", "4", img)

	r = runWant(t, 0, "bench", "-f", "raw", "-w", "-c", "10", "-d", "2", "--flush-interval", "5", img)
	if !strings.Contains(r.stdout, "Sending flush every 5 requests\n") {
		t.Errorf("no flush line:\n%s", r.stdout)
	}
	c = countsIn(t, r.stdout, "I/O reaching "+img)
	// Two interval flushes plus the one at close.
	if c["writes"] != 10 || c["syncs"] != 3 {
		t.Errorf("flush-interval run counts %v: want 10 writes and 3 syncs", c)
	}
}

func TestBenchErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "e.qed")
	runWant(t, 0, "create", img, "1M")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench"}, exitUsage, "missing argument"},
		{[]string{"bench", "-c", "0", img}, exitUsage, "count (-c)"},
		{[]string{"bench", "-d", "0", img}, exitUsage, "depth (-d)"},
		{[]string{"bench", "-s", "0", img}, exitUsage, "request size (-s)"},
		{[]string{"bench", "-s", "4X", img}, exitUsage, "request size (-s)"},
		{[]string{"bench", "-S", "x", img}, exitUsage, "step (-S)"},
		{[]string{"bench", "--flush-interval", "4", img}, exitUsage, "only available in write tests"},
		{[]string{"bench", "-t", "unsafe", img}, exitUsage, "cache mode (-t)"},
		{[]string{"bench", "--fault", "read:delay=0s", img}, exitUsage, "invalid --fault"},
		{[]string{"bench", "-f", "qcow2", img}, exitUsage, "format (-f)"},
		{[]string{"bench", "--pattern", "256", "-w", img}, exitUsage, "--pattern"},
		{[]string{"bench", "--count-log", "x", img}, exitUsage, "too many arguments"},
		{[]string{"bench", filepath.Join(dir, "missing.qed")}, exitRuntime, "missing.qed"},
		// The first request already lies past the 1 MiB image.
		{[]string{"bench", "-c", "1", "-o", "2M", img}, exitRuntime, "request 0 (4096 bytes at offset 2097152)"},
		{[]string{"bench", "-w", "-c", "1", "-o", "1020K", "-s", "8K", img}, exitRuntime, "request 0"},
		{[]string{"bench", "--count-log", img}, exitRuntime, "not a dm-log-writes log"},
	} {
		r := runWant(t, c.code, c.args...)
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%q: stderr %q lacks %q", c.args, r.stderr, c.want)
		}
	}
}

func TestBenchOffsetMatchesQemuSequence(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 200 {
		size := rng.Int64N(1<<40) + 1
		step := rng.Int64N(1 << 40)
		off := rng.Int64N(size)
		prev := off
		for i := int64(0); i < 50; i++ {
			if got := benchOffset(off, step, size, i); got != prev {
				t.Fatalf("size %d step %d off %d: request %d at %d, want %d", size, step, off, i, got, prev)
			}
			prev = (prev + step) % size
		}
	}
	// Huge indexes do not overflow.
	if got := benchOffset(0, 1<<62, 3, 1<<62); got < 0 || got >= 3 {
		t.Errorf("overflowing product: %d", got)
	}
	if got := benchOffset(5, 7, 0, 3); got != 0 {
		t.Errorf("zero-size image: %d, want 0", got)
	}
}

func TestBenchCountLog(t *testing.T) {
	le := binary.LittleEndian
	log := make([]byte, 512*4)
	le.PutUint64(log[0:], 0x6a736677736872)
	le.PutUint64(log[8:], 1)
	le.PutUint64(log[16:], 2)
	le.PutUint32(log[24:], 512)
	le.PutUint64(log[512+8:], 1)   // a one-sector write
	le.PutUint64(log[1536+16:], 1) // a flush
	p := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(p, log, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runWant(t, 0, "bench", "--count-log", p)
	c := countsIn(t, r.stdout, "I/O reaching the logged file")
	if c["writes"] != 1 || c["write_bytes"] != 512 || c["syncs"] != 1 {
		t.Errorf("counts %v: want 1 write of 512 bytes and 1 sync", c)
	}
}

// TestBenchWritethrough: -t writethrough flushes after every write
// request. Raw: 10 writes, 10 flushes plus the one at close. QED, fresh
// image, no backing file, depth 1: every allocating write is its data
// write and, at its flush, the L2 sector and one sync, so 2 writes and 1
// sync per allocation. Besides: the first sets NEED_CHECK (a header write
// and a sync) and links a new L2 table (a sync before the L1 sector write),
// close syncs and clears NEED_CHECK (a header write and a sync).
func TestBenchWritethrough(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "w.raw")
	if err := os.WriteFile(raw, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runWant(t, 0, "bench", "-f", "raw", "-t", "writethrough", "-w", "-c", "10", "-d", "2", raw)
	if c := countsIn(t, r.stdout, "I/O reaching "+raw); c["writes"] != 10 || c["syncs"] != 11 {
		t.Errorf("raw writethrough counts %v: want 10 writes and 11 syncs", c)
	}
	img := filepath.Join(dir, "w.qed")
	runWant(t, 0, "create", img, "16M")
	r = runWant(t, 0, "bench", "-t", "writethrough", "-w", "-c", "100", "-d", "1", "-s", "4K", "-S", "64K", img)
	if c := countsIn(t, r.stdout, "I/O reaching "+img); c["writes"] != 2*100+3 || c["syncs"] != 100+4 {
		t.Errorf("QED writethrough counts %v: want %d writes and %d syncs", c, 2*100+3, 100+4)
	}
	runWant(t, 0, "check", img)
}

// TestBenchFaultDelay: --fault slows the backing file's reads; a run of 4
// allocating writes over it at depth 1 takes at least 4 delays.
func TestBenchFaultDelay(t *testing.T) {
	dir := t.TempDir()
	back := filepath.Join(dir, "back.raw")
	if err := os.WriteFile(back, bytes.Repeat([]byte{9}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "o.qed")
	runWant(t, 0, "create", "-b", back, "-F", "raw", img, "1M")
	r := runWant(t, 0, "bench", "-w", "-c", "4", "-d", "1", "-s", "4K", "-S", "64K", "--fault", "read:delay=50ms@path=back.raw", img)
	var secs float64
	if _, err := fmt.Sscanf(r.stdout[strings.Index(r.stdout, "Run completed in "):], "Run completed in %f seconds.", &secs); err != nil {
		t.Fatalf("no time in %q: %v", r.stdout, err)
	}
	if secs < 0.2 {
		t.Errorf("4 allocations over a 50 ms backing took %.3f s, want >= 0.2", secs)
	}
	runWant(t, 0, "check", img)
}

// TestBenchDirect runs cache mode none where the OS and file system allow
// O_DIRECT, and checks the data through the normal path.
func TestBenchDirect(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "d.qed")
	runWant(t, 0, "create", img, "16M")
	r := qt(t, "bench", "-t", "none", "-w", "-c", "8", "-d", "2", "-s", "4K", "-S", "64K", "--pattern", "7", img)
	if r.code != 0 && strings.Contains(r.stderr, "O_DIRECT") {
		t.Skipf("no O_DIRECT here: %s", r.stderr)
	}
	r.wantExit(t, 0, "bench -t none")
	im, err := qed.Open(afero.NewOsFs(), img, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	got := make([]byte, 4096)
	if _, err := im.ReadAt(got, 7<<16); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{7}, 4096)) {
		t.Fatalf("O_DIRECT write not read back: %v", err)
	}
	runWant(t, 0, "bench", "-t", "none", "-c", "8", "-d", "2", img)
	runWant(t, 0, "check", img)
}

// TestDirectFileUnaligned compares seeded unaligned reads and writes
// through the O_DIRECT file with the same operations on a plain file.
func TestDirectFileUnaligned(t *testing.T) {
	dir := t.TempDir()
	dfs, err := directFs(afero.NewOsFs())
	if err != nil {
		t.Skip(err)
	}
	d, err := dfs.OpenFile(filepath.Join(dir, "direct"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Skip(err)
	}
	defer d.Close()
	p, err := os.OpenFile(filepath.Join(dir, "plain"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range 300 {
		off := rng.Int64N(64 << 10)
		n := rng.IntN(9000) + 1
		if rng.IntN(2) == 0 {
			b := make([]byte, n)
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if _, err := d.WriteAt(b, off); err != nil {
				t.Fatalf("op %d: direct write %d at %d: %v", i, n, off, err)
			}
			if _, err := p.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		} else {
			a, b := make([]byte, n), make([]byte, n)
			na, _ := d.ReadAt(a, off)
			nb, _ := p.ReadAt(b, off)
			if na != nb || !bytes.Equal(a[:na], b[:nb]) {
				t.Fatalf("op %d: read %d at %d: direct %d bytes, plain %d, equal %v", i, n, off, na, nb, bytes.Equal(a[:min(na, nb)], b[:min(na, nb)]))
			}
		}
		ds, _ := d.Stat()
		ps, _ := p.Stat()
		if ds.Size() != ps.Size() {
			t.Fatalf("op %d: direct file is %d bytes, plain %d", i, ds.Size(), ps.Size())
		}
	}
}
