package props

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// oracleCase runs a script on impl/qed over crashsim and returns the
// "drop" crash state at its end (the pending writes lost) and the model.
func oracleCase(t *testing.T, script string) (afero.Fs, *Exec) {
	t.Helper()
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	base := crashsim.New(crashsim.Options{ImplicitDirSync: true, DiscardTrace: true})
	e, err := NewExec(QEDTarget{}, base, "/w", w)
	require.NoError(t, err)
	require.NoError(t, e.RunAll())
	p, err := base.Point()
	require.NoError(t, err)
	st, err := p.State(crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Drop}})
	require.NoError(t, err)
	return st, e
}

// The workload of these tests: flushed data at 0x10000 (a cluster far from
// the pending write at 0x20000 and from the liveness sector at 0), on an
// image of 1 MiB.
const oracleScript = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=1048576
write 0x10000 0x1000 id=1
flush
write 0x20000 0x200 id=2
`

// closeDamageTarget is impl/qed whose writable close then zeroes the
// guest cluster at 0x10000 (flushed data): a close after recovery that
// damages data.
type closeDamageTarget struct{ QEDTarget }

type closeDamageDisk struct {
	Disk
	fs   afero.Fs
	path string
}

func (t closeDamageTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := t.QEDTarget.Open(fs, path, o)
	if err != nil || o.ReadOnly {
		return d, err
	}
	return closeDamageDisk{d, fs, path}, nil
}

func (d closeDamageDisk) Close() error {
	if err := d.Disk.Close(); err != nil {
		return err
	}
	x, err := QEDTarget{}.Open(d.fs, d.path, OpenOptions{})
	if err != nil {
		return err
	}
	if err := x.WriteZeroes(0x10000, 0x1000); err != nil {
		return err
	}
	return x.Close()
}

// TestOracleRereadsAfterReopen: flushed data damaged by the close after
// recovery fails at data-after-reopen; the same state on impl/qed passes.
func TestOracleRereadsAfterReopen(t *testing.T) {
	st, e := oracleCase(t, oracleScript)
	v := CheckCrashState(QEDTarget{}, st, e.ImagePath(), e.Model.Clone(), OracleOptions{})
	require.True(t, v.OK(), "%v", v)
	for _, dur := range []bool{false, true} {
		st, e := oracleCase(t, oracleScript)
		o := OracleOptions{}
		if dur {
			var err error
			o.Durable, err = NewDurable(e.Model)
			require.NoError(t, err)
		}
		v := CheckCrashState(closeDamageTarget{}, st, e.ImagePath(), e.Model.Clone(), o)
		require.Equal(t, StageDataAfterReopen, v.Stage, "durable=%v: %v", dur, v)
		require.NotNil(t, v.Mismatch)
		require.Equal(t, int64(0x10000), v.Mismatch.Off)
	}
}

// lostMappingTarget is impl/qed whose writable open reads the guest
// cluster at 0x10000 as zeros (as if recovery lost its mapping).
type lostMappingTarget struct{ QEDTarget }

type lostMappingDisk struct{ Disk }

func (t lostMappingTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := t.QEDTarget.Open(fs, path, o)
	if err != nil || o.ReadOnly {
		return d, err
	}
	return lostMappingDisk{d}, nil
}

func (d lostMappingDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	for i := range p[:n] {
		if pos := off + int64(i); pos >= 0x10000 && pos < 0x11000 {
			p[i] = 0
		}
	}
	return n, err
}

// TestOracleBigImageReadsFlushedData: above FullReadLimit the flushed data
// far from every pending write is still read back (a lost mapping fails
// at data), and impl/qed passes.
func TestOracleBigImageReadsFlushedData(t *testing.T) {
	for _, dur := range []bool{false, true} {
		o := OracleOptions{FullReadLimit: 4096}
		st, e := oracleCase(t, oracleScript)
		if dur {
			var err error
			o.Durable, err = NewDurable(e.Model)
			require.NoError(t, err)
		}
		v := CheckCrashState(QEDTarget{}, st, e.ImagePath(), e.Model.Clone(), o)
		require.True(t, v.OK(), "%v", v)
		st, e = oracleCase(t, oracleScript)
		v = CheckCrashState(lostMappingTarget{}, st, e.ImagePath(), e.Model.Clone(), o)
		require.Equal(t, StageData, v.Stage, "durable=%v: %v", dur, v)
		require.Equal(t, int64(0x10000), v.Mismatch.Off)
	}
}

// TestReadRanges: above the limit, the union of the extra ranges, the
// model's data, the backing range and the mapped clusters, merged and
// clipped to the size; up to it, everything.
func TestReadRanges(t *testing.T) {
	b, _ := model.New(8192, nil)
	_, _ = b.Write(0, 8192)
	b.Flush()
	m, _ := model.New(1<<20, b)
	_, _ = m.Write(0x40000, 0x1000)
	require.NoError(t, m.WriteZeroes(0x50000, 0x10000)) // zeros: not data
	m.Flush()
	got := readRanges(m, 1<<20, 4096, []model.Range{{Off: 0x1000, Len: 0x2000}, {Off: 0xff000, Len: 0x2000}},
		[]check.Range{{Off: 0x40000, Len: 0x10000}})
	require.Equal(t, []model.Range{{Off: 0, Len: 0x3000}, {Off: 0x40000, Len: 0x10000}, {Off: 0xff000, Len: 0x1000}}, got)
	require.Equal(t, []model.Range{{Off: 0, Len: 1 << 20}}, readRanges(m, 1<<20, 1<<20, nil, nil))
}

// TestDurableSparseMatchesDense: the sparse durable contents of big images
// find the same differing blocks as the dense ones.
func TestDurableSparseMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m, _ := model.New(1<<20, nil)
	for range 20 {
		_, _ = m.Write(rng.Int64N(1<<20-0x3000), 1+rng.Int64N(0x3000))
	}
	m.Flush()
	dense, err := newDurable(m, true)
	require.NoError(t, err)
	sparse, err := newDurable(m, false)
	require.NoError(t, err)
	require.Nil(t, sparse.b)
	buf := make([]byte, 1<<20)
	require.NoError(t, m.ReadAt(buf, 0))
	var tmp [durableBlock]byte
	for range 500 {
		off := rng.Int64N(1<<20-1) / 512 * 512
		n := 1 + rng.Int64N(min(1<<20-off, 3*durableBlock))
		p := append([]byte(nil), buf[off:off+n]...)
		for range rng.IntN(3) {
			p[rng.Int64N(n)] ^= 0x40
		}
		a := dense.diffSpans(off, p, nil, tmp[:])
		b := sparse.diffSpans(off, p, nil, tmp[:])
		require.Equal(t, a, b, "read [%#x,+%#x)", off, n)
	}
}

// TestReopenRanges: stage 7 reads what the closed image's map does not
// prove: changed, the image's own data, mapped clusters, backing data
// under zero clusters, own write-zeroes over the backing range and the
// backing file past the creation size; a changed header reads everything.
func TestReopenRanges(t *testing.T) {
	b, _ := model.New(0x40000, nil)
	_, _ = b.Write(0, 0x40000)
	b.Flush()
	m, _ := model.New(0x20000, b) // backing longer than the image
	require.NoError(t, m.Grow(0x80000))
	_, _ = m.Write(0x50000, 0x1000)
	require.NoError(t, m.WriteZeroes(0x8000, 0x1000))
	m.Flush()
	hdr := StructureHeader{ClusterSize: 4096, TableSize: 1, HeaderSize: 1, ImageSize: 0x80000}
	before := &StructureReport{Header: hdr}
	after := &StructureReport{Header: hdr,
		Mapped: []check.Range{{Off: 0x50000, Len: 0x1000}, {Off: 0x60000, Len: 0x1000}},
		Zeroed: []check.Range{{Off: 0x8000, Len: 0x1000}, {Off: 0x10000, Len: 0x2000}}}
	got := reopenRanges(m, 0x80000, []model.Range{{Off: 0, Len: 0x200}}, before, after)
	require.Equal(t, []model.Range{
		{Off: 0, Len: 0x200},         // changed
		{Off: 0x8000, Len: 0x1000},   // own write-zeroes over the backing range
		{Off: 0x10000, Len: 0x2000},  // backing data under zero clusters
		{Off: 0x20000, Len: 0x20000}, // the backing file past the creation size
		{Off: 0x50000, Len: 0x1000},  // own data (and mapped)
		{Off: 0x60000, Len: 0x1000},  // mapped
	}, got)
	after.Header.ImageSize = 0x90000
	require.Equal(t, []model.Range{{Off: 0, Len: 0x80000}}, reopenRanges(m, 0x80000, nil, before, after))
}
