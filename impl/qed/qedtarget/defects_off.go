//go:build !qeddefects

package qedtarget

import "github.com/qedtorture/qedtorture/props/target"

// Defects returns nil: this build has no seeded defects (they need the
// qeddefects build tag; see qed.DefectsCompiled).
func Defects() []target.Target { return nil }
