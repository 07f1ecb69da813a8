package props

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/statemachine"
)

// The door's Replay: a failure report of the state machine prints a
// sequence that Replay runs back to the same failure.

// noFlush is impl/qed whose guest flushes do nothing (qedtarget's
// broken:noflush): acknowledged data is lost at a crash.
func noFlush(t *testing.T) Target {
	t.Helper()
	for _, b := range qedtarget.Broken() {
		if b.Name() == "broken:noflush" {
			return b
		}
	}
	t.Fatal("qedtarget.Broken() has no broken:noflush")
	return nil
}

// reportSequence returns the sequence a failure report prints for pasting
// into Replay.
func reportSequence(t *testing.T, report string) string {
	t.Helper()
	const begin, end = "----- sequence (paste into props.Replay) -----\n", "----- end -----\n"
	_, rest, ok := strings.Cut(report, begin)
	require.True(t, ok, "the report has no sequence to paste into props.Replay:\n%s", report)
	text, _, ok := strings.Cut(rest, end)
	require.True(t, ok, "the report's sequence has no end marker:\n%s", report)
	return text
}

// replayOutcome runs Replay on a TB that records a fatal failure instead
// of failing the test, and returns the failure message ("" if it passed).
func replayOutcome(t *testing.T, target Target, text string) string {
	tb := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Replay(tb, target, text)
	}()
	<-done
	return tb.fatal
}

type recordingTB struct {
	testing.TB
	fatal string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Logf(string, ...any)       {}
func (r *recordingTB) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...); runtime.Goexit() }

// TestFailureReportReplays: the sequence a failure report prints replays,
// through Replay, to the same failure (kind, stage, op), and passes on
// impl/qed.
func TestFailureReportReplays(t *testing.T) {
	seed := int64(envSeed(t, rand.Uint64()>>1))
	t.Logf("seed %d (replay: PROPS_SEED=%d)", seed, seed)
	cfg := statemachine.DefaultConfig()
	cfg.Seed, cfg.Sequences, cfg.NoFaults, cfg.NoConcurrency, cfg.MaxShrink = seed, 200, true, true, 60
	lossy := noFlush(t)
	res := statemachine.Check(lossy, cfg)
	require.False(t, res.Passed(), "a target that ignores Flush passed %d sequences", res.Sequences)
	report := res.Report()
	text := reportSequence(t, report)
	s, err := statemachine.ParseSequence(text)
	require.NoError(t, err)
	require.Equal(t, res.Shrunk.Seq.String(), s.String(), "the report prints the shrunk sequence")
	_, f := statemachine.RunSequence(lossy, s, statemachine.RunOptions{})
	require.NotNil(t, f, "the report's sequence does not fail:\n%s", text)
	require.Equal(t, res.Shrunk.Kind, f.Kind)
	require.Equal(t, res.Shrunk.Stage, f.Stage)
	require.Equal(t, res.Shrunk.Op, f.Op)
	msg := replayOutcome(t, lossy, text)
	require.Contains(t, msg, "props.Replay on broken:noflush failed", "Replay of the report's sequence must fail")
	require.Contains(t, msg, f.Error())
	require.Empty(t, replayOutcome(t, QEDTarget{}, text), "impl/qed passes the sequence")
}
