//go:build qeddefects

package campaign

import (
	"context"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/stretchr/testify/require"
)

// TestSeededDefects runs a default campaign against each seeded defect of
// impl/qed and asserts it is found within 60 s, that the artifact replays,
// and that the minimized case passes on impl/qed without the defect
// (re-checking every crash state of the workload). It prints the table of
// docs/campaigns.md.
//
//	go test -tags qeddefects -run TestSeededDefects -v ./internal/campaign
//
// CAMPAIGN_DEFECT=name runs one defect, CAMPAIGN_DEFECT=a,b,c those
// (scripts/mutation's bounded runs). The image commands' defects are
// found with the default weights (the image commands are drawn for every
// target that runs them).
func TestSeededDefects(t *testing.T) {
	seed := uint64(1)
	t.Logf("seed %d", seed)
	only := defectSelection(t, "CAMPAIGN_DEFECT")
	defer qed.SetDefect(qed.DefectNone)
	for _, info := range qed.DefectCatalogue {
		if only != nil && !only[info.Name] {
			continue
		}
		t.Run(info.Name, func(t *testing.T) {
			name := "defect:" + info.Name
			target, err := targetByName(name)
			require.NoError(t, err)
			cfg := Config{Seed: seed, Duration: 60 * time.Second, Workers: 2, Target: target, TargetName: name, Out: t.TempDir()}
			if qed.DefectNested(info.Defect) {
				// Crashes during recovery, as the command line's default.
				cfg.NestedDepth = DefaultNestedDepth
			}
			rep, err := Run(context.Background(), cfg)
			require.NoError(t, err)
			require.Len(t, rep.Failures, 1, "%s not found in 60 s", info.Name)
			fr := rep.Failures[0]
			t.Logf("| %s | %s | %s | %.1f | %d (from %d) |", info.Name, fr.Stage, fr.Model, fr.FoundSeconds, fr.Ops, fr.OriginalOps)
			res, err := Replay(fr.Artifact, ReplayOptions{Resolve: InProcessResolver(targetByName)})
			require.NoError(t, err)
			require.True(t, res.Fails(), "the artifact must replay")
			if qed.DefectNested(info.Defect) {
				// A single crash cannot show it: every crash state of the
				// minimized workload passes the oracle judge alone.
				rec, err := Record(target, res.Failure.W, fr.WorkloadSeed, "")
				require.NoError(t, err)
				ck := inProcessChecker(target, oracle.Options{}, oracle.DefaultModels())
				ck.allPoints = true
				f, err := ck.judge(rec, "")
				require.NoError(t, err)
				require.Nil(t, f, "a single crash shows %s", info.Name)
			}
			qed.SetDefect(qed.DefectNone)
			rec, err := Record(TargetOrDie(t, "impl/qed"), res.Failure.W, fr.WorkloadSeed, "")
			require.NoError(t, err)
			require.Nil(t, rec.OpErr, "the minimized workload fails without the defect")
			ck := inProcessChecker(TargetOrDie(t, "impl/qed"), oracle.Options{}, oracle.DefaultModels())
			ck.allPoints = true
			if qed.DefectNested(info.Defect) {
				ck.judges = append(ck.judges, &nestedJudge{t: TargetOrDie(t, "impl/qed"), models: oracle.DefaultModels(),
					enum: crashsim.EnumOptions{Bound: DefaultBound, Samples: DefaultSamples}, depth: 2, budget: -1})
			}
			f, err := ck.judge(rec, "")
			require.NoError(t, err)
			require.Nil(t, f, "the minimized case also fails without the defect")
		})
	}
}

// defectSelection reads a comma-separated list of seeded-defect names from
// the environment variable env: nil (every defect) when it is unset or
// empty; an unknown name fails the test, naming it (a misspelt selection
// would otherwise run nothing and pass).
func defectSelection(t *testing.T, env string) map[string]bool {
	t.Helper()
	sel, err := qed.DefectSelectionEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	if sel != nil {
		t.Logf("%s: running %d of %d seeded defects", env, len(sel), len(qed.DefectCatalogue))
	}
	return sel
}
