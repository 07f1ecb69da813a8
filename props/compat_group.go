package props

import "github.com/qedtorture/qedtorture/props/target"

// Aliases of the concurrent-group capability, which lives in props/target
// (migration step 8 of docs/architecture.md); step 12 removes them.
type (
	GroupWrite  = target.GroupWrite
	GroupWriter = target.GroupWriter
)

// GroupPattern is target.GroupPattern.
func GroupPattern(id uint32) byte { return target.GroupPattern(id) }
