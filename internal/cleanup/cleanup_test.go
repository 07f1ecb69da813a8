package cleanup

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunMostRecentFirstOnce(t *testing.T) {
	var got []int
	Register(func() { got = append(got, 1) })
	un := Register(func() { got = append(got, 2) })
	Register(func() { got = append(got, 3) })
	un()
	un() // idempotent
	Run()
	Run() // emptied: nothing runs again
	if len(got) != 4 || got[0] != 3 || got[1] != 1 || got[2] != 3 || got[3] != 1 {
		t.Fatalf("ran %v, want [3 1 3 1] (two passes)", got)
	}
	if Len() != 0 {
		t.Fatalf("registry not empty: %d", Len())
	}
	// Exiting: a registration is undone at once.
	ran := false
	Register(func() { ran = true })()
	if !ran || Len() != 0 {
		t.Fatalf("registration while exiting: ran %v, registry %d", ran, Len())
	}
	reset()
}

func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				Register(func() {})()
			}
		})
	}
	wg.Go(Run)
	wg.Wait()
	Run()
	if Len() != 0 {
		t.Fatal("registry not empty")
	}
	reset()
}

// TestRunWaitsForCreation: a temporary created just before Run but not yet
// registered (the gap between os.CreateTemp and Register) is removed by the
// time Run returns (after which a command exits): Run waits for the
// creation to register it.
func TestRunWaitsForCreation(t *testing.T) {
	defer reset()
	var exists atomic.Bool
	done := Creating()
	exists.Store(true) // the temporary exists, its removal not yet registered
	atReturn := make(chan bool)
	go func() {
		Run()
		atReturn <- exists.Load() // what an exit right now would leave
	}()
	time.Sleep(50 * time.Millisecond) // time for Run to finish, were it not waiting
	Register(func() { exists.Store(false) })
	done()
	if <-atReturn {
		t.Fatal("Run returned with a creation's temporary not yet registered: an exit leaves it behind")
	}
}
