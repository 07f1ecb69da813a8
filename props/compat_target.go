package props

import "github.com/qedtorture/qedtorture/props/target"

// Aliases of the door's names, which moved to props/target (migration step
// 3 of docs/architecture.md), so that callers and other modules keep
// compiling. The public ones stay after the migration (props.Target is
// what TestTarget takes).
//
// props.QEDTarget, impl/qed's adapter, is not kept: aliasing it here would
// make props import the implementation it judges, the very edge step 3
// removes. It is qedtarget.Target now (package
// github.com/qedtorture/qedtorture/impl/qed/qedtarget), with the same
// Options field and behaviour; a caller changes `props.QEDTarget{...}` to
// `qedtarget.Target{...}`.
type (
	Target        = target.Target
	Disk          = target.Disk
	CreateOptions = target.CreateOptions
	OpenOptions   = target.OpenOptions
	CheckResult   = target.CheckResult
)
