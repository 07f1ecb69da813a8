package campaign

import (
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// FuzzCrashStates is coverage-guided crash fuzzing: Go's fuzzer mutates
// bytes, workload.Decode turns them into a valid small workload, which is
// run on the target over crashsim and every crash state of it judged by
// the oracle: a state at every op index (not only at the syncs and a
// sample, as a campaign does; every state per point and model up to
// DefaultBound, else DefaultSamples seeded by the input's hash) under
// every default crash model. A failure prints the workload's script and
// the verdict.
//
// The seed corpus is the minimized workload of every seeded defect and
// the findings (testdata/fuzz/workloads/*.txt, encoded with
// workload.Encode). The target is impl/qed, or QEDTORTURE_FUZZ_TARGET
// (defect:NAME with -tags qeddefects); QEDTORTURE_FUZZ_SEEDS=none leaves
// the seed corpus out, to measure how long the fuzzer takes to find a
// seeded defect from nothing (docs/campaigns.md):
//
//	go test -run '^$' -fuzz FuzzCrashStates ./internal/campaign
//	QEDTORTURE_FUZZ_TARGET=defect:NAME QEDTORTURE_FUZZ_SEEDS=none \
//	    go test -tags qeddefects -run '^$' -fuzz FuzzCrashStates ./internal/campaign
func FuzzCrashStates(f *testing.F) {
	name := os.Getenv("QEDTORTURE_FUZZ_TARGET")
	if name == "" {
		name = "impl/qed"
	}
	tgt, err := targetByName(name)
	if err != nil {
		f.Fatalf("QEDTORTURE_FUZZ_TARGET: %v", err)
	}
	if os.Getenv("QEDTORTURE_FUZZ_SEEDS") != "none" {
		for _, data := range fuzzSeeds(f) {
			f.Add(data)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		w := workload.Decode(data)
		h := fnv.New64a()
		h.Write(data)
		seed := h.Sum64()
		ck := inProcessChecker(tgt, tuneOracle(tgt, oracle.Options{}), oracle.DefaultModels())
		ck.allPoints = true
		ck.enum = crashsim.EnumOptions{Bound: DefaultBound, Samples: DefaultSamples}
		fail, _, err := ck.runWorkload(w, seed, "")
		if err != nil {
			t.Fatalf("%s: setup of the workload failed: %v\n%s", name, err, w)
		}
		if fail != nil {
			t.Fatalf("%s: %s\nworkload seed %d:\n%s", name, fail.Message(), seed, w)
		}
	})
}

// fuzzSeeds returns the seed corpus: every workload script under
// testdata/fuzz/workloads, encoded.
func fuzzSeeds(tb testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "workloads", "*.txt"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no seed workloads under testdata/fuzz/workloads (%v)", err)
	}
	var out [][]byte
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		w, err := workload.Parse(strings.NewReader(string(src)))
		if err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		data, err := workload.Encode(w)
		if err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		out = append(out, data)
	}
	return out
}
