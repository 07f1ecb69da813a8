package crashsim

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func gunzip(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(name)
	must(t, err)
	defer f.Close()
	z, err := gzip.NewReader(f)
	must(t, err)
	b, err := io.ReadAll(z)
	must(t, err)
	return b
}

// replayLog replays a whole dm-log over pre and returns the final file.
func replayLog(t testing.TB, pre, log []byte) ([]byte, *Trace) {
	t.Helper()
	tr, err := ReadDMLog(bytes.NewReader(log), int64(len(log)), "/img.qed")
	must(t, err)
	img, err := NewImage(map[string][]byte{"/img.qed": pre})
	must(t, err)
	f, err := img.Replay(tr, int64(len(tr.Ops)), Options{})
	must(t, err)
	p := f.Crash()
	// Everything after the last flush is unsynced: keep it all (prefix n).
	n, _ := p.Count(Model{Base: Prefix})
	s, err := p.State(StateID{K: p.K(), Model: Model{Base: Prefix}, Ordinal: n - 1})
	must(t, err)
	b, err := s.Start().ReadFile("/img.qed")
	must(t, err)
	return b, tr
}

func TestDMLogFixture(t *testing.T) {
	dir := filepath.Join("..", "testdata", "dmlog")
	pre, log, final := gunzip(t, filepath.Join(dir, "pre.qed.gz")), gunzip(t, filepath.Join(dir, "img.log.gz")), gunzip(t, filepath.Join(dir, "final.qed.gz"))
	got, tr := replayLog(t, pre, log)
	if !bytes.Equal(got, final) {
		t.Fatalf("replay gives %d bytes, qemu left %d (equal length: %v)", len(got), len(final), len(got) == len(final))
	}
	var writes, syncs int
	for _, o := range tr.Ops {
		switch o.Kind {
		case OpWrite:
			writes++
			if o.File != 0 || o.Path != "/img.qed" {
				t.Fatalf("op %v: want File 0 on /img.qed", o)
			}
		case OpSync:
			syncs++
		}
	}
	// QEMU's QED driver sets NEED_CHECK, writes data and L2/L1 updates,
	// flushes around metadata, and clears NEED_CHECK at close.
	if writes < 4 || syncs < 2 {
		t.Fatalf("log has %d writes and %d flushes: %v", writes, syncs, tr.Ops)
	}
	t.Logf("fixture: %d ops, %d writes, %d flushes", len(tr.Ops), writes, syncs)
	// The log committed its entries: nr_entries covers the whole file.
	if nr := binary.LittleEndian.Uint64(log[dmSuperNrEntries:]); nr == 0 {
		t.Fatal("fixture has nr_entries 0")
	}
}

func TestDMLogQEMU(t *testing.T) {
	qemuImg, err1 := exec.LookPath("qemu-img")
	qemuIO, err2 := exec.LookPath("qemu-io")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qemu-img/qemu-io missing and CI is set")
		}
		t.Skip("qemu-img/qemu-io not installed")
	}
	for _, sector := range []int{512, 4096} {
		t.Run(fmt.Sprint(sector), func(t *testing.T) {
			dir := t.TempDir()
			img, logf := filepath.Join(dir, "img.qed"), filepath.Join(dir, "img.log")
			run := func(name string, args ...string) {
				out, err := exec.Command(name, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("%s %v: %v\n%s", name, args, err, out)
				}
			}
			run(qemuImg, "create", "-f", "qed", img, "64M")
			run(qemuImg, "create", "-f", "raw", logf, "0")
			pre, err := os.ReadFile(img)
			must(t, err)
			opts := fmt.Sprintf("driver=qed,file.driver=blklogwrites,file.file.driver=file,"+
				"file.file.filename=%s,file.log.driver=file,file.log.filename=%s,file.log-sector-size=%d", img, logf, sector)
			run(qemuIO, "--image-opts", opts, "-c", "write -P 0xcd 1M 128k", "-c", "flush",
				"-c", "write -P 0xce 3M 4k", "-c", "write -z 1M 4k", "-c", "flush", "-c", "write -P 0x11 5M 64k")
			final, err := os.ReadFile(img)
			must(t, err)
			log, err := os.ReadFile(logf)
			must(t, err)
			got, tr := replayLog(t, pre, log)
			if !bytes.Equal(got, final) {
				t.Fatalf("replaying %d ops gives %d bytes, qemu left %d", len(tr.Ops), len(got), len(final))
			}
			if len(tr.SyncPoints()) < 2 {
				t.Fatalf("only %d flushes in the log", len(tr.SyncPoints()))
			}
			// Every sync point rebuilds: the subset states are enumerable or sampled.
			base, err := NewImage(map[string][]byte{"/img.qed": pre})
			must(t, err)
			for _, k := range tr.SyncPoints() {
				f, err := base.Replay(tr, k, Options{})
				must(t, err)
				p := f.Crash()
				n := 0
				for range p.States(Model{Base: Subset}, EnumOptions{Bound: 64, Samples: 8, Seed: uint64(k)}) {
					n++
				}
				if n == 0 {
					t.Fatalf("k=%d: no states", k)
				}
			}
		})
	}
}

// dmEntry builds one log entry block (header plus data) for a sector size s.
func dmEntry(s int, sector, nsec, flags uint64, data []byte) []byte {
	b := make([]byte, s)
	binary.LittleEndian.PutUint64(b[dmEntrySector:], sector)
	binary.LittleEndian.PutUint64(b[dmEntryNrSectors:], nsec)
	binary.LittleEndian.PutUint64(b[dmEntryFlags:], flags)
	return append(b, data...)
}

