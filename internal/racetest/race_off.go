//go:build !race

package racetest

// Enabled: the binary was built with -race.
const Enabled = false
