package qed_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/impl/qed"
)

// TestSetBackingPlacement: the new name never overwrites the old one's
// bytes; names alternate between offset 64 and the bytes after the old
// name; a name fitting in sector 0 with the fields may overwrite it.
func TestSetBackingPlacement(t *testing.T) {
	fs := afero.NewMemMapFs()
	old := longName(600, "a.raw")
	afero.WriteFile(fs, "/a.raw", nil, 0o644)
	mustCreate(t, fs, "/t.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: old, BackingFormat: "raw"}, nil)
	b, c := longName(700, "b.raw"), longName(500, "c.qed")
	steps := []struct {
		name   string
		format string
		off    uint32
	}{
		{b, "raw", uint32(64 + len(old))},     // after the old name
		{c, "", 64},                           // fits before the old one
		{"d.raw", "raw", uint32(64 + len(c))}, // after the old one again
		{"", "", 64},                          // no backing file
		{"e.raw", "raw", 64},                  // the old bytes are free
		{"ff.raw", "raw", 69},                 // after "e.raw"
	}
	for _, s := range steps {
		if err := qed.SetBacking(fs, "/t.qed", s.name, s.format, qed.OpenOptions{}); err != nil {
			t.Fatalf("SetBacking(%.20q): %v", s.name, err)
		}
		h, err := qed.ReadHeader(fs, "/t.qed")
		if err != nil {
			t.Fatal(err)
		}
		if h.BackingFilename != s.name || int(h.BackingFilenameSize) != len(s.name) || h.BackingFilenameOffset != s.off {
			t.Errorf("after SetBacking(%.20q): name %.20q size %d offset %d, want offset %d", s.name, h.BackingFilename, h.BackingFilenameSize, h.BackingFilenameOffset, s.off)
		}
		wantF := uint64(0)
		if s.name != "" {
			wantF |= qed.FeatureBackingFile
		}
		if s.format == "raw" {
			wantF |= qed.FeatureBackingNoProbe
		}
		if h.Features != wantF {
			t.Errorf("after SetBacking(%.20q, %q): features %#x, want %#x", s.name, s.format, h.Features, wantF)
		}
	}
}

// TestSetBackingSector0: with no free bytes beside a long old name, a
// short new name goes out with the fields in one write inside sector 0.
func TestSetBackingSector0(t *testing.T) {
	fs := afero.NewMemMapFs()
	old := longName(4000, "a.raw")
	afero.WriteFile(fs, "/a.raw", nil, 0o644)
	mustCreate(t, fs, "/t.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: old, BackingFormat: "raw"}, nil)
	if err := qed.SetBacking(fs, "/t.qed", strings.Repeat("g", 60)+".raw", "", qed.OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := qed.ReadHeader(fs, "/t.qed")
	if err != nil || h.BackingFilename != strings.Repeat("g", 60)+".raw" || h.BackingFilenameOffset != 64 || h.Features != qed.FeatureBackingFile {
		t.Fatalf("header %+v, %v", h, err)
	}
}

// TestSetBackingRefusals: what SetBacking refuses changes nothing.
func TestSetBackingRefusals(t *testing.T) {
	fs := afero.NewMemMapFs()
	old := longName(2100, "a.raw")
	afero.WriteFile(fs, "/a.raw", nil, 0o644)
	mustCreate(t, fs, "/t.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: old, BackingFormat: "raw"}, nil)
	orig, _ := afero.ReadFile(fs, "/t.qed")
	for _, tc := range []struct {
		name, format string
		want         error
	}{
		{longName(2100, "b.raw"), "raw", qed.ErrInvalidOption}, // no room beside the old name
		{"b.raw", "vmdk", qed.ErrInvalidOption},
		{"", "raw", qed.ErrInvalidOption},
		{strings.Repeat("x", 5000), "", qed.ErrInvalidOption},
		{"t.qed", "", qed.ErrBackingLoop},
	} {
		err := qed.SetBacking(fs, "/t.qed", tc.name, tc.format, qed.OpenOptions{})
		if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "/t.qed: ") {
			t.Errorf("SetBacking(%.20q, %q) = %v, want %v naming the image", tc.name, tc.format, err, tc.want)
		}
		if now, _ := afero.ReadFile(fs, "/t.qed"); !bytes.Equal(now, orig) {
			t.Fatalf("refused SetBacking(%.20q) changed the image", tc.name)
		}
	}
	// Unknown compat features: the bytes after the fields may be theirs.
	b := append([]byte(nil), orig...)
	binary.LittleEndian.PutUint64(b[24:], 1<<40)
	afero.WriteFile(fs, "/u.qed", b, 0o644)
	if err := qed.SetBacking(fs, "/u.qed", "b.raw", "raw", qed.OpenOptions{}); !errors.Is(err, qed.ErrUnsupportedFeature) {
		t.Errorf("SetBacking with unknown compat features = %v, want ErrUnsupportedFeature", err)
	}
}

// TestRebaseOntoChainFile: rebasing onto a deeper file of the image's own
// chain (dropping the middle image) keeps the guest data, and rebasing
// onto the image itself is refused.
func TestRebaseOntoChainFile(t *testing.T) {
	fs := afero.NewMemMapFs()
	mustCreate(t, fs, "/base.qed", qed.CreateOptions{Size: 8 * opsCluster}, map[int64][]byte{0: pattern(1, 8*opsCluster)})
	mustCreate(t, fs, "/mid.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: "base.qed"}, map[int64][]byte{opsCluster: pattern(2, 2*opsCluster)})
	mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: "mid.qed"}, map[int64][]byte{2 * opsCluster: pattern(3, 10)})
	want := view(t, fs, "/top.qed")
	var calls int
	var last [2]int64
	err := qed.Rebase(fs, "/top.qed", "base.qed", "qed", qed.RebaseOptions{Progress: func(d, n int64) { calls++; last = [2]int64{d, n} }})
	if err != nil {
		t.Fatal(err)
	}
	if got := view(t, fs, "/top.qed"); !bytes.Equal(got, want) {
		t.Fatal("rebase onto base.qed changed the guest data")
	}
	if h, _ := qed.ReadHeader(fs, "/top.qed"); h.BackingFilename != "base.qed" {
		t.Fatalf("backing name %q", h.BackingFilename)
	}
	if calls < 2 || last != [2]int64{8 * opsCluster, 8 * opsCluster} {
		t.Errorf("progress: %d calls, last %v", calls, last)
	}
	if err := qed.Rebase(fs, "/top.qed", "top.qed", "", qed.RebaseOptions{}); !errors.Is(err, qed.ErrBackingLoop) {
		t.Errorf("rebase onto itself = %v, want ErrBackingLoop", err)
	}
}

// TestCommitDeeperBase: commit -b into the bottom of a three-image chain
// keeps the top's guest data, leaves the top as it was (implied drop) and
// makes the base read the top's data; a file outside the chain and an
// image without a backing file are refused.
func TestCommitDeeperBase(t *testing.T) {
	fs := afero.NewMemMapFs()
	mustCreate(t, fs, "/base.qed", qed.CreateOptions{Size: 4 * opsCluster}, map[int64][]byte{0: pattern(1, 4*opsCluster)})
	mustCreate(t, fs, "/mid.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: "base.qed"}, map[int64][]byte{opsCluster: pattern(2, 2*opsCluster)})
	mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: "mid.qed"}, map[int64][]byte{6 * opsCluster: pattern(3, 10)})
	want := view(t, fs, "/top.qed")
	topBefore, _ := afero.ReadFile(fs, "/top.qed")
	if err := qed.Commit(fs, "/top.qed", qed.CommitOptions{Base: "/base.qed"}); err != nil {
		t.Fatal(err)
	}
	if got := view(t, fs, "/top.qed"); !bytes.Equal(got, want) {
		t.Fatal("commit changed the top's guest data")
	}
	if got := view(t, fs, "/base.qed"); !bytes.Equal(got, want) {
		t.Fatal("the base does not read the top's data (grown to its size)")
	}
	if now, _ := afero.ReadFile(fs, "/top.qed"); !bytes.Equal(now, topBefore) {
		t.Error("commit -b emptied or changed the top image")
	}
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, fs, "/d/b.qed", qed.CreateOptions{Size: 4 * opsCluster}, nil)
	mustCreate(t, fs, "/d/m.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "b.qed"}, map[int64][]byte{0: pattern(4, 10)})
	mustCreate(t, fs, "/d/t.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "m.qed"}, map[int64][]byte{opsCluster: pattern(5, 10)})
	if err := qed.Commit(fs, "/d/t.qed", qed.CommitOptions{Base: "b.qed"}); err != nil {
		t.Errorf("commit -b named relative to the image's directory: %v", err)
	} else if got, want := view(t, fs, "/d/b.qed"), view(t, fs, "/d/t.qed"); !bytes.Equal(got, want) {
		t.Error("commit -b b.qed did not write the base")
	}
	if err := qed.Commit(fs, "/top.qed", qed.CommitOptions{Base: "/elsewhere.qed"}); !errors.Is(err, qed.ErrInvalidOption) {
		t.Errorf("commit into a file outside the chain = %v", err)
	}
	if err := qed.Commit(fs, "/base.qed", qed.CommitOptions{}); !errors.Is(err, qed.ErrInvalidOption) {
		t.Errorf("commit of an image without backing file = %v", err)
	}
}

// TestRebaseRefusesBeforeCopying: a rebase whose header rewrite would be
// refused (no room for the new name) copies nothing first.
func TestRebaseRefusesBeforeCopying(t *testing.T) {
	fs := afero.NewMemMapFs()
	old := longName(2100, "a.raw")
	afero.WriteFile(fs, "/a.raw", pattern(1, 8*opsCluster), 0o644)
	afero.WriteFile(fs, "/b.raw", pattern(2, 8*opsCluster), 0o644)
	mustCreate(t, fs, "/t.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: old, BackingFormat: "raw"}, nil)
	before, _ := afero.ReadFile(fs, "/t.qed")
	err := qed.Rebase(fs, "/t.qed", longName(2100, "b.raw"), "raw", qed.RebaseOptions{})
	if !errors.Is(err, qed.ErrInvalidOption) {
		t.Fatalf("Rebase = %v, want ErrInvalidOption", err)
	}
	if now, _ := afero.ReadFile(fs, "/t.qed"); !bytes.Equal(now, before) {
		t.Error("a refused rebase changed the image")
	}
}

// TestSetBackingShortWriteUndone: a header rewrite whose field write
// stores only a prefix (faultfs write:short) returns the error and
// leaves the old header, whole: the bytes the write covered are put
// back. Without that, the new features went out over the old name's
// offset and size (a backing file set with an empty name, refused by
// every open): the state machine found it.
func TestSetBackingShortWriteUndone(t *testing.T) {
	for _, c := range []struct{ old, name string }{
		{"", "x.raw"}, // the name first, then the fields
		{"a.raw", ""}, // the fields alone
		{longName(4000, "a.raw"), strings.Repeat("g", 60)}, // fields and name in one sector-0 write
	} {
		for nth := 1; nth <= 3; nth++ {
			mem := afero.NewMemMapFs()
			afero.WriteFile(mem, "/a.raw", nil, 0o644)
			mustCreate(t, mem, "/t.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: c.old, BackingFormat: "raw"}, nil)
			before, err := afero.ReadFile(mem, "/t.qed")
			if err != nil {
				t.Fatal(err)
			}
			fs, err := faultfs.NewFromString(mem, 1, fmt.Sprintf("write:short@nth=%d,path=/t.qed", nth))
			if err != nil {
				t.Fatal(err)
			}
			err = qed.SetBacking(fs, "/t.qed", c.name, "raw", qed.OpenOptions{NoLock: true})
			h, herr := qed.ReadHeader(mem, "/t.qed")
			if herr != nil {
				t.Fatalf("%.12q -> %.12q, short write %d (SetBacking: %v): the header is left invalid: %v", c.old, c.name, nth, err, herr)
			}
			if err == nil {
				if len(fs.Log()) > 0 || h.BackingFilename != c.name {
					t.Fatalf("%.12q -> %.12q, short write %d: no error, header names %.12q, faults %v", c.old, c.name, nth, h.BackingFilename, fs.Log())
				}
				continue
			}
			after, _ := afero.ReadFile(mem, "/t.qed")
			if h.BackingFilename != c.old || !bytes.Equal(after[:qed.HeaderFieldsSize], before[:qed.HeaderFieldsSize]) {
				t.Fatalf("%.12q -> %.12q, short write %d (%v): header names %.12q, fields changed", c.old, c.name, nth, err, h.BackingFilename)
			}
		}
	}
}
