package props

import (
	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/spf13/afero"
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

// CheckCrashState is oracle.Judge.
func CheckCrashState(t Target, fs afero.Fs, imagePath string, m *model.Disk, o OracleOptions) *Verdict {
	return oracle.Judge(t, fs, imagePath, m, o)
}

// NewDurable is oracle.NewDurable.
func NewDurable(m *model.Disk) (*Durable, error) { return oracle.NewDurable(m) }

// DurableCost is oracle.DurableCost.
func DurableCost(m *model.Disk) int64 { return oracle.DurableCost(m) }

// DefaultModels is oracle.DefaultModels.
func DefaultModels() []crashsim.Model { return oracle.DefaultModels() }
