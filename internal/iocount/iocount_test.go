package iocount

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/spf13/afero"
)

// The dm-log-writes constants the test logs are built with.
const (
	dmMagic   = crashsim.DMLogMagic
	dmVersion = crashsim.DMLogVersion
	dmFlush   = crashsim.DMLogFlush
	dmFUA     = crashsim.DMLogFUA
	dmDiscard = crashsim.DMLogDiscard
	dmMeta    = crashsim.DMLogMetadata
)

func TestCountsPerFile(t *testing.T) {
	fs := New(afero.NewMemMapFs())
	f, err := fs.Create("/d/a.img")
	if err != nil {
		t.Fatal(err)
	}
	g, err := fs.OpenFile("/d/b.img", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	mustN(t)(f.WriteAt(make([]byte, 4096), 0))
	mustN(t)(f.Write(make([]byte, 100)))
	mustN(t)(f.WriteString("xyz"))
	mustN(t)(f.ReadAt(make([]byte, 512), 0))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8192); err != nil {
		t.Fatal(err)
	}
	mustN(t)(g.WriteAt(make([]byte, 10), 5))
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}

	wantA := Counts{Reads: 1, ReadBytes: 512, Writes: 3, WriteBytes: 4096 + 100 + 3, Syncs: 1, Truncates: 1}
	if got := fs.Counts("/d/../d/a.img"); got != wantA {
		t.Errorf("a: got %+v, want %+v", got, wantA)
	}
	wantB := Counts{Writes: 1, WriteBytes: 10, Syncs: 2}
	if got := fs.Counts("/d/b.img"); got != wantB {
		t.Errorf("b: got %+v, want %+v", got, wantB)
	}
	if got, want := fs.Total(), wantA.Add(wantB); got != want {
		t.Errorf("total: got %+v, want %+v", got, want)
	}
	if got := fs.Counts("/nothing"); got != (Counts{}) {
		t.Errorf("unopened path: got %+v", got)
	}
	if got := wantA.Add(wantB).Sub(wantB); got != wantA {
		t.Errorf("Add/Sub: got %+v, want %+v", got, wantA)
	}

	// A second open of the same path shares the counters; Reset zeroes.
	h, err := fs.Open("/d/a.img")
	if err != nil {
		t.Fatal(err)
	}
	mustN(t)(h.ReadAt(make([]byte, 8), 0))
	if got := fs.Counts("/d/a.img").Reads; got != 2 {
		t.Errorf("shared counter: reads = %d, want 2", got)
	}
	fs.Reset()
	if got := fs.Total(); got != (Counts{}) {
		t.Errorf("after Reset: %+v", got)
	}
	if got := fs.Paths(); len(got) != 2 || got[0] != "/d/a.img" || got[1] != "/d/b.img" {
		t.Errorf("Paths = %q", got)
	}
}

