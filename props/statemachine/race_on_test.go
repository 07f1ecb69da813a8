//go:build race

package statemachine

// raceEnabled: the race detector slows the state machine ~15x; the default
// tests scale their work down under it.
const raceEnabled = true
