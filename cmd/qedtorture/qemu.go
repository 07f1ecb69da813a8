package main

import (
	"time"

	"github.com/qedtorture/qedtorture/impl/qemu"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/spf13/cobra"
)

// qemuDefaults are qemu's values of the shared campaign flags: one worker
// (each runs a qemu-io process), a larger exhaustive bound (a QEMU run
// costs far more than judging a state). The generator is run's, so that
// the same seed draws the same workloads as `run` (qemu.Adapt then
// changes what QEMU 7.2 cannot run, counted in the report).
func qemuDefaults() campaignDefaults {
	return campaignDefaults{
		workers: 1, gen: campaign.DefaultGenConfig(), maxClusters: 1 << 16, maxOps: 1000,
		out: "qedtorture-qemu-failures", outHelp: "directory for failure artifacts ('' for none)",
		bound: 256, samples: 32, sampledPoints: 8,
		pointsHelp: "non-flush crash points (log entries) sampled per workload", weightsExample: "concurrent=0,zero=0",
		minimizeTime: time.Minute,
	}
}

// newQEMUCommand is `qedtorture qemu`, an alias of `run --target qemu`
// with QEMU's defaults: one worker, differential runs against impl/qed,
// eight sampled crash points per workload, 60 minimization candidates,
// up to 20 distinct failure signatures, artifacts under
// qedtorture-qemu-failures. --replay DIR is `qedtorture replay DIR`.
// Every other run flag that applies to QEMU (registerEngine) is there
// with run's meaning and default; only --target, --fault and
// --exec-states are run's alone.
func newQEMUCommand(e *env) *cobra.Command {
	f := &runFlags{target: "qemu"}
	var (
		diff   bool
		replay string
	)
	cmd := &cobra.Command{
		Use:   "qemu",
		Short: "Run a crash-torture and differential campaign against QEMU's QED driver (run --target qemu)",
		Long: `qemu is 'qedtorture run --target qemu' with QEMU's defaults. It generates workloads
from a seed (the same workloads as run draws from the same seed and generator flags)
and runs each through one qemu-io process on a QED image layered over QEMU's
blklogwrites driver, so that every write and flush QEMU issues is logged. The log is
replayed with crashsim over a snapshot taken before the run; the crash states at every
flush and at sampled log entries, under each crash model, are judged by the oracle
recovering with impl/qed (the structural checker on the raw bytes first), and a
budgeted sample (--qemu-states) is recovered and read back by QEMU itself (a writable
open in qemu-io, qemu-img convert, then a write, a clean close and a read-back in a
fresh qemu-io). With --diff (the default) each workload also runs through QEMU and
impl/qed without crashes first and the results are compared.

Runs end with a clean close, qemu-io 'abort' or SIGKILL (--ends), chosen per workload
by its seed. The first failure of each signature is minimized and written under --out
in the one artifact layout (replay it with 'qedtorture replay DIR' or --replay DIR);
recordings whose blklogwrites log does not replay to QEMU's file are counted as
skipped. SIGINT or SIGTERM kills the QEMU processes in flight, writes the artifacts of
the failures found so far and the report marked interrupted, and removes the scratch
directories; a second signal exits at once.

Exit status: 0 no failure; 1 a failure was found, or the campaign could not run,
completed no workload, or could not write its report or an artifact; 2 usage
error; 130 interrupted by SIGINT, 143 by SIGTERM. With --replay: 1 if the case
still fails, 0 if it now passes.`,
		Example: `  qedtorture qemu --iterations 20
  qedtorture qemu --duration 5m --crash-model subset,torn --qemu-states 64 --report q.json
  qedtorture qemu --iterations 50 --ends kill --diff=false
  qedtorture qemu --workload ARTIFACT/workload.txt --ends close --crash-model subset
  qedtorture qemu --replay ARTIFACT`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if replay != "" {
				return replayArtifact(cmd, e, replay, "")
			}
			if diff {
				f.diff = referenceTarget().Name()
			}
			return runCampaign(cmd, e, f)
		},
	}
	f.register(cmd, qemuDefaults())
	fl := cmd.Flags()
	fl.IntVar(&f.qemuStates, "qemu-states", qemu.DefaultQEMUStates, "distinct crash states per workload recovered and read back by QEMU (-1 = all, 0 = none)")
	fl.StringVar(&f.ends, "ends", "close,abort,kill", "how runs end (close, abort, kill), chosen per workload by its seed")
	fl.BoolVar(&diff, "diff", true, "also run every workload through QEMU and impl/qed without crashes and compare them (--diff=false to skip)")
	fl.IntVar(&f.minimizeCandidates, "minimize", 60, "workloads tried when minimizing a failure (-1 = no minimization)")
	fl.IntVar(&f.maxFailures, "max-failures", 20, "stop after failures of this many distinct signatures (the first of each is minimized, the others counted)")
	fl.StringVar(&f.known, "known", "", "file of known failure signatures (testdata/known/qemu-7.2.txt): counted in the report, not minimized, do not fail the run")
	fl.StringVar(&replay, "replay", "", "replay the artifact in this directory (as 'qedtorture replay DIR') and exit")
	// Every other flag of run that applies to QEMU, with run's defaults
	// (TestQEMUAliasCarriesRunFlags): crashes during recovery are
	// recorded through blklogwrites (impl/qemu/nested.go).
	f.registerEngine(cmd)
	return cmd
}
