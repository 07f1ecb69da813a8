//go:build !unix

package campaign

// childMaxRSS is unknown here: out-of-process repairs are bounded by their
// timeout only.
func childMaxRSS() int64 { return 0 }
