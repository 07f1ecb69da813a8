package main

import (
	"fmt"
	"io"
)

// progress prints a long operation's progress with -p exactly as qemu-img
// does (util/qemu-progress.c): "    (NN.NN/100%)\r" on stdout at the start,
// whenever the percentage moved more than minSkip points since the last
// print, and at 100 %; end prints the newline. A disabled progress prints
// nothing. It is not safe for concurrent use.
type progress struct {
	w             io.Writer
	on            bool
	minSkip       float64
	current, last float64
}

// newProgress starts a progress on w (enabled by -p) and prints 0 %.
// qemu-img uses a minimum step of 1 point (convert, rebase, commit) or 2
// (compare).
func newProgress(w io.Writer, on bool, minSkip float64) *progress {
	p := &progress{w: w, on: on, minSkip: minSkip}
	p.set(0)
	return p
}

// set reports pct percent done (clamped to 100).
func (p *progress) set(pct float64) {
	if p == nil || !p.on {
		return
	}
	p.current = min(pct, 100)
	if p.current > p.last+p.minSkip || p.current == 100 || p.current == 0 {
		p.last = p.current
		fmt.Fprintf(p.w, "    (%3.2f/100%%)\r", p.current)
	}
}

// bytes reports done of total bytes (total 0 counts as done).
func (p *progress) bytes(done, total int64) {
	if total <= 0 {
		p.set(100)
		return
	}
	p.set(100 * float64(done) / float64(total))
}

// end prints the newline that ends the progress line.
func (p *progress) end() {
	if p != nil && p.on {
		fmt.Fprint(p.w, "\n")
	}
}
