package props

import "github.com/qedtorture/qedtorture/props/target"

// The door's interface under props' names: aliases of package
// props/target's (where it moved in migration step 3 of
// docs/architecture.md), kept for good: props.Target is what TestTarget
// and Replay take, and what an implementation's adapter implements.
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
