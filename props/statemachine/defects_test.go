//go:build qeddefects

package statemachine

import (
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/oracle"
)

// Detection budget per seeded defect: the state machine must find it
// within this many sequences (shrinking excluded). The seed is fixed, so
// the sequence at which a defect is found is the same on every machine;
// the time is only a cap against a hang, generous because a loaded 2-core
// machine runs the sequences several times slower (at load 28 one defect
// needing 37 sequences did not fit in 40 s).
const (
	defectBudgetSequences = 1500
	defectBudgetTime      = 3 * time.Minute
)

// TestDefects runs the state machine against impl/qed with each seeded
// defect switched on and asserts that every one is detected within the
// budget. It prints, per defect, the time to detect, the sequences run,
// the shrunk counterexample's length and the crash models that catch it.
//
//	go test -tags qeddefects -run TestDefects -v ./props
//
// PROPS_SEED fixes the seed (default: a constant, so the table is
// reproducible); PROPS_DEFECT=name runs one defect, PROPS_DEFECT=a,b,c
// those (scripts/mutation's bounded runs: docs/mutation.md says which).
func TestDefects(t *testing.T) {
	if racetest.Enabled {
		t.Skip("the detection budget is calibrated for the plain build; run TestDefects without -race")
	}
	seed := int64(envSeed(t, 20261125))
	only := defectSelection(t, "PROPS_DEFECT")
	type row struct {
		info      qed.DefectInfo
		res       *Result
		models    []crashsim.Model
		noCrash   bool
		modelTime time.Duration
	}
	var rows []row
	defer qed.SetDefect(qed.DefectNone)
	for _, info := range qed.DefectCatalogue {
		if only != nil && !only[info.Name] {
			continue
		}
		if qed.DefectNested(info.Defect) {
			// Only a crash during recovery shows it: the campaign's
			// nested judge (internal/campaign TestSeededDefects).
			t.Logf("defect %s: skipped (needs a crash during recovery)", info.Name)
			continue
		}
		qed.SetDefect(info.Defect)
		// A one-table L2 cache, so that eviction happens at all in
		// the small images of the state machine.
		target := QEDTarget{Options: qed.OpenOptions{L2CacheTables: 1}}
		cfg := DefaultConfig()
		cfg.Seed = seed + int64(info.Defect)*1000
		cfg.Sequences = defectBudgetSequences
		cfg.Budget = defectBudgetTime
		cfg.Run.Explore = 16
		// A defect meant for images above the full-read limit is judged
		// with a small limit (qed.DefectReadLimit).
		cfg.Run.Oracle.FullReadLimit = qed.DefectReadLimit(info.Defect)
		// Count a failure only if the defect causes it: the same sequence
		// must pass with the defect switched off.
		cfg.Accept = func(f *Failure) bool {
			qed.SetDefect(qed.DefectNone)
			defer qed.SetDefect(info.Defect)
			_, g := RunSequence(target, f.Seq, RunOptions{})
			return g == nil
		}
		res := Check(target, cfg)
		r := row{info: info, res: res}
		if res.Passed() {
			t.Errorf("defect %s (%s) NOT detected: %s", info.Name, info.Class, res.Report())
		} else if res.First.Seq.W.Geometry.ClusterSize == 0 {
			// Check's failure for a gopter-level error (a panic in a
			// generator, in Accept): no sequence failed.
			t.Errorf("defect %s: not detected by a sequence: %s", info.Name, res.Report())
		} else {
			t.Logf("defect %s detected:\n%s", info.Name, res.Report())
			start := time.Now()
			seq := res.Shrunk
			if seq == nil {
				seq = res.First
			}
			if res.Rejected > 0 {
				t.Logf("defect %s: %d failures also happened without the defect (not counted)", info.Name, res.Rejected)
			}
			r.models, r.noCrash = CatchingModels(target, seq.Seq, oracle.DefaultModels(), 256)
			r.modelTime = time.Since(start)
		}
		rows = append(rows, r)
	}
	qed.SetDefect(qed.DefectNone)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "defect\tclass\tdetected\ttime\tsequences\tshrunk ops\tfailure\tmodels that catch it")
	for _, r := range rows {
		det, tm, seqs, ops, kind, models := "NO", "-", fmt.Sprint(r.res.Sequences), "-", "-", "-"
		if !r.res.Passed() {
			det = "yes"
			tm = (r.res.Duration - r.res.ShrinkTime).Round(time.Millisecond).String()
			f := r.res.Shrunk
			if f == nil {
				f = r.res.First
			}
			ops = fmt.Sprint(f.Seq.Len())
			kind = f.Kind
			if f.Stage != "" {
				kind += "/" + string(f.Stage)
			}
			switch {
			case r.noCrash:
				models = "any (no crash needed)"
			default:
				models = modelList(r.models)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.info.Name, r.info.Class, det, tm, seqs, ops, kind, models)
	}
	tw.Flush()
	t.Logf("seeded defects (seed %d, budget %d sequences / %v per defect):\n%s", seed, defectBudgetSequences, defectBudgetTime, b.String())
}

func modelList(ms []crashsim.Model) string {
	if len(ms) == 0 {
		return "none (only the sampled state found it)"
	}
	s := make([]string, len(ms))
	strong := true
	for i, m := range ms {
		s[i] = m.String()
		if m.Base == crashsim.Prefix || m.Base == crashsim.Drop {
			strong = false
		}
	}
	out := strings.Join(s, ",")
	if strong {
		out += " (subset/torn only)"
	}
	return out
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
