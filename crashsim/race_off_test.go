//go:build !race

package crashsim

const raceEnabled = false
