package statemachine

// Tests that kill mutants of this package which the other tests let live
// (docs/mutation.md lists each mutant and the test that kills it).

import (
	"errors"
	"os"

	"strings"
	"sync/atomic"
	"testing"

	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// TestCrashSweepMaxFailures: a sweep returns at most maxFailures failures,
// and 0 means 10 (crashsweep.go's default), over a target that ignores
// Flush, whose every sync drops data.
func TestCrashSweepMaxFailures(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	enum := crashsim.EnumOptions{Bound: 16, Samples: 8, Seed: 1}
	models := oracle.DefaultModels()
	for _, c := range []struct{ max, want int }{{0, 10}, {3, 3}, {12, 12}} {
		fails, states, err := CheckCrashSweep(lossyTarget{QEDTarget{}}, w, models, enum, oracle.Options{}, c.max)
		require.NoError(t, err)
		require.Len(t, fails, c.want, "maxFailures %d (%d states judged)", c.max, states)
		t.Logf("maxFailures %d: %d failures in %d states", c.max, len(fails), states)
	}
}

// TestCrashSweepFailuresReplay: every failure a sweep returns carries a
// Sequence that replays to the same crash state, at its last op (the op
// in progress, crashing at the sync the sweep found; the final close as a
// reopen), and is rejected there too.
func TestCrashSweepFailuresReplay(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	enum := crashsim.EnumOptions{Bound: 16, Samples: 8, Seed: 1}
	fails, states, err := CheckCrashSweep(lossyTarget{QEDTarget{}}, w, oracle.DefaultModels(), enum, oracle.Options{}, 40)
	require.NoError(t, err)
	require.NotEmpty(t, fails, "%d states", states)
	for _, f := range fails {
		_, g := RunSequence(lossyTarget{QEDTarget{}}, f.Seq, RunOptions{})
		require.NotNil(t, g, "failure %s does not replay:\n%s", f.ID, f.Seq)
		require.Equal(t, "crash", g.Kind, "%s: %v", f.ID, g)
		require.Equal(t, f.Seq.Len()-1, g.Op, "%s: the replay failed at another op", f.ID)
		require.Equal(t, f.ID.String(), g.StateID, "%s:\n%s", f.ID, f.Seq)
	}
	t.Logf("%d failures replayed", len(fails))
}

// failFlushTarget's Flush fails: the workload's run fails by itself.
type failFlushTarget struct{ Target }

func (f failFlushTarget) Name() string { return "fail-flush" }
func (f failFlushTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := f.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return failFlushDisk{d}, nil
}

type failFlushDisk struct{ Disk }

var errFlushFails = errors.New("flush fails (failFlushTarget)")

func (failFlushDisk) Flush() error { return errFlushFails }

// TestCrashSweepReturnsRunError: a workload whose run fails by itself is
// an error of the sweep, not a pass, whatever the states judged before it.
func TestCrashSweepReturnsRunError(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	enum := crashsim.EnumOptions{Bound: 4, Samples: 2, Seed: 1}
	_, states, err := CheckCrashSweep(failFlushTarget{QEDTarget{}}, w, oracle.DefaultModels(), enum, oracle.Options{}, 10)
	require.ErrorIs(t, err, errFlushFails, "%d states judged", states)
}

// TestFaultSweepReportsEveryFailingRun: a fault sweep does not stop at its
// first failing run: every flush of the workload whose sync error a
// target swallows is a failure of its own, each named by the rule (with
// its nth) that replays it.
func TestFaultSweepReportsEveryFailingRun(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	fails := CheckFaultSweep(swallowTarget{QEDTarget{}}, w, "sync:eio", 0, oracle.Options{})
	require.Greater(t, len(fails), 1, "%v", fails)
	seen := map[string]bool{}
	for _, f := range fails {
		require.False(t, seen[f.Rule], "rule %s reported twice", f.Rule)
		seen[f.Rule] = true
	}
	t.Logf("%d failing runs: %v", len(fails), fails)
}

// TestFaultSweepJudgesTheFiles: a fault run whose error surfaced is still
// judged by the oracle, as a drop crash right after the fault: a target
// whose flushes do nothing loses acknowledged data there.
func TestFaultSweepJudgesTheFiles(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	fails := CheckFaultSweep(lossyTarget{QEDTarget{}}, w, "write:eio", 0, oracle.Options{})
	require.NotEmpty(t, fails, "a target that ignores Flush passed the write:eio sweep")
	for _, f := range fails {
		require.Contains(t, f.Error(), "drop crash state", "%v", f)
	}
	require.Empty(t, CheckFaultSweep(QEDTarget{}, w, "write:eio", 0, oracle.Options{}))
}

// panicAfterErrorTarget's Close panics once an I/O call of its disk
// failed: a fault sweep reports the panic of the close it makes after the
// fault.
type panicAfterErrorTarget struct{ Target }

func (p panicAfterErrorTarget) Name() string { return "panic-after-error" }
func (p panicAfterErrorTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := p.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return &panicAfterErrorDisk{Disk: d}, nil
}

type panicAfterErrorDisk struct {
	Disk
	failed atomic.Bool
}

func (d *panicAfterErrorDisk) WriteAt(b []byte, off int64) (int, error) {
	n, err := d.Disk.WriteAt(b, off)
	if err != nil {
		d.failed.Store(true)
	}
	return n, err
}

func (d *panicAfterErrorDisk) Close() error {
	if d.failed.Load() {
		panic("close after a failed write (panicAfterErrorTarget)")
	}
	return d.Disk.Close()
}

// TestFaultSweepReportsPanickingClose: the close a fault sweep makes after
// the fault must not panic.
func TestFaultSweepReportsPanickingClose(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	fails := CheckFaultSweep(panicAfterErrorTarget{QEDTarget{}}, w, "write:eio", 0, oracle.Options{})
	require.NotEmpty(t, fails, "a close that panics after a failed write passed the write:eio sweep")
	found := false
	for _, f := range fails {
		found = found || strings.Contains(f.Error(), "panicAfterErrorTarget")
	}
	require.True(t, found, "%v", fails)
}

// TestConfigFill: zero and negative fields of a Config take the defaults
// (DefaultConfig; the models: oracle.DefaultModels), set ones are kept.
func TestConfigFill(t *testing.T) {
	d := DefaultConfig()
	for _, v := range []int{0, -1} {
		c := Config{Sequences: v, Steps: v, Batch: v, MaxShrink: v, MaxClusters: int64(v)}
		c.fill()
		require.Equal(t, d.Sequences, c.Sequences)
		require.Equal(t, d.Steps, c.Steps)
		require.Equal(t, d.Batch, c.Batch)
		require.Equal(t, d.MaxShrink, c.MaxShrink)
		require.Equal(t, d.MaxClusters, c.MaxClusters)
		require.Equal(t, oracle.DefaultModels(), c.Models)
	}
	models := []crashsim.Model{{Base: crashsim.Drop}}
	c := Config{Sequences: 1, Steps: 2, Batch: 3, MaxShrink: 4, MaxClusters: 5, Models: models}
	c.fill()
	require.Equal(t, Config{Sequences: 1, Steps: 2, Batch: 3, MaxShrink: 4, MaxClusters: 5, Models: models}, c)
}

// TestSizeClass: the classes of SizeClass at their bounds, for tables of
// more than one cluster (one L2 table's range is cs * cs*tableSize/8).
func TestSizeClass(t *testing.T) {
	g := func(cs, ts uint32, size int64) workload.Geometry {
		return workload.Geometry{ClusterSize: cs, TableSize: ts, Size: size}
	}
	const mib = 1 << 20
	for _, c := range []struct {
		g    workload.Geometry
		want string
	}{
		{g(4096, 1, -1), "negative"},
		{g(4096, 1, 0), "zero"},
		{g(4096, 1, 4096), "aligned"},
		{g(4096, 1, 4096+512), "unaligned"},
		{g(4096, 1, 2*mib-4096), "aligned"},
		{g(4096, 1, 2*mib), "multi-table"},
		{g(4096, 4, 4*mib), "aligned"},
		{g(4096, 4, 8*mib-512), "unaligned"},
		{g(4096, 4, 8*mib), "multi-table"},
		{g(65536, 16, 64*mib), "aligned"},
	} {
		require.Equal(t, c.want, SizeClass(c.g), "%+v", c.g)
	}
}

// TestReportShowsShrunkSequence: a failing sequence is shrunk by gopter
// (commands removed), and the report gives the shrunk sequence to paste,
// not the first one found.
func TestReportShowsShrunkSequence(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 7
	cfg.Sequences = 50
	cfg.NoFaults = true
	// One sequence per gopter check: a shorter failure is gopter's
	// shrinking, not a later sequence of the batch that failed too.
	cfg.Batch = 1
	res := Check(lossyTarget{QEDTarget{}}, cfg)
	require.False(t, res.Passed())
	require.NotNil(t, res.Shrunk)
	require.Less(t, res.Shrunk.Seq.Len(), res.First.Seq.Len(), "gopter removed no command at this seed")
	rep := res.Report()
	require.Contains(t, rep, "----- sequence (paste into props.Replay) -----\n"+res.Shrunk.Seq.String()+"----- end -----")
}

// TestAcceptVetsFailures: Config.Accept decides which failures count: one
// that rejects every failure makes a failing target pass (each rejected
// failure counted), one that accepts every failure changes nothing.
func TestAcceptVetsFailures(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 7
	cfg.Sequences = 20
	cfg.NoFaults = true
	cfg.Accept = func(*Failure) bool { return false }
	res := Check(lossyTarget{QEDTarget{}}, cfg)
	require.True(t, res.Passed(), res.Report())
	require.Positive(t, res.Rejected)
	require.Equal(t, cfg.Sequences, res.Sequences)
	cfg.Accept = func(f *Failure) bool {
		require.NotNil(t, f)
		return true
	}
	res = Check(lossyTarget{QEDTarget{}}, cfg)
	require.False(t, res.Passed())
	require.Zero(t, res.Rejected)
	require.NotEqual(t, "setup", res.First.Kind, res.Report())
}

// TestSequenceWithoutSteps: a Sequence built from a workload alone (no
// steps) prints as the workload's script.
func TestSequenceWithoutSteps(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	require.Equal(t, w.String(), (&Sequence{W: w}).String())
}

// TestSequenceEvents: a fault followed by a crash counts as a crash too;
// a fault followed by a clean close does not.
func TestSequenceEvents(t *testing.T) {
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\n"
	for _, c := range []struct {
		text            string
		crashes, faults int
	}{
		{"#! fault write:eio nth=1 then=close\nwrite 0x0 0x1000 id=1\n", 0, 1},
		{"#! fault sync:eio nth=1 then=crash model=drop choice=0\nflush\n", 1, 1},
		{"#! crash sync=0 model=prefix choice=0\nwrite 0x1000 0x1000 id=2\nflush\n", 1, 0},
	} {
		s, err := ParseSequence(head + c.text)
		require.NoError(t, err)
		crashes, faults := s.Events()
		require.Equal(t, c.crashes, crashes, c.text)
		require.Equal(t, c.faults, faults, c.text)
	}
}

// TestSequenceParseErrorLine: a bad directive's error names its line
// (1-based) and text.
func TestSequenceParseErrorLine(t *testing.T) {
	_, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\n#! crash sync=x model=drop choice=0\nflush\n")
	var pe *SequenceParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 3, pe.Line)
	require.Equal(t, "#! crash sync=x model=drop choice=0", pe.Text)
	require.ErrorIs(t, err, ErrSequence)
}

