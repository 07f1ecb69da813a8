// Package oracle judges crash states of a QED image: whether what a crash
// left on disk, recovered by the implementation under test, is a state the
// format and the reference model allow (docs/format.md, "The crash
// oracle").
//
// It holds what every campaign, every executor and the state machine share
// about judging: the crash models a QED oracle can judge fairly
// (DefaultModels, defined here once), and, as the migration of
// docs/architecture.md proceeds, the stages, the verdict, the options and
// the durable contents of the oracle itself (props.CheckCrashState today,
// oracle.Judge after step 4).
//
// Guarantees: the package imports only crashsim, model, props/check and
// props/target of this module (internal/archtest states it), so the oracle
// never depends on the implementation it judges.
package oracle
