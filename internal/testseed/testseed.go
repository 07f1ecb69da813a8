// Package testseed gives randomized tests their seed: a fresh one each
// run, or the one an environment variable names, logged either way so
// that a failure replays (go test -run TestX with the variable set).
package testseed

import (
	"math/rand/v2"
	"os"
	"strconv"
)

// T is the part of testing.TB Seed uses (declared here so that the
// package does not link testing: principle 4 of docs/architecture.md).
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// Seed returns the value of the environment variable env when it is set
// (decimal, or 0x hexadecimal) and a fresh random seed otherwise, and
// logs it with the line that replays it. A malformed value fails t.
func Seed(t T, env string) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv(env); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", env, s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: %s=%d)", seed, env, seed)
	return seed
}