// TestSequenceComments: comment lines (a '#' at the start, not "#!") are
// not ops: a directive after one still belongs to the next op.
func TestSequenceComments(t *testing.T) {
	s, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\n# a comment\nwrite 0x0 0x1000 id=1\n# another\n#! crash sync=0 model=drop choice=0\nflush\n")
	require.NoError(t, err)
	require.Equal(t, 2, s.Len())
	require.Nil(t, s.Steps[0].Crash)
	require.NotNil(t, s.Steps[1].Crash)
}

// wreckOnErrorTarget zeroes the image's header (and syncs it) when a
// write of its disk fails: a crash after such a fault leaves no image.
type wreckOnErrorTarget struct{ Target }

func (w wreckOnErrorTarget) Name() string { return "wreck-on-error" }
func (w wreckOnErrorTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := w.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return wreckOnErrorDisk{Disk: d, fs: fs, path: path}, nil
}

type wreckOnErrorDisk struct {
	Disk
	fs   afero.Fs
	path string
}

func (d wreckOnErrorDisk) WriteAt(b []byte, off int64) (int, error) {
	n, err := d.Disk.WriteAt(b, off)
	if err != nil {
		if f, oerr := d.fs.OpenFile(d.path, os.O_RDWR, 0); oerr == nil {
			_, _ = f.WriteAt(make([]byte, 512), 0)
			_ = f.Sync()
			_ = f.Close()
		}
	}
	return n, err
}

