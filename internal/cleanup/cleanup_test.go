package cleanup

import (
	"sync"
	"testing"
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
