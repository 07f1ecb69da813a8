package statemachine

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

const sampleSequence = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=131072
backing raw size=40960 fill=1
write 0x0 0x1800 id=2
#! crash sync=1 model=subset choice=3
flush
#! fault write:eio nth=1 then=close
write 0x5000 0x2000 id=3
zero 0x800 0x3000
#! fault sync:eio nth=1 then=crash model=drop choice=0
flush
#! crash sync=0 model=subset choice=1
concurrent 2
  write 0x8000 0x1000 id=5
  zero 0x8800 0x1000
#! crash sync=0 model=torn512+size choice=seed:77
resize 0x22000
read 0x0 0x22000
reopen
check
`

// TestSequenceRoundTrip: the text form parses back to the same sequence,
// and stays a valid workload script.
func TestSequenceRoundTrip(t *testing.T) {
	s, err := ParseSequence(sampleSequence)
	require.NoError(t, err)
	require.Equal(t, sampleSequence, s.String())
	require.Equal(t, 10, s.Len())
	c, f := s.Events()
	require.Equal(t, 4, c)
	require.Equal(t, 2, f)
	require.Equal(t, 1, s.Steps[1].Crash.Sync)
	require.Equal(t, "write:eio", s.Steps[2].Fault.Rule)
	require.Nil(t, s.Steps[2].Fault.Then)
	require.Equal(t, "drop", s.Steps[4].Fault.Then.Model.String())
	w, err := workload.Parse(strings.NewReader(sampleSequence))
	require.NoError(t, err)
	require.Equal(t, w.String(), s.W.String())
	require.Equal(t, s.String(), s.Clone().String())
}

func TestSequenceParseErrors(t *testing.T) {
	head := "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\n"
	for _, bad := range []string{
		"#! crash sync=1 model=subset\nflush\n",                   // no choice
		"#! crash sync=1 model=nosuch choice=1\nflush\n",          // bad model
		"#! crash sync=-1 model=drop choice=1\nflush\n",           // negative sync
		"#! fault write:eio nth=0 then=close\nflush\n",            // nth 0
		"#! fault write:nosuch nth=1 then=close\nflush\n",         // bad rule
		"#! fault write:eio nth=1 then=later\nflush\n",            // bad then
		"#! fault write:eio nth=1 then=crash model=drop\nflush\n", // then crash without choice
		"#! crash sync=1 model=drop choice=1\n#! crash sync=1 model=drop choice=1\nflush\n",
		"flush\n#! crash sync=1 model=drop choice=1\n", // dangling
		"#! explode\nflush\n",
	} {
		_, err := ParseSequence(head + bad)
		require.Error(t, err, "%q", bad)
		require.True(t, errors.Is(err, ErrSequence), "%q: %v", bad, err)
	}
}

// TestReplaySample: the sample sequence (crashes, faults, concurrency,
// resize over a shorter backing file) passes on impl/qed, and a fault
// fired and crash states were judged.
func TestReplaySample(t *testing.T) {
	s, err := ParseSequence(sampleSequence)
	require.NoError(t, err)
	r, f := RunSequence(QEDTarget{}, s, RunOptions{Explore: 16})
	require.Nil(t, f, "%v", f)
	require.GreaterOrEqual(t, r.Faults, 2)
	require.Greater(t, r.CrashStates, 3)
	replay(t, QEDTarget{}, sampleSequence)
}

// lossyTarget wraps a target.Target whose Flush does nothing: acknowledged data
// is lost at a crash. The properties must catch it.
type lossyTarget struct{ Target }

func (l lossyTarget) Name() string { return "lossy" }
func (l lossyTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := l.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return lossyDisk{d}, nil
}

type lossyDisk struct{ Disk }

func (lossyDisk) Flush() error { return nil }

// TestStateMachineCatchesLostFlush: a target that ignores flushes fails
// the state machine; the failure shrinks to a short sequence that replays.
func TestStateMachineCatchesLostFlush(t *testing.T) {
	seed := int64(envSeed(t, rand.Uint64()>>1))
	t.Logf("seed %d", seed)
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Sequences = 200
	cfg.NoFaults = true
	cfg.MaxShrink = 60
	res := Check(lossyTarget{QEDTarget{}}, cfg)
	require.False(t, res.Passed(), "a target that ignores Flush passed %d sequences", res.Sequences)
	t.Log(res.Report())
	require.NotNil(t, res.Shrunk)
	require.LessOrEqual(t, res.Shrunk.Seq.Len(), res.First.Seq.Len())
	require.LessOrEqual(t, res.Shrunk.Seq.Len(), 6, "shrunk counterexample is long:\n%s", res.Shrunk.Seq)
	// The counterexample is about the lost flush: impl/qed itself passes it.
	if _, f := RunSequence(QEDTarget{}, res.Shrunk.Seq, RunOptions{}); f != nil {
		t.Fatalf("impl/qed fails the counterexample too (a bug in impl/qed, not the planted one):\n%s\n%v", res.Shrunk.Seq, f)
	}
	// The printed text replays to the same kind of failure.
	s, err := ParseSequence(res.Shrunk.Seq.String())
	require.NoError(t, err)
	_, f := RunSequence(lossyTarget{QEDTarget{}}, s, RunOptions{})
	require.NotNil(t, f, "the printed counterexample did not replay:\n%s", res.Shrunk.Seq)
	require.Equal(t, res.Shrunk.Kind, f.Kind)
}

// swallowTarget hides Flush errors: a failed sync must surface.
type swallowTarget struct{ Target }

func (s swallowTarget) Name() string { return "swallow" }
func (s swallowTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := s.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return swallowDisk{d}, nil
}

type swallowDisk struct{ Disk }

func (d swallowDisk) Flush() error { _ = d.Disk.Flush(); return nil }

func TestFaultSweepCatchesSwallowedError(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	fails := CheckFaultSweep(swallowTarget{QEDTarget{}}, w, "sync:eio", 0, oracle.Options{})
	require.NotEmpty(t, fails, "a target that swallows flush errors passed the sync:eio sweep")
	require.Contains(t, fails[0].Error(), "did not surface")
	require.Empty(t, CheckFaultSweep(QEDTarget{}, w, "sync:eio", 0, oracle.Options{}))
}

// TestStateMachineFaultCommandCatchesSwallowedError: the fault commands of
// the state machine catch it too.
func TestStateMachineFaultCommandCatchesSwallowedError(t *testing.T) {
	replay(t, QEDTarget{}, "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\n#! fault sync:eio nth=1 then=close\nflush\n")
	s, err := ParseSequence("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\n#! fault sync:eio nth=1 then=close\nflush\n")
	require.NoError(t, err)
	_, f := RunSequence(swallowTarget{QEDTarget{}}, s, RunOptions{})
	require.NotNil(t, f)
	require.Equal(t, "fault", f.Kind)
	require.Contains(t, f.Error(), "did not surface")
}

// TestCrashSweepCatchesLostFlush: the crash sweep rejects a target that
// ignores flushes, and prints a sequence that replays the failure.
func TestCrashSweepCatchesLostFlush(t *testing.T) {
	w := FaultSweepWorkloads()["no-backing"]
	enum := crashsim.EnumOptions{Bound: 4, Samples: 2}
	fails, states, err := CheckCrashSweep(lossyTarget{QEDTarget{}}, w, []crashsim.Model{{Base: crashsim.Drop}}, enum, oracle.Options{}, 1)
	require.NoError(t, err)
	require.NotEmpty(t, fails, "a target that ignores Flush passed the crash sweep (%d states)", states)
	_, f := RunSequence(lossyTarget{QEDTarget{}}, fails[0].Seq, RunOptions{})
	require.NotNil(t, f, "the sweep's counterexample did not replay:\n%s", fails[0].Seq)
	fails, states, err = CheckCrashSweep(QEDTarget{}, w, oracle.DefaultModels(), enum, oracle.Options{}, 1)
	require.NoError(t, err)
	require.Empty(t, fails)
	require.Greater(t, states, 50)
}