// TestFailureNamesFailingState: a crash failure's Sequence names the state
// that failed as its choice (a choice is taken modulo the point's count:
// choice=5 under drop, one state, is state 0), for a crash directive and
// for a fault followed by a crash, so that its text replays that state.
func TestFailureNamesFailingState(t *testing.T) {
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\nflush\n"
	for _, c := range []struct {
		tg        Target
		directive string
		choice    func(s *Sequence) uint64
	}{
		{lossyTarget{QEDTarget{}}, "#! crash sync=0 model=drop choice=5\n", func(s *Sequence) uint64 { return s.Steps[2].Crash.Choice }},
		{wreckOnErrorTarget{QEDTarget{}}, "#! fault write:eio nth=1 then=crash model=drop choice=5\n", func(s *Sequence) uint64 { return s.Steps[2].Fault.Then.Choice }},
	} {
		s, err := ParseSequence(head + c.directive + "write 0x1000 0x1000 id=2\n")
		require.NoError(t, err)
		_, f := RunSequence(c.tg, s, RunOptions{})
		require.NotNil(t, f, c.directive)
		require.Contains(t, f.StateID, "/drop/0", c.directive)
		require.Equal(t, uint64(0), c.choice(f.Seq), "%s: the failure's sequence:\n%s", c.directive, f.Seq)
	}
}

