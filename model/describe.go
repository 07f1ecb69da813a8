package model

import (
	"fmt"
	"strings"
)

// String returns a one-line summary of the disk for failure reports.
func (d *Disk) String() string {
	return fmt.Sprintf("model.Disk{size %#x, durable size %#x, layers %d, ops %d, last flush op %d, %d current extents, %d durable extents, %d pending ops}",
		d.size, d.durableSize, d.layers, d.ops, d.flushOp, len(d.current), len(d.durable), len(d.pending))
}

// Describe returns a multi-line description: the summary, the current
// extents, and the pending operations, each list cut at limit lines (limit <= 0
// means no limit).
func (d *Disk) Describe(limit int) string {
	var b strings.Builder
	b.WriteString(d.String())
	b.WriteString("\ncurrent contents (gaps read zeros):")
	list := func(n int, line func(i int) string) {
		for i := 0; i < n; i++ {
			if limit > 0 && i == limit {
				fmt.Fprintf(&b, "\n  ... %d more", n-i)
				return
			}
			b.WriteString("\n  ")
			b.WriteString(line(i))
		}
		if n == 0 {
			b.WriteString("\n  (none)")
		}
	}
	list(len(d.current), func(i int) string {
		e := d.current[i]
		return fmt.Sprintf("[%#x,%#x) %s", e.off, e.end, e.rec.Source)
	})
	fmt.Fprintf(&b, "\npending since the last flush (op %d):", d.flushOp)
	list(len(d.pending), func(i int) string { return d.pending[i].Source.String() })
	return b.String()
}
