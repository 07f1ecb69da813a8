package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/internal/cleanup"
)

// stopGrace bounds the time a campaign takes to stop after the first
// SIGINT or SIGTERM: the engines stop within a fraction of a second plus
// the artifact and report writes; past this the command exits as on a
// second signal (Kubernetes sends SIGKILL 30 s after SIGTERM by default).
const stopGrace = 10 * time.Second

// interruption is how a campaign command handles SIGINT and SIGTERM.
//
// First signal: ctx is cancelled; the campaign stops starting workloads,
// abandons the ones in flight, writes the artifacts of the failures it
// found, and the command prints the summary marked interrupted, writes the
// report with "interrupted": true and exits 130 (SIGINT) or 143 (SIGTERM).
// Its temporaries and children go in the ordinary course.
//
// Second signal, or the campaign still running stopGrace after the first:
// exit at once with the same code, after cleanup.Run has killed the child
// process groups and removed the temporaries.
type interruption struct {
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan os.Signal
	done   chan struct{}
	wg     sync.WaitGroup

	mu  sync.Mutex
	sig os.Signal // the first signal, nil if none
}

// exitCode is the conventional exit status of a process ended by sig.
func exitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + 2
}

// signalName is "SIGINT" or "SIGTERM".
func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// watchSignals starts handling SIGINT and SIGTERM; stop (deferred by the
// caller) restores the default handling.
func watchSignals(stderr io.Writer) *interruption {
	in := &interruption{ch: make(chan os.Signal, 2), done: make(chan struct{})}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	signal.Notify(in.ch, os.Interrupt, syscall.SIGTERM)
	// QEDTORTURE_TEST_STOP_DELAY (tests only) holds the cancellation back
	// after the first signal, so that a second one meets a campaign with
	// its children and temporaries alive, as on a slow stop.
	delay, _ := time.ParseDuration(os.Getenv("QEDTORTURE_TEST_STOP_DELAY"))
	in.wg.Go(func() {
		var grace, cancelAt <-chan time.Time
		for {
			select {
			case <-in.done:
				return
			case <-cancelAt:
				in.cancel()
			case s := <-in.ch:
				in.mu.Lock()
				first := in.sig == nil
				if first {
					in.sig = s
				}
				sig := in.sig
				in.mu.Unlock()
				if first {
					fmt.Fprintf(stderr, "qedtorture: %s: stopping: no new workload, in-flight work abandoned, artifacts and report still written (send it again to exit at once)\n", signalName(s))
					if delay > 0 {
						cancelAt = time.After(delay)
					} else {
						in.cancel()
					}
					grace = time.After(stopGrace)
					continue
				}
				fmt.Fprintf(stderr, "qedtorture: %s again: exiting at once\n", signalName(s))
				in.cancel()
				exitNow(sig)
			case <-grace:
				fmt.Fprintf(stderr, "qedtorture: the campaign did not stop within %s of the signal: exiting at once\n", stopGrace)
				in.cancel()
				exitNow(in.signal())
			}
		}
	})
	return in
}

// exitNow kills the children, removes the temporaries and exits.
func exitNow(sig os.Signal) {
	cleanup.Run()
	os.Exit(exitCode(sig))
}

// signal returns the first signal received, or nil.
func (in *interruption) signal() os.Signal {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.sig
}

// stop ends the handling (signals get their default action again).
func (in *interruption) stop() {
	signal.Stop(in.ch)
	close(in.done)
	in.wg.Wait()
	in.cancel()
}

// interruptedError is the command's result after a first signal: the
// conventional exit status, one line saying so.
func interruptedError(sig os.Signal, what string) error {
	return &exitError{code: exitCode(sig), err: fmt.Errorf("interrupted by %s: %s", signalName(sig), what)}
}

// checkOutputDir checks, before a campaign starts, that the artifact
// directory dir can be written: it is a directory or does not exist yet,
// and the directory it is (or the nearest existing one it would be created
// in) accepts a new file. Nothing is left behind.
func checkOutputDir(flag, dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s %s: not a directory", flag, dir)
	case err == nil:
		return probeDir(flag, dir, dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s: %w", flag, dir, unwrapPath(err))
	}
	return checkCreatable(flag, dir)
}

// checkOutputFile checks, before a campaign starts, that the report file
// name can be written ("-" is stdout): not a directory, and its directory
// (or the nearest existing one it would be created in) accepts a new file.
func checkOutputFile(flag, name string) error {
	if name == "" || name == "-" {
		return nil
	}
	if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("%s %s: is a directory", flag, name)
	}
	return checkCreatable(flag, name)
}

// checkCreatable checks that path's nearest existing ancestor is a
// writable directory.
func checkCreatable(flag, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s %s: %s is not a directory", flag, path, dir)
			}
			return probeDir(flag, path, dir)
		}
		if !errors.Is(err, fs.ErrNotExist) || dir == filepath.Dir(dir) {
			return fmt.Errorf("%s %s: %w", flag, path, unwrapPath(err))
		}
	}
}

// probeDir creates and removes a temporary file in dir.
func probeDir(flag, path, dir string) error {
	f, err := atomicfile.Create(filepath.Join(dir, "qedtorture-probe"), 0o600)
	if err != nil {
		return fmt.Errorf("%s %s: cannot write in %s: %w", flag, path, dir, unwrapPath(errors.Unwrap(err)))
	}
	return f.Abort()
}