// TestFailureKeepsCrashSync: a failure at the sync a crash directive
// names keeps that sync in the failure's Sequence.
func TestFailureKeepsCrashSync(t *testing.T) {
	s, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\nflush\n#! crash sync=1 model=drop choice=0\nreopen\n")
	require.NoError(t, err)
	_, f := RunSequence(lossyTarget{QEDTarget{}}, s, RunOptions{})
	require.NotNil(t, f)
	require.Equal(t, 1, f.Seq.Steps[2].Crash.Sync, "the failure's sequence:\n%s", f.Seq)
}

// TestCrashExploresOtherStates: with RunOptions.Explore, a crash judges
// the other states of its point too, each once: two pending writes under
// subset are four states, all judged.
func TestCrashExploresOtherStates(t *testing.T) {
	s, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\nflush\nwrite 0x0 0x200 id=2\n#! crash sync=0 model=subset choice=0\nwrite 0x400 0x200 id=3\n")
	require.NoError(t, err)
	r, f := RunSequence(QEDTarget{}, s, RunOptions{Explore: 8})
	require.Nil(t, f)
	require.Equal(t, 4, r.CrashStates)
	r, f = RunSequence(QEDTarget{}, s, RunOptions{})
	require.Nil(t, f)
	require.Equal(t, 1, r.CrashStates)
}

// TestFaultCloseReportsPanic: the clean close after a fault then=close
// must not panic.
func TestFaultCloseReportsPanic(t *testing.T) {
	s, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\n#! fault write:eio nth=1 then=close\nwrite 0x0 0x1000 id=1\n")
	require.NoError(t, err)
	_, f := RunSequence(panicAfterErrorTarget{QEDTarget{}}, s, RunOptions{})
	require.NotNil(t, f)
	require.Equal(t, "panic", f.Kind, "%v", f)
}

// TestCatchingModels: the models under which a failing sequence with a
// crash still fails; a sequence without crashes fails the same under
// every model (noCrash).
func TestCatchingModels(t *testing.T) {
	s, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\nflush\n#! crash sync=0 model=drop choice=0\nwrite 0x1000 0x1000 id=2\n")
	require.NoError(t, err)
	caught, noCrash := CatchingModels(lossyTarget{QEDTarget{}}, s, []crashsim.Model{{Base: crashsim.Drop}}, 0)
	require.False(t, noCrash)
	require.Equal(t, []crashsim.Model{{Base: crashsim.Drop}}, caught)
	caught, noCrash = CatchingModels(QEDTarget{}, s, []crashsim.Model{{Base: crashsim.Drop}}, 0)
	require.False(t, noCrash)
	require.Empty(t, caught)
	plain, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\n")
	require.NoError(t, err)
	caught, noCrash = CatchingModels(lossyTarget{QEDTarget{}}, plain, []crashsim.Model{{Base: crashsim.Drop}}, 0)
	require.True(t, noCrash)
	require.Nil(t, caught)
}

// TestCrashExploresEarlierSyncs: with RunOptions.Explore, the syncs of
// an op before the point its crash directive names are crash points too,
// and their states are judged. A reopen over a target that ignores Flush
// syncs twice (closing); until the second sync completes, the data
// flushed before is still pending and a drop crash loses it; after the op
// it is durable. So a crash after the op (sync=0) passes without
// exploration and fails with it, at sync 1, and the failure's sequence
// names sync 1 and replays without exploration.
func TestCrashExploresEarlierSyncs(t *testing.T) {
	s, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\nflush\n#! crash sync=0 model=drop choice=0\nreopen\n")
	require.NoError(t, err)
	r, f := RunSequence(lossyTarget{QEDTarget{}}, s, RunOptions{})
	require.Nil(t, f, "the state after the op alone must pass: %v", f)
	require.Equal(t, 1, r.CrashStates)
	_, f = RunSequence(lossyTarget{QEDTarget{}}, s, RunOptions{Explore: 1})
	require.NotNil(t, f, "the drop state at the reopen's first sync was not judged")
	require.Equal(t, "crash", f.Kind, "%v", f)
	require.Equal(t, 1, f.Seq.Steps[2].Crash.Sync, "the failure's sequence:\n%s", f.Seq)
	_, g := RunSequence(lossyTarget{QEDTarget{}}, f.Seq, RunOptions{})
	require.NotNil(t, g, "the failure's sequence does not replay:\n%s", f.Seq)
	require.Equal(t, f.StateID, g.StateID)
}

