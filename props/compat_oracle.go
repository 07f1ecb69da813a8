package props

import (
	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/oracle"
)

// Forwarders to props/oracle (migration step 4 of docs/architecture.md),
// kept so that callers, other modules included, keep compiling.

// DefaultModels is oracle.DefaultModels.
func DefaultModels() []crashsim.Model { return oracle.DefaultModels() }
