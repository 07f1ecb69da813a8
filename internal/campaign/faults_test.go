package campaign

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestDamageOf: what each silent fault is allowed to have damaged, located
// with an image map: 4 KiB clusters, one-cluster tables (512 entries, an
// L2 table maps 2 MiB), header cluster 0, L1 at 0x1000, the L2 table of L1
// entry 1 at 0x2000, guest clusters 0x200000.. at host 0x3000...
func TestDamageOf(t *testing.T) {
	rep := &check.Report{Walked: true,
		Header:     check.Header{ClusterSize: 4096, TableSize: 1, HeaderSize: 1},
		Tables:     []check.TableRef{{Host: 0x1000, Index: -1}, {Host: 0x2000, Index: 1}},
		Mapped:     []check.Range{{Off: 0x200000, Len: 0x2000}},
		MappedHost: []uint64{0x3000},
	}
	w := &workload.Workload{Geometry: workload.Geometry{ClusterSize: 4096}, Ops: []workload.Op{
		{Kind: workload.Write, Off: 0x100, Len: 0x200, ID: 1},
		{Kind: workload.Flush},
		{Kind: workload.Write, Off: 0x5000, Len: 0x100, ID: 2},
		{Kind: workload.WriteZeroes, Off: 0x9000, Len: 0x1000},
		{Kind: workload.Flush},
	}}
	const size = 8 << 20
	img := ImagePath
	lost := func(off int64, n int) faultfs.Injection {
		return faultfs.Injection{Op: faultfs.OpWrite, Fault: faultfs.FaultLost, Path: img, Off: off, Len: n}
	}
	tests := []struct {
		name   string
		in     faultfs.Injection
		op     int
		ranges []model.Range
		meta   bool
	}{
		{"lost data write", lost(0x3100, 0x200), 2, []model.Range{{Off: 0x200100, Len: 0x200}}, false},
		{"lost write to a cluster not linked in the file: the epoch's writes", lost(0x9000, 0x1000), 2, []model.Range{{Off: 0x5000, Len: 0x1000}}, true},
		{"lost L2 entries", lost(0x2008, 16), 2, []model.Range{{Off: 0x201000, Len: 0x2000}}, true},
		{"lost L1 entry", lost(0x1008, 8), 2, []model.Range{{Off: 0x200000, Len: 0x200000}}, true},
		{"lost header write", lost(0, 512), 2, nil, true},
		{"misdirected data write", faultfs.Injection{Op: faultfs.OpWrite, Fault: faultfs.FaultMisdirect, Path: img, Off: 0x3000, Len: 0x100, Detail: 0x4000},
			2, []model.Range{{Off: 0x200000, Len: 0x100}, {Off: 0x201000, Len: 0x100}}, false},
		{"misdirected data write onto the header", faultfs.Injection{Op: faultfs.OpWrite, Fault: faultfs.FaultMisdirect, Path: img, Off: 0x3000, Len: 0x100, Detail: 0},
			2, []model.Range{{Off: 0x200000, Len: 0x100}}, true},
		{"lost sync of the first epoch, during op 0", faultfs.Injection{Op: faultfs.OpSync, Fault: faultfs.FaultLost, Path: img}, 0,
			[]model.Range{{Off: 0, Len: 0x1000}}, true},
		{"lost sync at the run's end (its close)", faultfs.Injection{Op: faultfs.OpSync, Fault: faultfs.FaultLost, Path: img}, len(w.Ops),
			nil, true},
		{"lost sync of the second epoch", faultfs.Injection{Op: faultfs.OpSync, Fault: faultfs.FaultLost, Path: img}, 4,
			[]model.Range{{Off: 0x5000, Len: 0x1000}, {Off: 0x9000, Len: 0x1000}}, true},
		{"bitflip in a table read", faultfs.Injection{Op: faultfs.OpRead, Fault: faultfs.FaultBitflip, Path: img, Off: 0x2000, Len: 0x1000},
			2, []model.Range{{Off: 0, Len: size}}, true},
		{"bitflip in a raw backing file", faultfs.Injection{Op: faultfs.OpRead, Fault: faultfs.FaultBitflip, Path: "/w/backing0.raw", Off: 0x700, Len: 0x100},
			2, []model.Range{{Off: 0x700, Len: 0x100}}, false},
		{"an error is not silent", faultfs.Injection{Op: faultfs.OpWrite, Fault: faultfs.FaultEIO, Path: img, Off: 0x3000, Len: 0x100, Err: errors.New("injected")},
			2, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := damageOf([]faultfs.Injection{tc.in}, []int{tc.op}, w, size, rep)
			require.Equal(t, tc.ranges, d.ranges)
			require.Equal(t, tc.meta, d.meta)
		})
	}
	// The header's and a table's ends: a map whose guest cluster 0 is
	// the cluster right after the header, the L1 table at 0x2000 (and
	// without that data cluster: nothing right after the header).
	after := &check.Report{Walked: true, Header: rep.Header, Tables: []check.TableRef{{Host: 0x2000, Index: -1}},
		Mapped: []check.Range{{Off: 0, Len: 0x1000}}, MappedHost: []uint64{0x1000}}
	unlinked := &check.Report{Walked: true, Header: rep.Header, Tables: after.Tables}
	l2zero := &check.Report{Walked: true, Header: rep.Header, Tables: []check.TableRef{{Host: 0x2000, Index: -1}, {Host: 0x3000, Index: 0}}}
	gapAfter := &check.Report{Walked: true, Header: rep.Header, Tables: []check.TableRef{{Host: 0x3000, Index: -1}},
		Mapped: after.Mapped, MappedHost: after.MappedHost}
	for _, tc := range []struct {
		name   string
		in     faultfs.Injection
		rep    *check.Report
		ranges []model.Range
		meta   bool
	}{
		{"a data cluster right after the header", lost(0x1000, 0x100), after, []model.Range{{Off: 0, Len: 0x100}}, false},
		{"over the header's end into no cluster: the epoch's writes", lost(0x800, 0x1000), unlinked, []model.Range{{Off: 0x5000, Len: 0x1000}}, true},
		{"over a table's end into no cluster: the epoch's writes", lost(0x2800, 0x1000), unlinked, []model.Range{{Off: 0x5000, Len: 0x1000}}, true},
		{"entries 1 and 2 of L1 entry 0's L2 table", lost(0x3008, 16), l2zero, []model.Range{{Off: 0x1000, Len: 0x2000}}, true},
		{"over a data cluster's end into no cluster: its bytes and the epoch's writes", lost(0x1800, 0x1000), gapAfter,
			[]model.Range{{Off: 0x800, Len: 0x800}, {Off: 0x5000, Len: 0x1000}}, true},
	} {
		d := damageOf([]faultfs.Injection{tc.in}, []int{2}, w, size, tc.rep)
		require.Equal(t, tc.ranges, d.ranges, tc.name)
		require.Equal(t, tc.meta, d.meta, tc.name)
	}
	// After a lost write, guest clusters sharing a data cluster are damaged.
	twice := &check.Report{Walked: true, Header: rep.Header,
		Mapped:     []check.Range{{Off: 0x8000, Len: 0x1000}, {Off: 0x88000, Len: 0x2000}},
		MappedHost: []uint64{0x6000, 0x5000}}
	d := damageOf([]faultfs.Injection{lost(0x9000, 0x1000)}, []int{0}, w, size, twice)
	require.Contains(t, d.ranges, model.Range{Off: 0x89000, Len: 0x1000})
	require.Contains(t, d.ranges, model.Range{Off: 0x8000, Len: 0x1000})
	// A bitflip in what a guest read: what it read.
	rd := &workload.Workload{Ops: []workload.Op{{Kind: workload.Read, Off: 0x3700, Len: 0x200}}}
	d = damageOf([]faultfs.Injection{{Op: faultfs.OpRead, Fault: faultfs.FaultBitflip, Path: img, Off: 0x9000, Len: 0x200}}, []int{0}, rd, size, rep)
	require.Equal(t, []model.Range{{Off: 0x3700, Len: 0x200}}, d.ranges)
	d = damage{size: size, ranges: []model.Range{{Off: 0, Len: 0x100}, {Off: 0x80, Len: 0x100}}}
	require.True(t, d.within(0x10, 0x150))
	require.False(t, d.within(0x10, 0x200))
	require.True(t, d.within(0x10, 0x170), "to the end of the last range")
	require.True(t, d.within(0x80, 0x100), "from the start of a range")
	require.False(t, d.within(0x170, 0x20), "past the end of the last range")
	d = damage{size: size, ranges: []model.Range{{Off: 0, Len: 0x100}, {Off: 0x100, Len: 0x100}}}
	require.True(t, d.within(0, 0x200), "adjacent ranges")
	// A bitflip in a read at the run's end (after the last op: its close):
	// located by the map, no guest read.
	d = damageOf([]faultfs.Injection{{Op: faultfs.OpRead, Fault: faultfs.FaultBitflip, Path: img, Off: 0x3000, Len: 0x100}}, []int{len(rd.Ops)}, rd, size, rep)
	require.Equal(t, []model.Range{{Off: 0x200000, Len: 0x100}}, d.ranges)
}

