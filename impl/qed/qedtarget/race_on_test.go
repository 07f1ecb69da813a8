//go:build race

package qedtarget_test

// raceEnabled: the race detector slows the state machine ~15x; the
// conformance tests scale their work down under it.
const raceEnabled = true
