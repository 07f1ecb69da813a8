// Package cleanup keeps the list of what a running qedtorture command must
// undo if it is told to exit at once: temporary files and directories not
// yet published or removed, and child process groups not yet reaped.
//
// A campaign interrupted by a first SIGINT or SIGTERM stops on its own and
// removes its temporaries and children in the ordinary course (deferred
// removals, context cancellation). A second signal exits at once: the
// signal handler calls Run, which runs every registered removal, and then
// exits. Run may therefore run while the rest of the program is still
// working; a removal must be safe to call from any goroutine at any time
// (removing an already removed file, killing an already reaped group).
//
// Invariant: whatever creates a temporary or starts a child registers it
// right after creating it and unregisters it once it is published, removed
// or reaped, so that at any moment the registry holds exactly what would
// be left behind by an exit.
package cleanup

import (
	"slices"
	"sync"
	"time"
)

// creating is held for reading by every creation in progress (Creating),
// from before the temporary exists until its removal is registered; Run
// takes it for writing, so it waits for those creations to register and
// none is left behind in the gap between creating and registering.
var creating sync.RWMutex

// Creating marks the start of a creation whose removal will be registered:
// call it before creating the temporary and the returned done after
// Register (or after removing the temporary on an error). A Run meanwhile
// waits for done, so the temporary is either registered (and removed by
// Run) or created after Run began (and removed at once by Register).
func Creating() (done func()) {
	creating.RLock()
	return creating.RUnlock
}

var reg struct {
	sync.Mutex
	next    uint64
	fns     map[uint64]func()
	exiting bool // Run was called: what registers now is undone at once
}

// Register adds fn to the removals Run performs and returns the function
// that takes it off again (idempotent).
//
// Once Run has been called the process is exiting: Register then runs fn
// at once (a temporary created or a child started while Run works is
// undone too) and returns a no-op.
func Register(fn func()) (unregister func()) {
	reg.Lock()
	if reg.exiting {
		reg.Unlock()
		fn()
		return func() {}
	}
	if reg.fns == nil {
		reg.fns = map[uint64]func(){}
	}
	reg.next++
	id := reg.next
	reg.fns[id] = fn
	reg.Unlock()
	return func() {
		reg.Lock()
		delete(reg.fns, id)
		reg.Unlock()
	}
}

// Run performs every registered removal, the most recently registered
// first (a child started in a temporary directory is killed before the
// directory is removed), and empties the registry; from then on Register
// undoes at once. The removals run twice, settle apart: the rest of the
// program may still be writing into a temporary directory while the first
// pass removes it, and a killed child dies asynchronously (a system call
// it was in, such as a file's creation, still completes), so the first
// pass can find a directory that is not empty yet.
func Run() {
	creating.Lock() // no creation between its temporary and its Register
	reg.Lock()
	reg.exiting = true
	ids := make([]uint64, 0, len(reg.fns))
	for id := range reg.fns {
		ids = append(ids, id)
	}
	fns := reg.fns
	reg.fns = nil
	reg.Unlock()
	creating.Unlock() // creations from now on are undone by Register at once
	slices.Sort(ids)
	slices.Reverse(ids) // most recent first
	for pass := range 2 {
		if pass > 0 {
			time.Sleep(settle)
		}
		for _, id := range ids {
			fns[id]()
		}
	}
}

// settle is the pause between Run's two passes: time for the children the
// first pass killed to be gone.
const settle = 100 * time.Millisecond

// reset ends the exiting state (tests).
func reset() {
	reg.Lock()
	reg.exiting = false
	reg.Unlock()
}

// Len is the number of registered removals (for tests).
func Len() int {
	reg.Lock()
	defer reg.Unlock()
	return len(reg.fns)
}