// TestFaultsImageCommands: silent faults during the image commands. A
// lost sync between a rebase -u's name and fields can leave a torn name,
// and a lost write or sync of a commit's base damages what the image
// reads through it; no implementation can notice either, so both count
// as fault effects. Seed 21 with these rules failed at workloads 43, 50
// and 82 before (backing-name twice, data once). Only those three run: the
// shard w/(w+1) of the first w+1 indices is workload w alone, with the
// workload seed (so the faults) it has in the whole campaign; all 83 took
// 40 s under the race detector.
func TestFaultsImageCommands(t *testing.T) {
	racetest.Heavy(t)
	gen := DefaultGenConfig()
	var err error
	gen.Weights, err = ParseWeights("rebase=2,rebase-unsafe=2,commit=2", gen.Weights)
	require.NoError(t, err)
	for _, w := range []int{43, 50, 82} {
		rep, err := Run(context.Background(), Config{Seed: 21, Shard: Shard{Index: w, Count: w + 1}, Iterations: w + 1,
			Gen: gen, Faults: "write:eio@p=0.02;sync:lost@p=0.02", Target: TargetOrDie(t, "impl/qed"), TargetName: "impl/qed"})
		require.NoError(t, err)
		require.Equal(t, int64(1), rep.Workloads+rep.FailedWorkloads, "workload %d alone", w)
		require.Empty(t, rep.Failures, "workload %d", w)
		require.Positive(t, rep.FaultEffects, "workload %d: the silent faults had effects", w)
	}
}