// TestFaultCloseJudgesLiveFiles: after a fault then=close, the files as
// they are (every op since the last sync kept: the last state of the
// prefix model) are judged, not a crash state that drops some of them. A
// target whose syncs are all lost but whose writes all land (impl/qed
// over a filesystem that drops syncs, qedtarget's broken:nosync) leaves
// right live files; any state keeping fewer of its writes loses the
// image's own creation.
func TestFaultCloseJudgesLiveFiles(t *testing.T) {
	var nosync Target
	for _, b := range qedtarget.Broken() {
		if b.Name() == "broken:nosync" {
			nosync = b
		}
	}
	require.NotNil(t, nosync, "qedtarget.Broken has no broken:nosync")
	s, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\nflush\nwrite 0x2000 0x1000 id=2\n#! fault write:eio nth=1 then=close\nwrite 0x8000 0x1000 id=3\nwrite 0x3000 0x1000 id=4\n")
	require.NoError(t, err)
	r, f := RunSequence(nosync, s, RunOptions{})
	require.Nil(t, f, "the live files after the fault were judged as a crash state: %v", f)
	require.Equal(t, 1, r.Faults, "the fault did not fire")
	require.Equal(t, 1, r.CrashStates)
}

// secondFlushLostTarget's second Flush of each disk returns success
// without flushing anything; the others flush.
type secondFlushLostTarget struct{ Target }

func (s secondFlushLostTarget) Name() string { return "second-flush-lost" }
func (s secondFlushLostTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := s.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return &secondFlushLostDisk{Disk: d}, nil
}

type secondFlushLostDisk struct {
	Disk
	flushes atomic.Int64
}

func (d *secondFlushLostDisk) Flush() error {
	if d.flushes.Add(1) == 2 {
		return nil
	}
	return d.Disk.Flush()
}

// TestCrashSweepJudgesOpStartAsReturned: a sweep judges the point just
// before an op's first file operation against that op's snapshot, taken
// once the op before it returned (the campaign's rule, and the runner's
// at the replay's crash), not against the op before's own, which lacks
// its flush. The second flush is lost: the rewrite of an allocated
// cluster stays pending after it; the next flush has no metadata to write
// and starts with its sync, which makes the data durable; so the only
// points that lose it are that sync's. Each failure is at the last flush's
// first sync and replays to the same state; impl/qed passes.
func TestCrashSweepJudgesOpStartAsReturned(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\nflush\nwrite 0x0 0x1000 id=2\nflush\nflush\n"))
	require.NoError(t, err)
	models := []crashsim.Model{{Base: crashsim.Drop}, {Base: crashsim.Prefix}}
	enum := crashsim.EnumOptions{Bound: 16, Samples: 8, Seed: 1}
	fails, states, err := CheckCrashSweep(QEDTarget{}, w, models, enum, oracle.Options{}, 10)
	require.NoError(t, err)
	require.Empty(t, fails, "impl/qed (%d states)", states)
	tg := secondFlushLostTarget{QEDTarget{}}
	fails, states, err = CheckCrashSweep(tg, w, models, enum, oracle.Options{}, 10)
	require.NoError(t, err)
	require.NotEmpty(t, fails, "the data a lost flush left pending was excused at the next flush's first sync (%d states)", states)
	for _, f := range fails {
		require.Equal(t, 5, f.Seq.Len(), "%s:\n%s", f.ID, f.Seq)
		c := f.Seq.Steps[4].Crash
		require.NotNil(t, c, "%s:\n%s", f.ID, f.Seq)
		require.Equal(t, 1, c.Sync, "%s:\n%s", f.ID, f.Seq)
		_, g := RunSequence(tg, f.Seq, RunOptions{})
		require.NotNil(t, g, "failure %s does not replay:\n%s", f.ID, f.Seq)
		require.Equal(t, f.ID.String(), g.StateID, "%s:\n%s", f.ID, f.Seq)
	}
}
