package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/campaign/html"
	"github.com/spf13/cobra"
)

func newReportCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Work with campaign JSON reports",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef(cmd, "missing command: want merge or html")
		},
	}
	var (
		out          string
		allowPartial bool
	)
	merge := &cobra.Command{
		Use:   "merge REPORT.json...",
		Short: "Combine the JSON reports of the shards of one campaign",
		Long: `merge adds up the reports of shards of one campaign (same seed, shard count,
target, models, faults and iterations; each shard at most once): workloads, crash
points and states (per model too), failures; seconds is the longest shard and the
digest XORs, so shards 0..N-1 merged equal one unsharded run of the same seeds.

Every shard 0..N-1 must be given unless --allow-partial is set; the merged report
then lists the missing ones ("missing_shards"). Checkpointed reports (written
during a run) and interrupted ones merge like final ones, covering what their
shard completed; the merge says so and marks the merged report ("checkpoint",
"interrupted", "partial_shards").`,
		Args: argsBetween(1, 1<<20, "REPORT.json..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("output") {
				fmt.Fprintln(e.stderr, "qedtorture: warning: --output FILE is deprecated, use -o/--output-file (--output names a format in the other commands)")
			}
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
			if !m.Complete() && !allowPartial {
				return failf("incomplete set of shards: %s missing (of %d); give every shard's report, or --allow-partial to merge what is there",
					shardList(m.MissingShards), m.ShardCount)
			}
			// The JSON goes to stdout or to the file; the human lines to
			// the other stream.
			hum := e.stdout
			if out == "" || out == "-" {
				hum = e.stderr
				if err := m.WriteJSON(e.stdout); err != nil {
					return fail(err)
				}
			} else {
				if err := checkOutputFile("-o", out); err != nil {
					return fail(err)
				}
				if err := writeReport(e, out, m); err != nil {
					return failf("writing the merged report: %v", err)
				}
				fmt.Fprintf(hum, "merged %d report(s): shard %s, %d workloads, %d crash states, %d failure(s) -> %s\n",
					len(reps), m.Shard, m.Workloads, m.CrashStates, len(m.Failures), out)
			}
			if len(m.MissingShards) > 0 {
				fmt.Fprintf(hum, "note: partial merge: %s missing (of %d), listed in the report's missing_shards\n", shardList(m.MissingShards), m.ShardCount)
			}
			for _, r := range reps {
				switch {
				case r.Interrupted:
					fmt.Fprintf(hum, "note: shard %s was interrupted: it covers the workloads it completed\n", r.Shard)
				case r.Checkpoint:
					fmt.Fprintf(hum, "note: shard %s is a checkpoint written during its run (the run may have been killed): it covers the workloads completed by then\n", r.Shard)
				}
			}
			return nil
		},
	}
	fl := merge.Flags()
	fl.StringVarP(&out, "output-file", "o", "", "write the merged report to this file (default stdout)")
	// --output was the file before -o/--output-file; elsewhere --output
	// names a format (human|json), as in qemu-img.
	fl.StringVar(&out, "output", "", "deprecated alias of --output-file")
	_ = fl.MarkHidden("output")
	fl.BoolVar(&allowPartial, "allow-partial", false, "merge even when some shards' reports are missing (the merged report lists them)")
	cmd.AddCommand(merge)
	cmd.AddCommand(&cobra.Command{
		Use:   "html REPORT.json OUT.html",
		Short: "Render a campaign report and its failure artifacts as a self-contained HTML page",
		Long: `html writes REPORT.json as one self-contained HTML page (inline CSS, SVG and
script; it loads nothing): the summary, crash states per model, states per
second over time, and per failure its minimized workload, the timeline of its
writes between barriers with what the crash kept, lost or tore, a map of the
crashed image's clusters with the damaged entry highlighted, and a hexdump
diff. Each failure's artifact is read from its path in the report, or from the
same path under the report's directory. OUT.html is written atomically; the
report and the artifacts are only read.`,
		Example: `  qedtorture run --iterations 100 --report r.json; qedtorture report html r.json r.html`,
		Args:    argsBetween(2, 2, "REPORT.json OUT.html"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fh, err := os.Open(args[0])
			if err != nil {
				return fail(err)
			}
			r, err := campaign.ReadReport(fh)
			fh.Close()
			if err != nil {
				return failf("%s: %v", args[0], err)
			}
			if err := checkOutputFile("OUT.html", args[1]); err != nil {
				return fail(err)
			}
			p := html.ForReport(r, filepath.Dir(args[0]), "qedtorture report: "+filepath.Base(args[0]))
			if err := p.WriteFile(args[1]); err != nil {
				return fail(err)
			}
			fmt.Fprintf(e.stdout, "wrote %s: %d failure(s)\n", args[1], len(p.Failures))
			return nil
		},
	})
	return cmd
}

// shardList is "shard 1" or "shards 1, 3".
func shardList(s []int) string {
	if len(s) == 1 {
		return fmt.Sprintf("shard %d", s[0])
	}
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = strconv.Itoa(x)
	}
	return "shards " + strings.Join(parts, ", ")
}