func mustN(t *testing.T) func(int, error) {
	return func(_ int, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestFailedOpenNotWrapped(t *testing.T) {
	fs := New(afero.NewMemMapFs())
	if f, err := fs.Open("/missing"); err == nil || f != nil {
		t.Fatalf("Open of a missing file: %v, %v", f, err)
	}
}

func TestPositionalIOSafe(t *testing.T) {
	mem := New(afero.NewMemMapFs())
	f, _ := mem.Create("/x")
	if f.(*File).PositionalIOSafe() {
		t.Error("mem file reported safe")
	}
	osfs := New(New(afero.NewOsFs())) // nested wrappers delegate
	g, err := osfs.Create(filepath.Join(t.TempDir(), "y"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !g.(*File).PositionalIOSafe() {
		t.Error("os file through two wrappers reported unsafe")
	}
	if _, ok := g.(*File).Unwrap().(*File); !ok {
		t.Error("Unwrap did not return the inner wrapper")
	}
}

func TestConcurrentCounting(t *testing.T) {
	fs := New(afero.NewOsFs())
	f, err := fs.Create(filepath.Join(t.TempDir(), "c"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, 512)
			for i := range each {
				if _, err := f.WriteAt(buf, int64((w*each+i)*512)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := fs.Counts(f.Name()); got.Writes != workers*each || got.WriteBytes != workers*each*512 {
		t.Errorf("got %+v, want %d writes of 512 bytes", got, workers*each)
	}
}

// dmLog builds a dm-log-writes log with sector size s from entries.
type dmEntry struct {
	sector, nsec, flags uint64
}

func dmLog(s int, nr uint64, entries []dmEntry) []byte {
	le := binary.LittleEndian
	b := make([]byte, s)
	le.PutUint64(b[0:], dmMagic)
	le.PutUint64(b[8:], dmVersion)
	le.PutUint64(b[16:], nr)
	le.PutUint32(b[24:], uint32(s))
	for _, e := range entries {
		h := make([]byte, s)
		le.PutUint64(h[0:], e.sector)
		le.PutUint64(h[8:], e.nsec)
		le.PutUint64(h[16:], e.flags)
		b = append(b, h...)
		if e.flags&dmDiscard == 0 {
			b = append(b, make([]byte, int(e.nsec)*s)...)
		}
	}
	return b
}

func TestReadDMLog(t *testing.T) {
	entries := []dmEntry{
		{0, 8, 0},                // 4 KiB write
		{0, 0, dmFlush},          // flush only
		{16, 1, dmFlush | dmFUA}, // preflush + write + FUA
		{32, 64, dmDiscard},      // discard, no data
		{40, 2, dmMeta},          // metadata write
	}
	log := dmLog(512, uint64(len(entries)), entries)
	got, err := ReadDMLog(bytes.NewReader(log), int64(len(log)))
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Writes: 3, WriteBytes: (8 + 1 + 2) * 512, Syncs: 3, Discards: 1}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Uncommitted entries (past nr_entries) are not counted.
	log = dmLog(512, 1, entries)
	if got, err := ReadDMLog(bytes.NewReader(log), int64(len(log))); err != nil || got != (Counts{Writes: 1, WriteBytes: 4096}) {
		t.Errorf("nr_entries=1: %+v, %v", got, err)
	}
}

func TestReadDMLogMalformed(t *testing.T) {
	good := dmLog(512, 1, []dmEntry{{0, 8, 0}})
	le := binary.LittleEndian
	cases := []struct {
		name  string
		mess  func(b []byte) []byte
		field string
	}{
		{"short", func(b []byte) []byte { return b[:10] }, "size"},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }, "magic"},
		{"version", func(b []byte) []byte { le.PutUint64(b[8:], 2); return b }, "version"},
		{"sectorsize", func(b []byte) []byte { le.PutUint32(b[24:], 100); return b }, "sectorsize"},
		{"nr_entries", func(b []byte) []byte { le.PutUint64(b[16:], 1<<40); return b }, "nr_entries"},
		{"flags", func(b []byte) []byte { le.PutUint64(b[512+16:], 1<<9); return b }, "flags"},
		{"data", func(b []byte) []byte { le.PutUint64(b[512+8:], 1<<50); return b }, "nr_sectors"},
		{"header", func(b []byte) []byte { le.PutUint64(b[16:], 2); return b }, "entry header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mess(append([]byte(nil), good...))
			_, err := ReadDMLog(bytes.NewReader(b), int64(len(b)))
			var de *crashsim.FormatError
			if !errors.As(err, &de) || !errors.Is(err, crashsim.ErrFormat) || de.Field != c.field {
				t.Fatalf("got %v, want a *crashsim.FormatError on %q", err, c.field)
			}
		})
	}
}

// TestReadDMLogFromQEMU counts a log written by QEMU's blklogwrites driver
// for a known request sequence on a raw image.
func TestReadDMLogFromQEMU(t *testing.T) {
	qio, err := exec.LookPath("qemu-io")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qemu-io not found and CI is set")
		}
		t.Skip("qemu-io not found")
	}
	dir := t.TempDir()
	img, logf := filepath.Join(dir, "img.raw"), filepath.Join(dir, "img.log")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := "driver=raw,file.driver=blklogwrites,file.file.driver=file,file.file.filename=" + img +
		",file.log.driver=file,file.log.filename=" + logf + ",file.log-sector-size=512"
	out, err := exec.Command(qio, "--image-opts", opts, "-c", "write 0 4k", "-c", "flush", "-c", "write 64k 8k").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadDMLog(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Two writes; the explicit flush plus the one at close.
	if got.Writes != 2 || got.WriteBytes != 12288 || got.Syncs != 2 {
		t.Errorf("got %+v, want 2 writes of 12288 bytes and 2 syncs", got)
	}
	t.Logf("qemu-io log: %s", got)
}
