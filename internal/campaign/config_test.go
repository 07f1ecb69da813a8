package campaign

import (
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestSetDefaults: a campaign bounded by its iterations has no time limit,
// one bounded by neither runs DefaultDuration; the target's name defaults
// to the driver's; a diff driver that is not a Runner needs a reader; the geometry's bounds
// and the shares accept their edges (one cluster, a chance or share of 1) and
// refuse what lies past them.
func TestSetDefaults(t *testing.T) {
	c := Config{Target: qedtarget.Target{}, Iterations: 5}
	require.NoError(t, c.setDefaults())
	require.Zero(t, c.Duration, "an iterations-bounded campaign is not cut at a time")
	require.Equal(t, 1, c.Workers)
	c = Config{Target: qedtarget.Target{}}
	require.NoError(t, c.setDefaults())
	require.Equal(t, DefaultDuration, c.Duration)
	c = Config{Target: qedtarget.Target{}, Duration: time.Second}
	require.NoError(t, c.setDefaults())
	require.Equal(t, time.Second, c.Duration)
	require.Equal(t, "impl/qed", c.TargetName, "the driver's name by default")
	c = Config{Target: qedtarget.Target{}, Iterations: 1, TargetName: "given"}
	require.NoError(t, c.setDefaults())
	require.Equal(t, "given", c.TargetName)

	// A diff driver that is not a Runner needs a reader of its files: its
	// recoverer, else the reference.
	oop := outOfProcess{qedtarget.Target{}}
	c = Config{Target: qedtarget.Target{}, Iterations: 1, Diff: oop}
	require.ErrorIs(t, c.setDefaults(), ErrConfig)
	c = Config{Target: qedtarget.Target{}, Iterations: 1, Diff: oop, Reference: qedtarget.Target{}}
	require.NoError(t, c.setDefaults())
	c = Config{Target: qedtarget.Target{}, Iterations: 1, Diff: InProcess(qedtarget.Target{})}
	require.NoError(t, c.setDefaults(), "a Runner reads its own outcome")

	for _, edit := range []struct {
		name string
		ok   bool
		f    func(c *Config)
	}{
		{"one cluster", true, func(c *Config) { c.Gen.MaxClusters = 1 }},
		{"no cluster", false, func(c *Config) { c.Gen.MaxClusters = 0 }},
		{"backing chance 1", true, func(c *Config) { c.Gen.BackingChance = 1 }},
		{"backing chance 0", true, func(c *Config) { c.Gen.BackingChance = 0 }},
		{"backing chance 1.5", false, func(c *Config) { c.Gen.BackingChance = 1.5 }},
		{"backing chance -0.5", false, func(c *Config) { c.Gen.BackingChance = -0.5 }},
		{"creation share 1", true, func(c *Config) { c.CreateShare = 1 }},
		{"creation share 1.5", false, func(c *Config) { c.CreateShare = 1.5 }},
		{"fault share 1", true, func(c *Config) { c.FaultShare = 1 }},
		{"fault share 1.5", false, func(c *Config) { c.FaultShare = 1.5 }},
	} {
		c := Config{Target: qedtarget.Target{}, Iterations: 1, Gen: quickGen()}
		edit.f(&c)
		err := c.setDefaults()
		if edit.ok {
			require.NoError(t, err, edit.name)
		} else {
			require.ErrorIs(t, err, ErrConfig, edit.name)
		}
	}
}

// limitTarget is impl/qed asking the oracle for a full-read limit.
type limitTarget struct {
	qedtarget.Target
	limit int64
}

func (t limitTarget) FullReadLimit() int64 { return t.limit }

// TestConfigReaders: the progress interval defaults to 10 s; a diff
// driver's files are read back by its own recoverer, else by the
// reference; a target's positive full-read limit replaces the oracle's,
// none (0) keeps it.
func TestConfigReaders(t *testing.T) {
	c := Config{Target: qedtarget.Target{}, Iterations: 1}
	require.NoError(t, c.setDefaults())
	require.Equal(t, 10*time.Second, c.ProgressEvery)
	c = Config{Target: qedtarget.Target{}, Iterations: 1, ProgressEvery: time.Second}
	require.NoError(t, c.setDefaults())
	require.Equal(t, time.Second, c.ProgressEvery)

	ref := TargetOrDie(t, "impl/qed")
	c = Config{Target: qedtarget.Target{}, Iterations: 1, Diff: InProcess(TargetOrDie(t, "broken:nosync")), Reference: ref}
	require.NoError(t, c.setDefaults())
	require.Equal(t, "broken:nosync", c.diffReader().Name())
	c = Config{Target: qedtarget.Target{}, Iterations: 1, Diff: outOfProcess{qedtarget.Target{}}, Reference: limitTarget{limit: 1}}
	require.NoError(t, c.setDefaults())
	require.Equal(t, limitTarget{limit: 1}, c.diffReader())

	o := oracle.Options{FullReadLimit: 8192}
	require.EqualValues(t, 4096, tuneOracle(limitTarget{limit: 4096}, o).FullReadLimit)
	require.EqualValues(t, 8192, tuneOracle(limitTarget{}, o).FullReadLimit)
	require.EqualValues(t, 8192, tuneOracle(qedtarget.Target{}, o).FullReadLimit)
}

// TestParseWeightsBounds: weights from 0 to 1000 are accepted, 1001 not.
func TestParseWeightsBounds(t *testing.T) {
	w, err := ParseWeights("write=1000,flush=0", map[workload.Kind]int{workload.Flush: 1, workload.Read: 1})
	require.NoError(t, err)
	require.Equal(t, map[workload.Kind]int{workload.Write: 1000, workload.Read: 1}, w)
	_, err = ParseWeights("write=1001", nil)
	require.ErrorIs(t, err, ErrConfig)
}
