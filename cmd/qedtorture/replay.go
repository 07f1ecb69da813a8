package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/spf13/cobra"
)

func newReplayCommand(e *env) *cobra.Command {
	var on string
	cmd := &cobra.Command{
		Use:   "replay ARTIFACT_DIR",
		Short: "Rebuild a failure artifact's crash state and check it again",
		Long: `replay reads an artifact directory written by 'qedtorture run', re-runs its
(minimized) workload on the same target with the same seed and faults, rebuilds the
exact crash state from its state id (from the recorded trace if the re-run's trace
differs, or when the target runs out of process), judges it again with the
artifact's judge and prints the verdict and its explanation. With --target NAME
the recorded crash state is judged by the oracle recovering with NAME instead (an
in-process target: impl/qed re-judges a defect's or QEMU's artifact), and a
crash-free failure's workload re-runs on NAME.

Exit status: 1 if the case still fails, 0 if it now passes, 2 usage error.`,
		Args: argsBetween(1, 1, "ARTIFACT_DIR"),
		RunE: func(cmd *cobra.Command, args []string) error { return replayArtifact(cmd, e, args[0], on) },
	}
	cmd.Flags().StringVar(&on, "target", "", "re-judge the recorded crash state on this in-process target instead of the artifact's judge")
	return cmd
}

// replayArtifact replays the artifact in dir (replay, and qemu --replay),
// on the in-process target named on when it is not "".
func replayArtifact(cmd *cobra.Command, e *env, dir, on string) error {
	o := campaign.ReplayOptions{Resolve: resolveReplay, Reference: referenceTarget()}
	if on != "" {
		t, err := resolveTarget(on)
		if err != nil {
			return usagef(cmd, "invalid --target: %v", err)
		}
		o.On = t
	}
	if kind := oldArtifactKind(dir); kind != "" {
		return failf("%s", kind)
	}
	res, err := campaign.Replay(dir, o)
	if err != nil {
		return fail(err)
	}
	m := res.Meta
	fmt.Fprintf(e.stdout, "artifact: %s\n", dir)
	fmt.Fprintf(e.stdout, "target %s, campaign seed %d, workload %d (seed %d)", m.Target, m.CampaignSeed, m.Workload, m.WorkloadSeed)
	if m.State != "" {
		fmt.Fprintf(e.stdout, ", state %s, guest op %d", m.State, m.GuestOp)
	}
	if m.Diff != "" {
		fmt.Fprintf(e.stdout, ", differential run against %s", m.Diff)
	}
	if res.Judge != "" {
		fmt.Fprintf(e.stdout, ", judged by %s", res.Judge)
	}
	fmt.Fprintln(e.stdout)
	for _, n := range res.Notes {
		fmt.Fprintf(e.stdout, "note: %s\n", n)
	}
	if !res.Fails() {
		fmt.Fprintf(e.stdout, "PASS: the case no longer fails (recorded: %s at %s)\n", m.Stage, orNone(m.State))
		if res.Verdict != nil {
			fmt.Fprintln(e.stdout, res.Verdict)
		}
		return nil
	}
	campaign.WriteText(e.stdout, res.Failure, m.Target)
	if string(res.Failure.Stage) != m.Stage {
		fmt.Fprintf(e.stdout, "note: the recorded stage was %s, now %s\n", m.Stage, res.Failure.Stage)
	}
	return failf("the case still fails (%s)", res.Failure.Stage)
}

func orNone(s string) string {
	if s == "" {
		return "no crash"
	}
	return s
}

// resolveReplay is replay's resolver: the driver of an artifact's target
// name (or of a differential artifact's other side).
func resolveReplay(name string) (campaign.Driver, error) { return resolveAny(name) }

// oldArtifactKind recognises an artifact directory replay cannot read and
// says what reads it ("" when it has a meta.json, or is no artifact).
func oldArtifactKind(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); err == nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "explanation.txt")); err == nil {
		return fmt.Sprintf("%s is an artifact of the former 'qedtorture qemu' engine (explanation.txt, snapshot/, image.log), which no longer exists: run its workload again with 'qedtorture run --target qemu --workload %s' (QEMU installed), which writes an artifact replay reads", dir, filepath.Join(dir, "workload.txt"))
	}
	return ""
}