// TestLostWriteBeforeCommit: a lost L2 table write before a commit (the
// commit, reopening the image, finds the data unlinked and commits
// nothing; emptying the image then loses it) is the fault's direct
// effect. The run's end map, taken after the commit freed the clusters
// and a later write took them again, located the lost write in the new
// L2 table at entries past the image's size, so nothing was excused: a
// false failure the first campaign with --fault-share 1 found (seed 5,
// workload 4).
func TestLostWriteBeforeCommit(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=16384 table_size=16 size=983040
backing raw size=37376 fill=1
write 0x6c000 0x4000 id=4
commit
zero 0x4000 0x8000
`))
	require.NoError(t, err)
	rep, err := Run(context.Background(), Config{Seed: 5, Iterations: 1, Workload: w, Faults: "write:lost@nth=2",
		Target: TargetOrDie(t, "impl/qed"), TargetName: "impl/qed"})
	require.NoError(t, err)
	require.Equal(t, int64(1), rep.Faulted)
	require.Empty(t, rep.Failures)
	require.Positive(t, rep.FaultEffects)
}

// TestLostL1LinkBeforeCommit: a lost write of the L1 entry linking a new
// L2 table, then a commit. The writes after the loss update the unlinked
// table (in memory the link holds), so they are lost too, and the commit,
// reading the file's L1, copies none of them. The damage is the L1
// entry's whole span: the header and the L1 table never move, so the
// lost write is located there although a commit follows. Before, only the
// lost write's epoch was excused and the later write's loss was a false
// failure (found by a campaign weighting hostile ops, seed 21, workload
// 48; minimized).
func TestLostL1LinkBeforeCommit(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=16384 table_size=1 size=786432
backing raw size=240128 fill=1
write 0xbc00 0x7a00 id=2
flush
write 0xa0000 0x4000 id=5
commit
`))
	require.NoError(t, err)
	rep, err := Run(context.Background(), Config{Seed: 21, Iterations: 1, Workload: w, Faults: "write:lost@nth=3",
		Target: TargetOrDie(t, "impl/qed"), TargetName: "impl/qed"})
	require.NoError(t, err)
	require.Equal(t, int64(1), rep.Faulted)
	require.Empty(t, rep.Failures)
	require.Positive(t, rep.FaultEffects)
}

