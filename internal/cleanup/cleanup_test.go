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
	Run() // emptied: nothing runs twice
	if len(got) != 2 || got[0] != 3 || got[1] != 1 {
		t.Fatalf("ran %v, want [3 1]", got)
	}
	if Len() != 0 {
		t.Fatalf("registry not empty: %d", Len())
	}
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
}
