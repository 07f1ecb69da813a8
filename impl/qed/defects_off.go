//go:build !qeddefects

package qed

// defect reports whether seeded defect d is active: never, in the default
// build (the hooks compile away).
func defect(Defect) bool { return false }

// DefectsCompiled reports whether this build can switch defects on.
const DefectsCompiled = false