func dmLog(s int, nr uint64, entries ...[]byte) []byte {
	b := make([]byte, s)
	binary.LittleEndian.PutUint64(b[dmSuperMagic:], DMLogMagic)
	binary.LittleEndian.PutUint64(b[dmSuperVersion:], DMLogVersion)
	binary.LittleEndian.PutUint64(b[dmSuperNrEntries:], nr)
	binary.LittleEndian.PutUint32(b[dmSuperSectorSize:], uint32(s))
	for _, e := range entries {
		b = append(b, e...)
	}
	return b
}

func TestDMLogSynthetic(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 512)
	log := dmLog(512, 4,
		dmEntry(512, 2, 1, 0, data),
		dmEntry(512, 0, 0, DMLogFlush, nil),
		dmEntry(512, 4, 2, DMLogDiscard, nil),
		dmEntry(512, 8, 1, DMLogFUA|DMLogMetadata, data),
		dmEntry(512, 9, 1, 0, data), // past nr_entries: not committed
	)
	tr, err := ReadDMLog(bytes.NewReader(log), int64(len(log)), "/dev")
	must(t, err)
	want := []string{"#0 write /dev@1024+512", "#1 sync /dev", "#2 discard /dev@2048+1024", "#3 write /dev@4096+512", "#4 sync /dev"}
	if len(tr.Ops) != len(want) {
		t.Fatalf("ops %v, want %v", tr.Ops, want)
	}
	for i, o := range tr.Ops {
		if o.String() != want[i] {
			t.Errorf("op %d = %s, want %s", i, o, want[i])
		}
	}
}

func TestDMLogHostile(t *testing.T) {
	good := dmLog(512, 1, dmEntry(512, 2, 1, 0, make([]byte, 512)))
	poke := func(off int, v uint64, width int) []byte {
		b := bytes.Clone(good)
		if width == 4 {
			binary.LittleEndian.PutUint32(b[off:], uint32(v))
		} else {
			binary.LittleEndian.PutUint64(b[off:], v)
		}
		return b
	}
	cases := []struct {
		name  string
		log   []byte
		field string
		entry int64
	}{
		{"empty", nil, "size", -1},
		{"bad magic", poke(dmSuperMagic, 1, 8), "magic", -1},
		{"bad version", poke(dmSuperVersion, 2, 8), "version", -1},
		{"sector 0", poke(dmSuperSectorSize, 0, 4), "sectorsize", -1},
		{"sector 1000", poke(dmSuperSectorSize, 1000, 4), "sectorsize", -1},
		{"sector 4k but log shorter", poke(dmSuperSectorSize, 4096, 4), "size", -1},
		{"huge nr_entries", poke(dmSuperNrEntries, 1<<60, 8), "nr_entries", -1},
		{"nr_entries 2 but one entry", poke(dmSuperNrEntries, 2, 8), "entry header", 1},
		{"data past end", poke(512+dmEntryNrSectors, 2, 8), "nr_sectors", 0},
		{"huge nr_sectors", poke(512+dmEntryNrSectors, 1<<62, 8), "sector", 0},
		{"overflowing sector", poke(512+dmEntrySector, 1<<60, 8), "sector", 0},
		{"unknown flag", poke(512+dmEntryFlags, 1<<9, 8), "flags", 0},
		{"mark", poke(512+dmEntryFlags, DMLogMark, 8), "flags", 0},
	}
	for _, c := range cases {
		_, err := ReadDMLog(bytes.NewReader(c.log), int64(len(c.log)), "/x")
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Entry != c.entry {
			t.Errorf("%s: err = %v, want field %q entry %d", c.name, err, c.field, c.entry)
		}
	}
	// Every truncation of a real log fails cleanly or parses fewer entries.
	log := gunzip(t, filepath.Join("..", "testdata", "dmlog", "img.log.gz"))
	for n := 0; n < len(log); n += 97 {
		if _, err := ReadDMLog(bytes.NewReader(log[:n]), int64(n), "/x"); err == nil {
			t.Fatalf("log truncated to %d bytes parsed", n)
		} else if !errors.Is(err, ErrFormat) {
			t.Fatalf("truncated to %d: %v (not a FormatError)", n, err)
		}
	}
}

// ScanDMLog reports every committed entry with its log offsets (MARK
// included: only ReadDMLog rejects it) and stops at fn's error.
func TestScanDMLog(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 1024)
	log := dmLog(512, 3,
		dmEntry(512, 2, 2, DMLogFlush, data),
		dmEntry(512, 0, 0, DMLogMark, nil),
		dmEntry(512, 6, 8, DMLogDiscard, nil),
	)
	var got []DMLogEntry
	s, err := ScanDMLog(bytes.NewReader(log), int64(len(log)), func(e DMLogEntry) error {
		got = append(got, e)
		return nil
	})
	must(t, err)
	want := []DMLogEntry{
		{Index: 0, Header: 512, Flags: DMLogFlush, Off: 1024, Len: 1024, Data: 1024},
		{Index: 1, Header: 2048, Flags: DMLogMark, Off: 0, Len: 0, Data: 2560},
		{Index: 2, Header: 2560, Flags: DMLogDiscard, Off: 3072, Len: 4096, Data: 3072},
	}
	if s != 512 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sector size %d, entries\n%v\nwant\n%v", s, got, want)
	}
	if !got[0].HasData() || got[1].HasData() || got[2].HasData() {
		t.Fatalf("HasData wrong: %v", got)
	}
	stop := errors.New("stop")
	n := 0
	if _, err := ScanDMLog(bytes.NewReader(log), int64(len(log)), func(DMLogEntry) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("fn's error: got %v after %d entries, want it after 1", err, n)
	}
	if _, err := ReadDMLog(bytes.NewReader(log), int64(len(log)), "/d"); err == nil {
		t.Fatal("ReadDMLog accepted a MARK entry")
	}
}
