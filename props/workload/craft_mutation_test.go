package workload

import (
	"bytes"
	"errors"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// Tests written for mutants of craft.go that survived the rest of the
// suite (docs/mutation.md).

// TestLongName: a crafted name has exactly the length asked for, odd
// paddings included, and names the same file in the same directory.
func TestLongName(t *testing.T) {
	for _, format := range []string{"raw", "qed"} {
		name := BackingName(0, format)
		for n := len(name) + 3; n < len(name)+64; n++ {
			got := longName(name, n)
			require.Len(t, got, n, "%q", got)
			require.Equal(t, name, path.Clean(got), "%q", got)
			require.True(t, strings.HasPrefix(got, "./"), "%q is relative", got)
		}
		g := Geometry{ClusterSize: 4096, TableSize: 1, Size: 1 << 20, Backing: []Backing{{Format: format, Size: 4096, ClusterSize: 4096, TableSize: 1}}}
		g.Craft.BackingName = 101
		require.Len(t, CraftedBackingName(g), 101)
	}
}

// TestCraftValidateBounds: every bound of a Craft, at and just past it
// (gremlins' coverage attributes no block to a switch's case expressions,
// so their mutants were not run: written for them, checked by hand).
func TestCraftValidateBounds(t *testing.T) {
	raw := []Backing{{Format: "raw", Size: 4096, Fill: 1}}
	qedb := []Backing{{Format: "qed", Size: 4096, ClusterSize: 4096, TableSize: 1, Fill: 1}}
	g := func(b []Backing, c Craft) Geometry {
		return Geometry{ClusterSize: 4096, TableSize: 1, Size: 1 << 20, Backing: b, Craft: c}
	}
	minName := len(BackingName(0, "raw")) + 3
	for _, c := range []struct {
		g   Geometry
		err string // "" when valid
	}{
		{g(nil, Craft{HeaderSize: 16, L1Gap: 16}), ""},
		{g(nil, Craft{HeaderSize: 17}), "header_size 17 and l1_gap 0 must be at most 16"},
		{g(nil, Craft{L1Gap: 17}), "header_size 0 and l1_gap 17 must be at most 16"},
		{g(nil, Craft{BackingName: minName}), "backing_name needs a backing file"},
		{g(raw, Craft{BackingName: minName}), ""},
		{g(raw, Craft{BackingName: minName - 1}), "backing_name 14 must be in 15..3584"},
		{g(raw, Craft{BackingName: MaxBackingName}), ""},
		{g(raw, Craft{BackingName: MaxBackingName + 1}), "backing_name 3585 must be in 15..3584"},
		{g(raw, Craft{BackingName: MaxBackingName + 1, HeaderSize: 4}), "backing_name 3585 must be in 15..3584"},
		{g(raw, Craft{BackingName: -1}), "backing_name -1 must be in"},
		{g(raw, Craft{Probe: true}), ""},
		{g(nil, Craft{Probe: true}), "probe needs a raw backing file"},
		{g(qedb, Craft{Probe: true}), "probe needs a raw backing file"},
		{g(nil, Craft{Tail: 4095}), ""},
		{g(nil, Craft{Tail: 4096}), "tail 4096 must be in 0..4095"},
		{g(nil, Craft{Tail: -1}), "tail -1 must be in 0..4095"},
		{g(nil, Craft{Compat: 0xffffffffffffff00, Autoclear: 0x100}), ""},
		{g(nil, Craft{Compat: 0x80}), "compat 0x80 and autoclear 0x0 may set only bits 8..63"},
		{g(nil, Craft{Autoclear: 0x1}), "compat 0x0 and autoclear 0x1 may set only bits 8..63"},
	} {
		err := c.g.Craft.validate(c.g)
		if c.err == "" {
			require.NoError(t, err, "%+v", c.g.Craft)
			continue
		}
		require.ErrorIs(t, err, ErrInvalid, "%+v", c.g.Craft)
		require.ErrorContains(t, err, c.err, "%+v", c.g.Craft)
	}
}

// craftBase creates a 4 KiB-cluster image with two-cluster tables (the
// L1 table at 4096, the file 12 KiB) and returns its bytes.
func craftBase(t *testing.T, fs afero.Fs, p string, g Geometry) []byte {
	t.Helper()
	require.NoError(t, qedtarget.Target{}.Create(fs, p, target.CreateOptions{Size: g.Size, ClusterSize: g.ClusterSize, TableSize: g.TableSize}))
	b, err := afero.ReadFile(fs, p)
	require.NoError(t, err)
	require.Len(t, b, 3*4096)
	return b
}

// TestCraftTailAndGap: a stale tail alone lands after the L1 table as
// created (the header untouched), and a gap alone moves the L1 table
// past it; both images are consistent to the independent checker.
func TestCraftTailAndGap(t *testing.T) {
	g := Geometry{ClusterSize: 4096, TableSize: 2, Size: 1 << 20}
	const p = "/image.qed"

	fs := afero.NewMemMapFs()
	base := craftBase(t, fs, p, g)
	require.NoError(t, CraftImage(fs, p, g, Craft{Tail: 1000}))
	b, err := afero.ReadFile(fs, p)
	require.NoError(t, err)
	require.Len(t, b, 3*4096+1000)
	require.Equal(t, base, b[:3*4096], "the header and the L1 table as created")
	require.Equal(t, bytes.Repeat([]byte{0xe5}, 1000), b[3*4096:])

	fs = afero.NewMemMapFs()
	craftBase(t, fs, p, g)
	require.NoError(t, CraftImage(fs, p, g, Craft{L1Gap: 2}))
	b, err = afero.ReadFile(fs, p)
	require.NoError(t, err)
	require.EqualValues(t, 1, le.Uint32(b[hdrHeaderSize:]))
	require.EqualValues(t, 3*4096, le.Uint64(b[hdrL1Offset:]), "the L1 table past the gap")
	require.Len(t, b, 5*4096)
	f, err := fs.Open(p)
	require.NoError(t, err)
	defer f.Close()
	rep, err := check.File(f)
	require.NoError(t, err)
	require.True(t, rep.IsConsistent(), "%v", rep.Err())
}

// failingReadFs opens files whose ReadAt fails.
type failingReadFs struct{ afero.Fs }

type failingReadFile struct{ afero.File }

var errRead = errors.New("injected read error")

func (f failingReadFile) ReadAt([]byte, int64) (int, error) { return 0, errRead }

func (fs failingReadFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := fs.Fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return failingReadFile{f}, nil
}

// TestCraftHeaderReadFails: a header that cannot be read fails the craft
// (naming the step) and leaves the file as created.
func TestCraftHeaderReadFails(t *testing.T) {
	g := Geometry{ClusterSize: 4096, TableSize: 2, Size: 1 << 20}
	fs := afero.NewMemMapFs()
	base := craftBase(t, fs, "/image.qed", g)
	err := CraftImage(failingReadFs{fs}, "/image.qed", g, Craft{NeedCheck: true})
	require.ErrorIs(t, err, errRead)
	require.ErrorContains(t, err, "craft /image.qed: reading the header")
	b, err := afero.ReadFile(fs, "/image.qed")
	require.NoError(t, err)
	require.Equal(t, base, b)
}
