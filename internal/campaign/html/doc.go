// Package html renders a campaign report and its failure artifacts as one
// self-contained HTML page, for a person to look at what failed: the run's
// summary, the crash states per model, the states per second over time,
// and per failure its minimized workload, the timeline of the writes
// between sync barriers with what the crash kept, lost or tore, a map of
// the crashed image's clusters (header, L1, L2 tables, data, unreferenced)
// with the damaged table entry and the cluster it points at highlighted,
// and a hexdump diff (expected vs read for a data failure; the crashed
// bytes against the image at the end of the crash-free run around the
// first damaged table entry for a structural one).
//
// Guarantees:
//
//   - Self-contained: the page loads nothing (no network, no external
//     scripts, style sheets, fonts or images); its CSS, SVG and script are
//     inline. Everything shown is in the HTML as rendered: the script only
//     adds summaries and filters, so the page reads without it.
//   - Escaped: every text from a report or an artifact (messages, paths,
//     workload lines) goes through html/template's contextual escaping.
//   - Atomic: WriteFile writes through internal/atomicfile (a temporary
//     in the destination directory, synced, renamed, the directory
//     synced): a reader sees the previous page or the new one, never a
//     cut one. It reads artifacts and never writes into them.
//   - Honest about gaps: a failure whose artifact is missing or cannot be
//     read says so on the page (with the error) instead of failing the
//     page; a report without rate samples (a merge, an older report) says
//     it has none.
//
// Sizes are bounded: at most MaxTimelineOps operations of a timeline and
// MaxClusters cells of a cluster map are drawn (the page says how many
// were left out), so a long trace does not make a page a browser chokes
// on.
package html
