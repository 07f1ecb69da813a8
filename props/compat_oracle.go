package props

import (
	"github.com/qedtorture/qedtorture/props/oracle"
)

// Step 4 of the engine migration (docs/architecture.md) moved the crash
// oracle to props/oracle. These aliases and forwarders keep props' names
// working for existing callers and other modules; step 12 removes all but
// the door's public ones. New code uses props/oracle directly.

// The oracle's types, under their props names.
type (
	Stage         = oracle.Stage
	Verdict       = oracle.Verdict
	OracleOptions = oracle.Options
	Durable       = oracle.Durable
)

// The oracle's stages.
const (
	StageStructureBefore = oracle.StageStructureBefore
	StageRecovery        = oracle.StageRecovery
	StageSize            = oracle.StageSize
	StageData            = oracle.StageData
	StageStructureAfter  = oracle.StageStructureAfter
	StageLiveness        = oracle.StageLiveness
	StageDataAfterReopen = oracle.StageDataAfterReopen
)

// LivenessPatternID is oracle.LivenessPatternID.
const LivenessPatternID = oracle.LivenessPatternID

// Forwarders whose signatures name model or crashsim types are variables
// holding the function, so that props imports only props/... packages
// (internal/archtest, step 6).
var (
	// CheckCrashState is oracle.Judge.
	CheckCrashState = oracle.Judge
	// NewDurable is oracle.NewDurable.
	NewDurable = oracle.NewDurable
	// DurableCost is oracle.DurableCost.
	DurableCost = oracle.DurableCost
	// DefaultModels is oracle.DefaultModels.
	DefaultModels = oracle.DefaultModels
)
