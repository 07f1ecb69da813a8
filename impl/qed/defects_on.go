//go:build qeddefects

package qed

import "sync/atomic"

// DefectsCompiled reports whether this build can switch defects on.
const DefectsCompiled = true

var activeDefect atomic.Int64

// SetDefect switches seeded defect d on for every image of the process
// (DefectNone switches defects off) and returns the previous one. Only in
// builds with the qeddefects tag.
func SetDefect(d Defect) Defect { return Defect(activeDefect.Swap(int64(d))) }

// ActiveDefect returns the defect switched on.
func ActiveDefect() Defect { return Defect(activeDefect.Load()) }

func defect(d Defect) bool { return activeDefect.Load() == int64(d) }
