// Package childrss measures the peak resident set of the child processes a
// piece of work started, each on its own.
//
// A Peak is carried by a context (Watch); code that starts a process under
// that context reports the process once it has been waited for (Record,
// with its os.ProcessState), and the Peak keeps the largest resident set
// any one of them reached. The measure is the child's own rusage (wait4's
// ru_maxrss), never getrusage(RUSAGE_CHILDREN): that one is the peak of
// every child the whole process ever waited for, so one piece of work
// would be judged by another's child.
//
// A child's ru_maxrss is its own only when it exceeds this process's own
// peak (see maxRSS: on Linux a child starts in this process's address
// space, whose high-water mark exec hands on to it); below that a child's
// peak is unknown, and known only to be under this process's own. So Max
// never reports another process's peak as a child's, and misses only a
// child that stayed under this process's peak (a memory bound judged on it
// is then judged on this process's own memory, held by other means).
//
// Guarantees: Record is safe from any goroutine; a context without a Peak,
// a nil state and a platform without ru_maxrss (Windows, Plan 9) record
// nothing; an unknown peak counts the process but leaves Max as it was
// (0: none known); nested Watch calls each see the processes recorded
// under their own context (and an inner one's also reach every outer
// Peak).
package childrss

import (
	"context"
	"os"
	"sync"
)

// Peak is the largest resident set, in bytes, of the processes recorded
// into it.
type Peak struct {
	mu     sync.Mutex
	max    int64
	n      int
	parent *Peak
}

type key struct{}

// Watch returns a context carrying a new Peak, and the Peak.
func Watch(ctx context.Context) (context.Context, *Peak) {
	p := &Peak{}
	p.parent, _ = ctx.Value(key{}).(*Peak)
	return context.WithValue(ctx, key{}, p), p
}

// Record reports a waited-for process started under ctx to ctx's Peak (if
// any).
func Record(ctx context.Context, ps *os.ProcessState) {
	if ctx == nil || ps == nil {
		return
	}
	p, _ := ctx.Value(key{}).(*Peak)
	if p == nil {
		return
	}
	rss, ok := maxRSS(ps)
	for ; p != nil; p = p.parent {
		p.mu.Lock()
		p.n++
		if ok {
			p.max = max(p.max, rss)
		}
		p.mu.Unlock()
	}
}

// Max is the largest resident set, in bytes, one process recorded so far
// is known to have reached on its own (0: none known).
func (p *Peak) Max() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

// Processes is the number of processes recorded so far (their peaks known
// or not).
func (p *Peak) Processes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
