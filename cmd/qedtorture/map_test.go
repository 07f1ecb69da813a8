package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

func mapOf(t *testing.T, img string) []mapEntry {
	t.Helper()
	r := runWant(t, exitOK, "map", "--output", "json", img)
	var m []mapEntry
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("map JSON: %v\n%s", err, r.stdout)
	}
	var pos int64
	for _, e := range m {
		if e.Start != pos || e.Length <= 0 {
			t.Fatalf("map entries not contiguous at %d: %+v", pos, m)
		}
		pos += e.Length
	}
	return m
}

func TestMap(t *testing.T) {
	dir := t.TempDir()
	fs := afero.NewOsFs()
	img := newImage(t, dir, "m.qed", qed.CreateOptions{Size: 1 << 20}, map[int64]byte{0: 1, 256 << 10: 2})
	im, err := qed.Open(fs, img, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := im.WriteZeroes(128<<10, 64<<10); err != nil {
		t.Fatal(err)
	}
	im.Close()
	m := mapOf(t, img)
	type kind struct {
		start, length int64
		present, zero bool
		data          bool
	}
	want := []kind{
		{0, 64 << 10, true, false, true},
		{64 << 10, 64 << 10, false, true, false},
		{128 << 10, 64 << 10, true, true, false},
		{192 << 10, 64 << 10, false, true, false},
		{256 << 10, 64 << 10, true, false, true},
		{320 << 10, 704 << 10, false, true, false},
	}
	if len(m) != len(want) {
		t.Fatalf("map %+v, want %d entries", m, len(want))
	}
	for i, w := range want {
		e := m[i]
		if e.Start != w.start || e.Length != w.length || e.Present != w.present || e.Zero != w.zero || e.Data != w.data ||
			e.Depth != 0 || (e.Offset != nil) != w.data {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
	}
	r := runWant(t, exitOK, "map", img)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "0 ") {
		t.Errorf("human map:\n%s", r.stdout)
	}
}

func TestMapChain(t *testing.T) {
	dir := t.TempDir()
	base := newImage(t, dir, "base.qed", qed.CreateOptions{Size: 512 << 10}, map[int64]byte{0: 1})
	top := newImage(t, dir, "top.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "base.qed", BackingFormat: "qed"}, map[int64]byte{64 << 10: 2})
	m := mapOf(t, top)
	// base data at 0 (depth 1), top data at 64K (depth 0), base unallocated
	// to 512K (depth 1), then past base's end: unallocated at depth 0.
	if len(m) != 4 || m[0].Depth != 1 || !m[0].Data || m[1].Depth != 0 || !m[1].Data ||
		m[2].Depth != 1 || m[2].Present || m[2].Start+m[2].Length != 512<<10 ||
		m[3].Depth != 0 || m[3].Present || !m[3].Zero {
		t.Errorf("chain map %+v", m)
	}
	_ = base
	// A backing chain that loops is an error, not a hang.
	loopA := filepath.Join(dir, "a.qed")
	runWant(t, exitOK, "create", "-q", "-u", "-b", "b.qed", "-F", "qed", loopA, "1M")
	runWant(t, exitOK, "create", "-q", "-u", "-b", "a.qed", "-F", "qed", filepath.Join(dir, "b.qed"), "1M")
	if r := runWant(t, exitRuntime, "map", loopA); !strings.Contains(r.stderr, "loop") {
		t.Errorf("loop: %q", r.stderr)
	}
}
