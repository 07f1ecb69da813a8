package main

import (
	"fmt"
	"os"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/spf13/cobra"
)

func newReportCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Work with campaign JSON reports",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef(cmd, "missing command: want merge")
		},
	}
	var out string
	merge := &cobra.Command{
		Use:   "merge REPORT.json...",
		Short: "Combine the JSON reports of the shards of one campaign",
		Long: `merge adds up the reports of shards of one campaign (same seed, shard count,
target, models, faults and iterations; each shard at most once): workloads, crash
points and states (per model too), failures; seconds is the longest shard and the
digest XORs, so shards 0..N-1 merged equal one unsharded run of the same seeds.`,
		Args: argsBetween(1, 1<<20, "REPORT.json..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			var reps []*campaign.Report
			for _, name := range args {
				fh, err := os.Open(name)
				if err != nil {
					return fail(err)
				}
				r, err := campaign.ReadReport(fh)
				fh.Close()
				if err != nil {
					return failf("%s: %v", name, err)
				}
				reps = append(reps, r)
			}
			m, err := campaign.Merge(reps...)
			if err != nil {
				return fail(err)
			}
			if out == "" || out == "-" {
				return fail(m.WriteJSON(e.stdout))
			}
			if err := writeReport(e, out, m); err != nil {
				return fail(err)
			}
			fmt.Fprintf(e.stdout, "merged %d report(s): shard %s, %d workloads, %d crash states, %d failure(s) -> %s\n",
				len(reps), m.Shard, m.Workloads, m.CrashStates, len(m.Failures), out)
			return nil
		},
	}
	merge.Flags().StringVarP(&out, "output", "o", "", "write the merged report here (default stdout)")
	cmd.AddCommand(merge)
	return cmd
}
