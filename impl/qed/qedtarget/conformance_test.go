package qedtarget_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props"
)

// TestConformanceQED runs impl/qed through the conformance door, exactly
// as another implementation's module would.
func TestConformanceQED(t *testing.T) {
	opts := props.ConformanceOptions{}
	if racetest.Enabled {
		opts.Sequences, opts.Steps, opts.Explore, opts.FaultRuns, opts.SweepStates = 12, 20, 4, 6, 1
	}
	props.TestTarget(t, qedtarget.Target{}, opts)
}

// TestConformanceQEDOneTableCache runs the state machine with a one-table
// L2 cache, so that eviction (and the write-back of dirty tables it
// forces) happens in the small images the state machine uses.
func TestConformanceQEDOneTableCache(t *testing.T) {
	opts := props.ConformanceOptions{Sequences: 20, FaultRuns: -1, SweepStates: -1}
	if racetest.Enabled {
		opts.Sequences, opts.Steps, opts.Explore = 6, 20, 4
	}
	props.TestTarget(t, qedtarget.Target{Options: qed.OpenOptions{L2CacheTables: 1}}, opts)
}