// TestFaultedCommitRecoversBase: in a faulted run too, a crash during a
// commit into a qed base recovers the base before the image is judged
// (as a user would: check -r of the base, then the image). Before, only
// runs without faults did, so a crash state before the fault (the base's
// L2 link durable, its file extension not yet) failed reading the image
// through the unrecovered base: found by --fault-share 1, seed 5.
func TestFaultedCommitRecoversBase(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=4096 table_size=1 size=139264
backing qed size=31744 cluster_size=65536 table_size=4 fill=1
zero 0x14a00 0x1a00
commit
`))
	require.NoError(t, err)
	rep, err := Run(context.Background(), Config{Seed: 5, Iterations: 1, Workload: w, Faults: "truncate:enospc@nth=3",
		Models: []crashsim.Model{{Base: crashsim.Subset}}, Target: TargetOrDie(t, "impl/qed"), TargetName: "impl/qed"})
	require.NoError(t, err)
	require.Equal(t, int64(1), rep.Faulted)
	require.Empty(t, rep.Failures)
}

// cleanImage is the image file of w run on impl/qed and closed.
func cleanImage(t *testing.T, w *workload.Workload) []byte {
	t.Helper()
	fs := afero.NewMemMapFs()
	e, err := workload.NewExec(qedtarget.Target{}, fs, Dir, w)
	require.NoError(t, err)
	require.NoError(t, e.RunAll())
	require.NoError(t, e.Disk.Close())
	img, err := afero.ReadFile(fs, ImagePath)
	require.NoError(t, err)
	return img
}

// TestDamageFoundBy: which structural failures are a silent fault's
// damage found. Any structural stage when metadata was hit; after a lost
// write, a failure of the structure before or after recovery whose every
// violation is a link past the end of the file (or a cluster linked
// twice, or NEED_CHECK clear over them), in both reports; no other stage,
// no other violation, nothing when neither.
func TestDamageFoundBy(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\nwrite 8192 4096 id=2\n"))
	require.NoError(t, err)
	img := cleanImage(t, w)
	plant := func(c check.Corruption) *check.Report {
		bad, _, err := check.Plant(img, c, true, 1)
		require.NoError(t, err)
		return check.Structure(bad)
	}
	pastEOF, misaligned := plant(check.CorruptTruncate), plant(check.CorruptL2Misaligned)
	require.NotEmpty(t, pastEOF.Kinds())
	for _, k := range pastEOF.Kinds() {
		require.Contains(t, []check.ViolationKind{check.ViolDataPastEOF, check.ViolTablePastEOF}, k)
	}
	require.True(t, misaligned.Has(check.ViolDataMisaligned))
	clean := check.Structure(img)
	require.Empty(t, clean.Kinds())

	meta, lost, none := damage{meta: true}, damage{lost: true}, damage{}
	for _, tc := range []struct {
		name  string
		d     damage
		v     oracle.Verdict
		found bool
	}{
		{"data failure: never", meta, oracle.Verdict{Stage: oracle.StageData}, false},
		{"metadata hit: any structural stage", meta, oracle.Verdict{Stage: oracle.StageRecovery}, true},
		{"metadata hit: the liveness", meta, oracle.Verdict{Stage: oracle.StageLiveness}, true},
		{"no damage", none, oracle.Verdict{Stage: oracle.StageStructureBefore, Before: pastEOF}, false},
		{"lost write: links past the end before", lost, oracle.Verdict{Stage: oracle.StageStructureBefore, Before: pastEOF}, true},
		{"lost write: links past the end after", lost, oracle.Verdict{Stage: oracle.StageStructureAfter, Before: clean, After: pastEOF}, true},
		{"lost write: a recovery failure", lost, oracle.Verdict{Stage: oracle.StageRecovery}, false},
		{"lost write: a size failure", lost, oracle.Verdict{Stage: oracle.StageSize, Before: pastEOF}, false},
		{"lost write: a misaligned link before", lost, oracle.Verdict{Stage: oracle.StageStructureBefore, Before: misaligned}, false},
		{"lost write: a misaligned link after", lost, oracle.Verdict{Stage: oracle.StageStructureAfter, Before: pastEOF, After: misaligned}, false},
		{"lost write: a misaligned link before, after clean", lost, oracle.Verdict{Stage: oracle.StageStructureAfter, Before: misaligned, After: clean}, false},
	} {
		require.Equal(t, tc.found, tc.d.foundBy(&tc.v), tc.name)
	}
}
