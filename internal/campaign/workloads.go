package campaign

import (
	"fmt"
	"hash/fnv"

	"github.com/qedtorture/qedtorture/props/workload"
)

// GenerateWorkload returns workload w of a campaign seed and its
// workload seed: WorkloadSeed(seed, w), drawn with gen. Every target draws
// its workloads with it, so that the same seed and generator flags give
// the same workloads whatever the target (a target's driver adapts them
// after generation; reports count those changes per kind).
func GenerateWorkload(seed uint64, w int, gen workload.GenConfig) (*workload.Workload, uint64) {
	ws := WorkloadSeed(seed, w)
	return generate(ws, gen), ws
}

// ScriptDigest is workload index w's share of a report's WorkloadDigest:
// a hash of the index and of the workload's script text as generated
// (before any adaptation). Reports XOR the shares of the workloads they
// ran, so the digest does not depend on the order workers finished them.
func ScriptDigest(w int, wl *workload.Workload) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\n%s", w, wl)
	return h.Sum64()
}

// FormatDigest is how reports write a digest: 16 hex digits.
func FormatDigest(d uint64) string { return formatDigest(d) }
