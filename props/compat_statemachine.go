package props

import (
	"github.com/qedtorture/qedtorture/props/statemachine"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Step 6 of the engine migration (docs/architecture.md) moved the state
// machine, the crash sweep and the fault sweep to props/statemachine;
// props keeps the conformance door (TestTarget, ConformanceOptions,
// Replay, Scale). These aliases and forwarders keep props' names working
// for existing callers and other modules; step 12 removes all but the
// door's public ones. New code uses props/statemachine directly.
//
// A forwarder whose signature names a crashsim, model or faultfs type is a
// variable holding the function, so that props imports only props/...
// packages (internal/archtest).

// The state machine's types, under their props names.
type (
	Sequence           = statemachine.Sequence
	Step               = statemachine.Step
	CrashSpec          = statemachine.CrashSpec
	FaultSpec          = statemachine.FaultSpec
	SequenceParseError = statemachine.SequenceParseError
	RunOptions         = statemachine.RunOptions
	Failure            = statemachine.Failure
	Runner             = statemachine.Runner
	StateMachineConfig = statemachine.Config
	StateMachineResult = statemachine.Result
	Exploration        = statemachine.Exploration
	CrashSweepFailure  = statemachine.CrashSweepFailure
	FaultSweepResult   = statemachine.FaultSweepResult
)

// ErrSequence is statemachine.ErrSequence.
var ErrSequence = statemachine.ErrSequence

// FaultRules are the faults the state machine injects
// (statemachine.FaultRules, the same slice).
var FaultRules = statemachine.FaultRules

// ParseSequence is statemachine.ParseSequence.
func ParseSequence(text string) (*Sequence, error) { return statemachine.ParseSequence(text) }

// NewRunner is statemachine.NewRunner.
func NewRunner(t Target, g workload.Geometry, o RunOptions) (*Runner, error) {
	return statemachine.NewRunner(t, g, o)
}

// RunSequence is statemachine.RunSequence.
func RunSequence(t Target, s *Sequence, o RunOptions) (*Runner, *Failure) {
	return statemachine.RunSequence(t, s, o)
}

// DefaultStateMachineConfig is statemachine.DefaultConfig.
func DefaultStateMachineConfig() StateMachineConfig { return statemachine.DefaultConfig() }

// CheckStateMachine is statemachine.Check.
func CheckStateMachine(t Target, cfg StateMachineConfig) *StateMachineResult {
	return statemachine.Check(t, cfg)
}

// Simplify is statemachine.Simplify.
func Simplify(t Target, f *Failure, o RunOptions, accept func(*Failure) bool) *Failure {
	return statemachine.Simplify(t, f, o, accept)
}

// SizeClass is statemachine.SizeClass.
func SizeClass(g workload.Geometry) string { return statemachine.SizeClass(g) }

// BackingLayout is statemachine.BackingLayout.
func BackingLayout(chain []workload.Backing) string { return statemachine.BackingLayout(chain) }

// CheckFaultSweep is statemachine.CheckFaultSweep.
func CheckFaultSweep(t Target, w *workload.Workload, rule string, maxRuns int, o OracleOptions) []FaultSweepResult {
	return statemachine.CheckFaultSweep(t, w, rule, maxRuns, o)
}

// FaultSweepWorkloads is statemachine.FaultSweepWorkloads.
func FaultSweepWorkloads() map[string]*workload.Workload { return statemachine.FaultSweepWorkloads() }

// Forwarders whose signatures name crashsim types.
var (
	// CheckCrashSweep is statemachine.CheckCrashSweep.
	CheckCrashSweep = statemachine.CheckCrashSweep
	// CatchingModels is statemachine.CatchingModels.
	CatchingModels = statemachine.CatchingModels
)
