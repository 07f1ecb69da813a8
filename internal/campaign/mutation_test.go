package campaign

import (
	"errors"
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Tests written for mutants that survived the bounded mutation run of
// docs/mutation.md.

// TestSignatureSides: a workload failure's signature says whether a read
// disagreed with the model; a crash state's names the judge that rejected
// it, or the target when no judge is named, or raw for the crashed image
// itself; a failure without a verdict has no kinds.
func TestSignatureSides(t *testing.T) {
	for _, c := range []struct {
		name string
		f    Failure
		want string
	}{
		{"an op error", Failure{Stage: StageWorkload, OpErr: &workload.OpError{Err: errors.New("eio")}}, "t/workload"},
		{"a read that disagreed", Failure{Stage: StageWorkload, OpErr: &workload.OpError{Err: workload.ErrDataMismatch, Mismatch: &model.Mismatch{}}}, "t/workload/data"},
		{"a state a judge rejected", Failure{Stage: oracle.StageData, Judge: "qemu"}, "qemu/data"},
		{"a state no judge is named for", Failure{Stage: oracle.StageData}, "t/data"},
		{"a raw image without a verdict", Failure{Stage: oracle.StageStructureBefore, Judge: "qemu"}, "raw/structure-before-recovery"},
		{"a recovered image without a verdict", Failure{Stage: oracle.StageStructureAfter, Judge: "qemu"}, "qemu/structure-after-recovery"},
	} {
		if got := c.f.Signature("t"); got != c.want {
			t.Errorf("%s: signature %q, want %q", c.name, got, c.want)
		}
	}
}
