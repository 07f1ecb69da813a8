package statemachine

import (
	"os"
	"strconv"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
)

// QEDTarget is impl/qed's adapter under the name these tests knew it by
// (tests may import an implementation; the package may not).
type QEDTarget = qedtarget.Target

// The door's names, for the test doubles that wrap a target.
type (
	Target        = target.Target
	Disk          = target.Disk
	OpenOptions   = target.OpenOptions
	CreateOptions = target.CreateOptions
	CheckResult   = target.CheckResult
)

// envSeed returns PROPS_SEED when set (to replay a logged failure), else
// def: the door's seed handling (props), which these tests cannot import.
func envSeed(t testing.TB, def uint64) uint64 {
	if s := os.Getenv("PROPS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("PROPS_SEED=%q: %v", s, err)
		}
		t.Logf("replaying PROPS_SEED=%d", v)
		return v
	}
	return def
}

// replay runs a Sequence given in text form on tg and fails t if it does
// not pass: the door's Replay (props), which these tests cannot import.
func replay(t testing.TB, tg target.Target, text string) {
	t.Helper()
	s, err := ParseSequence(text)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if _, f := RunSequence(tg, s, RunOptions{}); f != nil {
		t.Fatalf("replay on %s failed:\n%s\n%v", tg.Name(), f.Seq, f)
	}
}
