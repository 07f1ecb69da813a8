package workload_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// Tests written for mutants that survived the rest of the suite (see
// docs/mutation.md).

// TestRawBackingDurable: a raw backing file is written whole, at its
// size, and synced: a crash right after BuildBacking that loses every
// unsynced write keeps it.
func TestRawBackingDurable(t *testing.T) {
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true, DiscardTrace: true})
	require.NoError(t, fs.MkdirAll("/w", 0o755))
	b := workload.Backing{Format: "raw", Size: 8192, Fill: 3}
	_, err := workload.BuildBacking(qedtarget.Target{}, fs, "/w", []workload.Backing{b})
	require.NoError(t, err)
	p, err := fs.Point()
	require.NoError(t, err)
	st, err := p.State(crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Drop}})
	require.NoError(t, err)
	got, err := afero.ReadFile(st, "/w/"+workload.BackingName(0, "raw"))
	require.NoError(t, err)
	want := make([]byte, b.Size)
	model.Fill(want[:b.FillLen()], uint64(b.Fill), 0)
	require.Len(t, got, int(b.Size))
	require.True(t, bytes.Equal(want, got), "the backing file's contents after a crash")
}

// shortWriteTarget is impl/qed whose writes report one byte less than
// they wrote, without an error.
type shortWriteTarget struct{ qedtarget.Target }

type shortWriteDisk struct{ target.Disk }

func (t shortWriteTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	return shortWriteDisk{d}, nil
}

func (d shortWriteDisk) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.WriteAt(p, off)
	return max(n-1, 0), err
}

