package main

import (
	"fmt"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/spf13/cobra"
)

func newReplayCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "replay ARTIFACT_DIR",
		Short: "Rebuild a failure artifact's crash state and check it again",
		Long: `replay reads an artifact directory written by 'qedtorture run', re-runs its
(minimized) workload on the same target with the same seed and faults, rebuilds the
exact crash state from its state id (from the recorded trace if the re-run's trace
differs), runs the oracle again and prints the verdict and its explanation.

Exit status: 1 if the case still fails, 0 if it now passes, 2 usage error.`,
		Args: argsBetween(1, 1, "ARTIFACT_DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := campaign.Replay(args[0], resolveTarget)
			if err != nil {
				return fail(err)
			}
			m := res.Meta
			fmt.Fprintf(e.stdout, "artifact: %s\n", args[0])
			fmt.Fprintf(e.stdout, "target %s, campaign seed %d, workload %d (seed %d)", m.Target, m.CampaignSeed, m.Workload, m.WorkloadSeed)
			if m.State != "" {
				fmt.Fprintf(e.stdout, ", state %s, guest op %d", m.State, m.GuestOp)
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
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "no crash"
	}
	return s
}
