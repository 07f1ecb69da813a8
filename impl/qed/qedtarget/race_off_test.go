//go:build !race

package qedtarget_test

const raceEnabled = false
