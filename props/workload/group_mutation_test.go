package workload_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// Tests of concurrent groups over a target that mixes, loses or fails
// their writes, written for the executor's survivors in docs/mutation.md
// (props/workload, 735ebee).

// wrapTarget is impl/qed whose open disks are wrapped by wrap.
type wrapTarget struct {
	qedtarget.Target
	wrap func(target.Disk) target.Disk
}

func (t wrapTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	return t.wrap(d), nil
}

// groupDisk is a target.GroupWriter (not pattern-only) that applies a
// group as apply says, one request after another.
type groupDisk struct {
	target.Disk
	apply func(d target.Disk, ws []target.GroupWrite) error
}

func (d groupDisk) WriteGroup(ws []target.GroupWrite) error { return d.apply(d.Disk, ws) }
func (groupDisk) PatternOnly() bool                         { return false }

// parseExec parses script and opens it on tg over a fresh in-memory
// file system.
func parseExec(t *testing.T, tg target.Target, script string) *workload.Exec {
	t.Helper()
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	e, err := workload.NewExec(tg, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	t.Cleanup(func() {
		if e.Disk != nil {
			e.Disk.Close()
		}
	})
	return e
}

// patternGroupDisk is a groupDisk that is pattern-only and verifies
// patterns itself (target.PatternVerifier), as QEMU's adapter does.
type patternGroupDisk struct{ groupDisk }

func (patternGroupDisk) PatternOnly() bool { return true }

func (d patternGroupDisk) VerifyPattern(off, n int64, b byte) (bool, error) {
	p := make([]byte, n)
	if _, err := d.ReadAt(p, off); err != nil {
		return false, err
	}
	return bytes.Count(p, []byte{b}) == len(p), nil
}

// TestGroupMixedStretchChecked: a concurrent group whose overlapping
// writes land interleaved inside a stretch (write 1 over [0x10000,
// 0x12000), write 2 over [0x11000, 0x12000); the read-back holds write
// 2's bytes up to 0x11800 and write 1's from there) is legal: each byte
// holds the value of a write covering it, so the stretch, which equals
// neither write as a whole, is checked byte by byte, up to its end and
// no further, and passes; a third write, [0x12000, 0x13000), follows it.
// The same with the stretch's last byte damaged fails at that byte. Both
// for a target that the executor reads back, and for a pattern-only one
// that verifies the stretches one value covers itself (QEMU's): there
// the bytes of write 3's stretch are never read. (Killed the mutants of
// checkGroup giving checkGroupBytes a wrong end, b+lo for b-lo, and of
// checkGroupBytes' loop running one byte past its end, k <= to: over a
// pattern verifier both judged write 3's first bytes, not read, and
// failed a legal group. Over a plain target they are equivalent: every
// stretch is read first, and a byte past the stretch is judged as its
// own stretch judges it; past the group's end no write covers a byte.)
func TestGroupMixedStretchChecked(t *testing.T) {
	const script = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=0x20000\n" +
		"concurrent 3\n  write 0x10000 0x2000 id=1\n  write 0x11000 0x1000 id=2\n  write 0x12000 0x1000 id=3\n" +
		"read 0x10000 0x3000\n"
	mix := func(damage bool) func(d target.Disk, ws []target.GroupWrite) error {
		return func(d target.Disk, ws []target.GroupWrite) error {
			for _, w := range ws {
				if _, err := d.WriteAt(w.Data, w.Off); err != nil {
					return err
				}
			}
			// Write 1's tail again: [0x11800, 0x12000) as if it landed last.
			tail := bytes.Clone(ws[0].Data[0x1800:])
			if damage {
				tail[len(tail)-1] ^= 0xff
			}
			_, err := d.WriteAt(tail, 0x11800)
			return err
		}
	}
	for _, pattern := range []bool{false, true} {
		for _, damage := range []bool{false, true} {
			wrap := func(d target.Disk) target.Disk {
				if pattern {
					return patternGroupDisk{groupDisk{d, mix(damage)}}
				}
				return groupDisk{d, mix(damage)}
			}
			err := parseExec(t, wrapTarget{wrap: wrap}, script).RunAll()
			if !damage {
				require.NoError(t, err, "an interleaved overlap is legal (pattern-only: %v)", pattern)
				continue
			}
			require.ErrorIs(t, err, workload.ErrDataMismatch, "pattern-only: %v", pattern)
			require.ErrorContains(t, err, "byte at 0x11fff", "pattern-only: %v", pattern)
		}
	}
	// The same group over impl/qed as is passes too (the mix is the test's).
	require.NoError(t, parseExec(t, qedtarget.Target{}, script).RunAll())
}

// TestGroupLostZeroesFail: a write-zeroes of a concurrent group that the
// target drops (it returns success and writes nothing) leaves the
// non-zero bytes of an earlier write there: the read-back fails at the
// range's first byte. (Killed the mutant of checkGroup's fast path that
// took a stretch of a write-zeroes reading no zero byte at all for one
// that reads only zeros: the model's Recover after it then accepted the
// old bytes, since a pending write may be lost.)
func TestGroupLostZeroesFail(t *testing.T) {
	// The earlier write's id is the first whose bytes over the range
	// hold no zero byte, so that every byte of the stretch reads non-zero.
	id, old := uint64(1), make([]byte, 0x200)
	for ; ; id++ {
		model.Fill(old, id, 0x1000)
		if bytes.IndexByte(old, 0) < 0 {
			break
		}
	}
	script := fmt.Sprintf("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=0x20000\n"+
		"write 0x1000 0x200 id=%d\nflush\nconcurrent 2\n  zero 0x1000 0x200\n  write 0x4000 0x200 id=%d\n", id, id+1)
	e := parseExec(t, wrapTarget{wrap: func(d target.Disk) target.Disk { return lostZeroDisk{d} }}, script)
	err := e.RunAll()
	require.ErrorIs(t, err, workload.ErrDataMismatch)
	require.ErrorContains(t, err, "byte at 0x1000")
	require.NoError(t, parseExec(t, qedtarget.Target{}, script).RunAll())
}

// lostZeroDisk drops every write-zeroes, reporting success.
type lostZeroDisk struct{ target.Disk }

func (lostZeroDisk) WriteZeroes(off, n int64) error { return nil }

var errTornWrite = errors.New("torn write (injected)")

// tornWriteDisk fails the writes at offset at: it writes their first 700
// bytes (a sector and part of the next) and returns an error.
type tornWriteDisk struct {
	target.Disk
	at int64
}

func (d tornWriteDisk) WriteAt(p []byte, off int64) (int, error) {
	if off != d.at {
		return d.Disk.WriteAt(p, off)
	}
	n, err := d.Disk.WriteAt(p[:min(len(p), 700)], off)
	if err == nil {
		err = errTornWrite
	}
	return n, err
}

// TestGroupFailedWriteMarked: when one write of a concurrent group run
// from goroutines fails (torn: it wrote a sector and part of the next),
// that write, and not the other, is marked failed in the model and in the
// snapshot crashes during the op are judged against: what the disk holds
// then is a legal crash state of both (a failed write's bytes are judged
// one by one; a write that returned success is judged sector by sector,
// and its torn sector would fail). (Killed the mutant marking the
// successful writes failed instead, err == nil for err != nil.)
func TestGroupFailedWriteMarked(t *testing.T) {
	const script = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=0x20000\n" +
		"concurrent 2\n  write 0x1000 0x400 id=1\n  write 0x3000 0x400 id=2\n"
	e := parseExec(t, wrapTarget{wrap: func(d target.Disk) target.Disk { return tornWriteDisk{d, 0x3000} }}, script)
	var snap *model.Disk
	e.Snapshot = func(_ int, m *model.Disk) { snap = m }
	require.ErrorIs(t, e.RunAll(), errTornWrite)
	require.NotNil(t, snap)
	for _, r := range []struct{ off, n int64 }{{0x1000, 0x400}, {0x3000, 0x400}, {0, 0x20000}} {
		got := make([]byte, r.n)
		_, err := e.Disk.ReadAt(got, r.off)
		require.NoError(t, err)
		require.NoError(t, e.Model.VerifyCrash(r.off, got), "the model, [%#x, +%#x)", r.off, r.n)
		require.NoError(t, snap.VerifyCrash(r.off, got), "the op's snapshot, [%#x, +%#x)", r.off, r.n)
	}
	// The torn sector is what the judgement hinges on: had the write
	// succeeded, the sector would have to hold all of it or none.
	got := make([]byte, 0x200)
	_, err := e.Disk.ReadAt(got, 0x3200)
	require.NoError(t, err)
	want := make([]byte, 0x200)
	model.Fill(want[:700-0x200], 2, 0x3200)
	require.Equal(t, want, got, "the torn write's second sector: 188 bytes of it, then zeros")
}