// TestShortWriteFails: a write that reports fewer bytes than asked, with
// no error, fails the op.
func TestShortWriteFails(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x1000 0x200 id=1\n"))
	require.NoError(t, err)
	e, err := workload.NewExec(shortWriteTarget{}, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	require.ErrorContains(t, e.RunAll(), "short write: 511 of 512 bytes")
}

// flipReadTarget is impl/qed whose reads return their first byte
// inverted.
type flipReadTarget struct{ qedtarget.Target }

type flipReadDisk struct{ target.Disk }

func (t flipReadTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	return flipReadDisk{d}, nil
}

func (d flipReadDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	if n > 0 {
		p[0] ^= 0xff
	}
	return n, err
}

// TestReadOpChecks: a read op whose bytes disagree with the model fails
// with ErrDataMismatch; a flush op makes the writes before it durable in
// the model.
func TestReadOpChecks(t *testing.T) {
	const script = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x1000 0x200 id=1\nflush\nread 0x1000 0x200\n"
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	e, err := workload.NewExec(flipReadTarget{}, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	require.ErrorIs(t, e.RunAll(), workload.ErrDataMismatch)
	e, err = workload.NewExec(qedtarget.Target{}, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	require.NoError(t, e.RunAll())
	require.Empty(t, e.Model.Uncertain(), "the write before the flush is durable")
	got, want := make([]byte, 0x200), make([]byte, 0x200)
	require.NoError(t, e.Model.ReadDurableAt(got, 0x1000))
	model.Fill(want, 1, 0x1000)
	require.Equal(t, want, got)
}

// TestWriteIDsIncrease: a write id equal to the previous one is refused.
func TestWriteIDsIncrease(t *testing.T) {
	_, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x1000 0x200 id=2\nwrite 0x2000 0x200 id=2\n"))
	require.ErrorIs(t, err, workload.ErrInvalid)
	require.ErrorContains(t, err, "write id 2 must be above the previous id 2")
}

// closeFailFs is a file system whose files fail to close.
type closeFailFs struct{ afero.Fs }

type closeFailFile struct{ afero.File }

func (f closeFailFile) Close() error { f.File.Close(); return errCloseFails }

func (fs closeFailFs) Create(name string) (afero.File, error) {
	f, err := fs.Fs.Create(name)
	if err != nil {
		return f, err
	}
	return closeFailFile{f}, nil
}

// closeFailTarget is impl/qed whose disks fail to close.
type closeFailTarget struct{ qedtarget.Target }

type closeFailDisk struct{ target.Disk }

func (d closeFailDisk) Close() error { d.Disk.Close(); return errCloseFails }

func (t closeFailTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	return closeFailDisk{d}, nil
}

var errCloseFails = errors.New("close fails")

// TestBackingCloseErrors: a backing file whose close fails, after its
// data was written and synced, fails BuildBacking (raw and QED).
func TestBackingCloseErrors(t *testing.T) {
	fs := closeFailFs{afero.NewMemMapFs()}
	_, err := workload.BuildBacking(qedtarget.Target{}, fs, "/", []workload.Backing{{Format: "raw", Size: 4096, Fill: 1}})
	require.ErrorIs(t, err, errCloseFails, "raw")
	_, err = workload.BuildBacking(closeFailTarget{}, afero.NewMemMapFs(), "/", []workload.Backing{{Format: "qed", Size: 65536, ClusterSize: 4096, TableSize: 1, Fill: 1}})
	require.ErrorIs(t, err, errCloseFails, "qed")
}

// zeroFailTarget is impl/qed whose write-zeroes fail.
type zeroFailTarget struct{ qedtarget.Target }

type zeroFailDisk struct{ target.Disk }

var errZeroFails = errors.New("write-zeroes fails")

func (d zeroFailDisk) WriteZeroes(off, n int64) error { return errZeroFails }

func (t zeroFailTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	return zeroFailDisk{d}, nil
}

// TestZeroOpFails: a zero op whose write-zeroes fails fails the op with
// that error.
func TestZeroOpFails(t *testing.T) {
	err := runScript(t, zeroFailTarget{}, "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nzero 0x1000 0x200\n")
	require.ErrorIs(t, err, errZeroFails)
	var oe *workload.OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, 0, oe.Index)
}

// TestConcurrentGroupSizes: a concurrent group of 1 to 64 requests
// parses and round-trips; 0 and 65 are refused with the size named.
func TestConcurrentGroupSizes(t *testing.T) {
	for _, n := range []int{1, 64} {
		s := fmt.Sprintf("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nconcurrent %d\n", n)
		for j := range n {
			s += fmt.Sprintf("  write %#x 0x200 id=%d\n", j*0x200, j+1)
		}
		w, err := workload.Parse(strings.NewReader(s))
		require.NoError(t, err, "group of %d", n)
		require.Len(t, w.Ops[0].Group, n)
		require.Equal(t, s, w.String())
	}
	for _, n := range []int{0, 65} {
		_, err := workload.Parse(strings.NewReader(fmt.Sprintf("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nconcurrent %d\n", n)))
		require.ErrorContains(t, err, fmt.Sprintf("concurrent group size %d not in 1..64", n))
	}
}

// mapTarget is impl/qed whose allocation maps are edited by edit.
type mapTarget struct {
	qedtarget.Target
	edit func(exts []target.Extent, size int64) []target.Extent
}

type mapDisk struct {
	target.Disk
	edit func(exts []target.Extent, size int64) []target.Extent
}

func (t mapTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	return mapDisk{d, t.edit}, nil
}

func (d mapDisk) Map() ([]target.Extent, error) {
	exts, err := d.Disk.(target.Mapper).Map()
	return d.edit(exts, d.Size()), err
}

// TestMapJudgesExtents: map fails on an empty extent, on one reaching
// past the image size and on an allocated one at host offset 0; the
// unedited map passes.
func TestMapJudgesExtents(t *testing.T) {
	const script = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x1000 0x1000 id=1\nmap\n"
	for what, c := range map[string]struct {
		edit func([]target.Extent, int64) []target.Extent
		want string
	}{
		"unedited": {func(x []target.Extent, _ int64) []target.Extent { return x }, ""},
		"empty": {func(x []target.Extent, _ int64) []target.Extent {
			return append([]target.Extent{{Start: 0, Length: 0, Kind: target.ExtentUnallocated}}, x...)
		}, "extent 0 [0x0, +0x0) does not follow 0x0"},
		"past the end": {func(x []target.Extent, size int64) []target.Extent {
			x[len(x)-1].Length += 4096
			return x
		}, "does not follow"},
		"host offset 0": {func(x []target.Extent, _ int64) []target.Extent {
			for j := range x {
				if x[j].Kind == target.ExtentData {
					x[j].HostOffset = 0
				}
			}
			return x
		}, "is allocated at host offset 0x0"},
	} {
		err := runScript(t, mapTarget{edit: c.edit}, script)
		if c.want == "" {
			require.NoError(t, err, what)
			continue
		}
		require.ErrorContains(t, err, c.want, what)
	}
}

// lenientTarget is impl/qed whose disks (Strict) accept one kind of
// invalid call each, as how says: a read, write or write-zeroes starting
// inside the image and reaching past its end done up to the end without
// an error, or a growing resize to a size that is not a multiple of 512
// accepted and ignored.
type lenientTarget struct {
	qedtarget.Target
	how string
}

type lenientDisk struct {
	target.Disk
	how string
}

func (lenientDisk) RefusesInvalid() {}

func (t lenientTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	return lenientDisk{d, t.how}, nil
}

// inside reports whether [off, off+n) starts inside the image and
// reaches past its end, and how much of it is inside.
func (d lenientDisk) inside(off, n int64) (int64, bool) {
	size := d.Size()
	return size - off, off >= 0 && off < size && off+n > size
}

func (d lenientDisk) ReadAt(p []byte, off int64) (int, error) {
	if k, ok := d.inside(off, int64(len(p))); ok && d.how == "read" {
		n, err := d.Disk.ReadAt(p[:k], off)
		return n, err
	}
	return d.Disk.ReadAt(p, off)
}

func (d lenientDisk) WriteAt(p []byte, off int64) (int, error) {
	if k, ok := d.inside(off, int64(len(p))); ok && d.how == "write" {
		_, err := d.Disk.WriteAt(p[:k], off)
		return len(p), err
	}
	return d.Disk.WriteAt(p, off)
}

func (d lenientDisk) WriteZeroes(off, n int64) error {
	if k, ok := d.inside(off, n); ok && d.how == "zero" {
		return d.Disk.WriteZeroes(off, k)
	}
	return d.Disk.WriteZeroes(off, n)
}

func (d lenientDisk) Resize(size int64) error {
	if d.how == "resize" && size > d.Size() && size%512 != 0 {
		return nil
	}
	return d.Disk.Resize(size)
}

// TestRefusedJudges: each refused variant fails on a disk that accepts
// its call: the read, write and write-zeroes that start inside the image
// and reach past its end (not only those starting past it), and the
// unaligned growing resize (not only an unaligned shrink). The same
// variants pass on impl/qed.
func TestRefusedJudges(t *testing.T) {
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0xf000 0x1000 id=1\n"
	for how, v := range map[string]int{"read": 0, "write": 2, "zero": 4, "resize": 7} {
		script := fmt.Sprintf("%srefused %d\nread 0xf000 0x1000\n", head, v)
		require.NoError(t, runScript(t, qedtarget.Target{}, script), "refused %d on impl/qed", v)
		require.ErrorContains(t, runScript(t, lenientTarget{how: how}, script), "was not refused", "refused %d on a disk accepting the %s", v, how)
	}
}

// TestRefusedSkipsOnlyTheLimit: on a geometry addressing more than 2^62
// bytes (8 MiB clusters, one-cluster tables) "refused 8" has nothing to
// test and passes, and the other variants are still judged.
func TestRefusedSkipsOnlyTheLimit(t *testing.T) {
	const head = "qedtorture-workload v1\nimage cluster_size=8388608 table_size=1 size=65536\n"
	require.NoError(t, runScript(t, qedtarget.Target{}, head+"refused 8\nrefused 0\n"))
	require.ErrorContains(t, runScript(t, lenientTarget{how: "read"}, head+"refused 0\n"), "was not refused")
}

// TestRefusedVariantsValidated: a refused variant outside 0..8 is
// refused by Validate, naming it.
func TestRefusedVariantsValidated(t *testing.T) {
	_, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nrefused 9\n"))
	require.ErrorIs(t, err, workload.ErrInvalid)
	require.ErrorContains(t, err, "refused variant 9, want 0 to 8")
	w := &workload.Workload{Geometry: workload.Geometry{ClusterSize: 4096, TableSize: 1, Size: 65536}, Ops: []workload.Op{{Kind: workload.Refused, Off: -1}}}
	require.ErrorContains(t, w.Validate(), "refused variant -1, want 0 to 8")
}

// resizeTarget is impl/qed whose resizes do what how says: "ignore"
// returns success without resizing, "fail" fails.
type resizeTarget struct {
	qedtarget.Target
	how string
}

type resizeDisk struct {
	target.Disk
	how string
}

var errResizeFails = errors.New("resize fails")

func (t resizeTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	return resizeDisk{d, t.how}, nil
}

func (d resizeDisk) Resize(size int64) error {
	if d.how == "ignore" {
		return nil
	}
	return errResizeFails
}

// TestResizeOpJudges: a resize op fails with the target's error when
// the resize fails, and when the size after a successful one is not the
// one asked for.
func TestResizeOpJudges(t *testing.T) {
	const script = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nresize 0x20000\n"
	require.ErrorIs(t, runScript(t, resizeTarget{how: "fail"}, script), errResizeFails)
	require.ErrorContains(t, runScript(t, resizeTarget{how: "ignore"}, script), "size after resize is 0x10000, want 0x20000")
}

// roCloseFailTarget is impl/qed whose read-only disks fail to close.
type roCloseFailTarget struct{ qedtarget.Target }

func (t roCloseFailTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil || !o.ReadOnly {
		return d, err
	}
	return closeFailDisk{d}, nil
}

// TestReopenROJudges: reopen-ro fails when the read-only image fails to
// close, and Validate refuses one reaching past the image size.
func TestReopenROJudges(t *testing.T) {
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\n"
	err := runScript(t, roCloseFailTarget{}, head+"reopen-ro 0x0 0x1000\n")
	require.ErrorIs(t, err, errCloseFails)
	require.ErrorContains(t, err, "read-only close")
	_, err = workload.Parse(strings.NewReader(head + "reopen-ro 0xf000 0x1001\n"))
	require.ErrorIs(t, err, workload.ErrInvalid)
}

// roGrowTarget is impl/qed whose read-only disks (Strict) accept a
// growing resize, doing nothing: while open (how "open") or once closed
// (how "closed"); they refuse a shrinking one as impl/qed does.
type roGrowTarget struct {
	qedtarget.Target
	how string
}

type roGrowDisk struct {
	target.Disk
	how    string
	closed *bool
}

func (roGrowDisk) RefusesInvalid() {}

func (t roGrowTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil || !o.ReadOnly {
		return d, err
	}
	return roGrowDisk{d, t.how, new(bool)}, nil
}

func (d roGrowDisk) Close() error { *d.closed = true; return d.Disk.Close() }

func (d roGrowDisk) Resize(size int64) error {
	if size > d.Size() && (d.how == "closed") == *d.closed {
		return nil
	}
	return d.Disk.Resize(size)
}

// TestReopenROGrowRefused: reopen-ro requires a growing resize of the
// read-only image refused, open and closed (a shrink is refused for
// another reason).
func TestReopenROGrowRefused(t *testing.T) {
	const script = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nreopen-ro 0x0 0x1000\n"
	require.ErrorContains(t, runScript(t, roGrowTarget{how: "open"}, script), "a resize of the read-only image was not refused")
	require.ErrorContains(t, runScript(t, roGrowTarget{how: "closed"}, script), "a resize on the closed image was not refused")
}

// TestOpString: an op's one-line form for messages is its script line,
// a concurrent op's followed by its group in brackets.
func TestOpString(t *testing.T) {
	require.Equal(t, "write 0x1000 0x200 id=3", workload.Op{Kind: workload.Write, Off: 0x1000, Len: 0x200, ID: 3}.String())
	require.Equal(t, "concurrent 2 [write 0x0 0x200 id=1; zero 0x200 0x200]", workload.Op{Kind: workload.Concurrent, Group: []workload.Op{
		{Kind: workload.Write, Off: 0, Len: 0x200, ID: 1}, {Kind: workload.WriteZeroes, Off: 0x200, Len: 0x200}}}.String())
}
