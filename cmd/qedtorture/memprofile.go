package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/qedtorture/qedtorture/internal/atomicfile"
)

// startMemProfile watches the live heap the last collection marked (runtime/metrics, every
// 50 ms) and keeps a Go heap profile taken when they were at their
// largest; the returned function stops watching and writes that profile
// to name (run's hidden --memprofile, for memory work: go tool pprof
// -sample_index=inuse_space BINARY name). The profile is written under
// a temporary name in name's directory (made at the start: an unwritable
// directory fails the run before it begins) and renamed over name at the
// end, so an existing file is replaced whole or not at all. Sampling is
// runtime.MemProfileRate's (one sample per 512 KiB allocated), enough for
// the megabyte buffers memory work is about.
func startMemProfile(name string) (stop func() error, err error) {
	f, err := atomicfile.Create(name, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--memprofile %s: %w", name, err)
	}
	var (
		mu   sync.Mutex
		best bytes.Buffer
		peak uint64
	)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	take := func() {
		metrics.Read(sample)
		live := sample[0].Value.Uint64()
		mu.Lock()
		defer mu.Unlock()
		if live <= peak+peak/20 && best.Len() > 0 {
			return // within 5 % of the kept profile's peak
		}
		peak = max(peak, live)
		best.Reset()
		_ = pprof.Lookup("heap").WriteTo(&best, 0)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				take()
			}
		}
	}()
	return func() error {
		close(done)
		<-finished
		runtime.GC()
		if _, err := f.Write(best.Bytes()); err != nil {
			_ = f.Abort()
			return fmt.Errorf("--memprofile %s: %w", name, err)
		}
		if err := f.Commit(); err != nil {
			return fmt.Errorf("--memprofile %s: %w", name, err)
		}
		fmt.Fprintf(os.Stderr, "memprofile: live heap peaked at %s (the profile written is from then)\n", fmtMiB(peak))
		return nil
	}, nil
}

func fmtMiB(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
