//go:build !race

package statemachine

const raceEnabled = false
