package main

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/iocount"
	"github.com/spf13/afero"
	"github.com/spf13/cobra"
)

// benchConfig is one `qedtorture bench` run, with qemu-img bench's
// defaults.
type benchConfig struct {
	count         int64  // -c: requests
	depth         int    // -d: requests in flight (goroutines)
	size          int64  // -s: bytes per request
	step          int64  // -S: offset increment (0 = size)
	offset        int64  // -o: first offset
	write         bool   // -w
	flushInterval int64  // --flush-interval: flush after every N requests (drained)
	pattern       byte   // --pattern: byte written
	cache         string // -t: writeback, writethrough, none or directsync
	fault         string // --fault: faultfs rules over every file the run opens
	format        string // -f: qed or raw ("" = probe)
	quiet         bool   // -q
	forceShare    bool   // -U: read even while another process writes
}

func newBenchCommand(e *env) *cobra.Command {
	var (
		c                                benchConfig
		sizeArg, stepArg, offArg, logArg string
		pattern                          int
	)
	cmd := &cobra.Command{
		Use:   "bench [-c COUNT] [-d DEPTH] [-f qed|raw] [--flush-interval N] [-o OFFSET] [--pattern P] [-s SIZE] [-S STEP] [-t writeback|writethrough|none|directsync] [--fault RULES] [-w] IMG",
		Short: "Time a stream of reads or writes, like qemu-img bench",
		Long: `Send COUNT read (or, with -w, write) requests of SIZE bytes to IMG, DEPTH at a
time, the first at OFFSET and each next one STEP bytes further (wrapping at the
image size), and print how long they took, as 'qemu-img bench' does. DEPTH
requests run as concurrent goroutines (qemu-img runs them as asynchronous
requests in one thread). With --flush-interval N the requests in flight are
drained and the image flushed after every N requests. The cache modes are
qemu-img's: writeback (the page cache), writethrough (a flush after every
write request, before it counts as complete), none (O_DIRECT; Linux; unaligned
requests go through an aligned bounce buffer) and directsync (O_DIRECT and a
flush after every write request).

--fault RULES runs every file of the run (the image and its backing files)
through faultfs with those rules (seed 1; the rule language of 'qedtorture
run --fault'): --fault 'read:delay=1ms@path=back.raw' gives each read of the
backing file back.raw 1 ms of latency, a slow backing device.
Opening and closing the image are not timed. IMG is locked as QEMU locks it:
read-only for reads (refused while another process writes IMG, unless -U,
--force-share), read-write with -w (refused while anyone else has it open).

Then it prints the requests that reached the image file from open to close
(write requests, their bytes, flushes, reads) and, for QED, the number of
clusters the run allocated and those counts per allocating write.

--count-log LOG instead prints the same counts for a dm-log-writes log written
by QEMU's blklogwrites driver, so that QEMU runs can be counted alike.`,
		Example: `  qedtorture create fresh.qed 4G
  qedtorture bench -w -c 32768 -d 16 -s 4K -S 64K fresh.qed
  qedtorture bench -c 100000 -d 16 -s 4K -S 12K -t none full.qed
  qedtorture bench -w -c 1000 -d 16 -s 4K -S 64K -t writethrough fresh.qed
  qedtorture bench -w -c 1000 -d 16 -s 4K -S 64K --fault 'read:delay=1ms@path=back.raw' over-back.qed
  qedtorture bench --count-log img.log`,
		Args: func(cmd *cobra.Command, args []string) error {
			if logArg != "" {
				return argsBetween(0, 0, "no IMG with --count-log")(cmd, args)
			}
			return argsBetween(1, 1, "IMG")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if logArg != "" {
				return countLog(e, logArg)
			}
			var err error
			if c.size, err = parseSize("request size (-s)", sizeArg); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			if c.size == 0 || c.size > 1<<30 {
				return usagef(cmd, "invalid request size (-s) %q: must be 1 byte to 1 GiB", sizeArg)
			}
			c.step = c.size
			if cmd.Flags().Changed("step") {
				if c.step, err = parseSize("step (-S)", stepArg); err != nil {
					return &usageError{cmd: cmd.CommandPath(), err: err}
				}
			}
			if c.offset, err = parseSize("offset (-o)", offArg); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			if c.count <= 0 {
				return usagef(cmd, "invalid request count (-c) %d: must be positive", c.count)
			}
			if c.depth <= 0 || c.depth > 4096 {
				return usagef(cmd, "invalid depth (-d) %d: must be 1 to 4096", c.depth)
			}
			if c.flushInterval < 0 {
				return usagef(cmd, "invalid --flush-interval %d: must not be negative", c.flushInterval)
			}
			if c.forceShare && c.write {
				return usagef(cmd, "--force-share (-U) is only available in read tests (without -w)")
			}
			if c.flushInterval > 0 && !c.write {
				return usagef(cmd, "--flush-interval is only available in write tests (-w)")
			}
			if pattern < 0 || pattern > 255 {
				return usagef(cmd, "invalid --pattern %d: must be 0 to 255", pattern)
			}
			c.pattern = byte(pattern)
			if err := checkFormat(cmd, "cache mode (-t)", c.cache, "writeback", "writethrough", "none", "directsync"); err != nil {
				return err
			}
			if c.fault != "" {
				if _, err := faultfs.Parse(c.fault); err != nil {
					return usagef(cmd, "invalid --fault: %v", err)
				}
			}
			if c.format != "" {
				if err := checkFormat(cmd, "format (-f)", c.format, "qed", "raw"); err != nil {
					return err
				}
			}
			return runBench(e, args[0], c)
		},
	}
	f := cmd.Flags()
	f.Int64VarP(&c.count, "count", "c", 75000, "number of requests")
	f.IntVarP(&c.depth, "depth", "d", 64, "requests in flight (goroutines)")
	f.StringVarP(&c.format, "format", "f", "", "image format: qed or raw (default: probe)")
	f.Int64Var(&c.flushInterval, "flush-interval", 0, "drain and flush after every N requests (writes only)")
	f.StringVarP(&offArg, "offset", "o", "0", "offset of the first request")
	f.IntVar(&pattern, "pattern", 0, "byte value written by -w")
	f.StringVarP(&sizeArg, "size", "s", "4K", "bytes per request")
	f.StringVarP(&stepArg, "step", "S", "", "offset increment between requests (default: SIZE)")
	f.StringVarP(&c.cache, "cache", "t", "writeback", "cache mode: writeback, writethrough (flush after every write), none (O_DIRECT) or directsync (both)")
	f.StringVar(&c.fault, "fault", "", "faultfs rules for every file of the run, e.g. 'read:delay=1ms@path=back.raw'")
	f.BoolVarP(&c.write, "write", "w", false, "write instead of read")
	f.BoolVarP(&c.quiet, "quiet", "q", false, "print nothing but errors")
	f.BoolVarP(&c.forceShare, "force-share", "U", false, "read IMG even while another process writes it (read tests only)")
	f.StringVar(&logArg, "count-log", "", "print the counts of a blklogwrites (dm-log-writes) log and exit")
	return cmd
}

// benchTarget is what requests go to: a QED image or a raw file.
type benchTarget interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Flush() error
	Size() int64
	Close() error
}

type rawTarget struct {
	f    afero.File
	size int64
}

func (r *rawTarget) ReadAt(p []byte, off int64) (int, error)  { return r.f.ReadAt(p, off) }
func (r *rawTarget) WriteAt(p []byte, off int64) (int, error) { return r.f.WriteAt(p, off) }
func (r *rawTarget) Flush() error                             { return r.f.Sync() }
func (r *rawTarget) Size() int64                              { return r.size }
func (r *rawTarget) Close() error {
	err := r.f.Sync()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// benchResult is what one run measured.
type benchResult struct {
	elapsed   time.Duration
	io        iocount.Counts // reaching the image file, open to close
	allocated int64          // clusters newly allocated (QED), -1 for raw
}

func runBench(e *env, path string, c benchConfig) error {
	out := e.stdout
	if c.quiet {
		out = io.Discard
	}
	kind := "read"
	if c.write {
		kind = "write"
	}
	fmt.Fprintf(out, "Sending %d %s requests, %d bytes each, %d in parallel (starting at offset %d, step size %d)\n",
		c.count, kind, c.size, c.depth, c.offset, c.step)
	if c.flushInterval > 0 {
		fmt.Fprintf(out, "Sending flush every %d requests\n", c.flushInterval)
	}
	res, err := benchRun(e.fs, path, c)
	if err != nil {
		return fileError(path, err)
	}
	fmt.Fprintf(out, "Run completed in %.3f seconds.\n", res.elapsed.Seconds())
	fmt.Fprintf(out, "I/O reaching %s (open to close): %s\n", path, res.io)
	if res.allocated > 0 {
		a := float64(res.allocated)
		fmt.Fprintf(out, "Allocating writes: %d clusters allocated; per allocating write: %.2f write requests, %.0f bytes, %.2f flushes\n",
			res.allocated, float64(res.io.Writes)/a, float64(res.io.WriteBytes)/a, float64(res.io.Syncs)/a)
	}
	return nil
}

// benchRun opens path on base (through a counting layer, and O_DIRECT for
// cache mode none), runs the requests and closes it.
func benchRun(base afero.Fs, path string, c benchConfig) (res benchResult, err error) {
	format := c.format
	if format == "" {
		// Probe through the page cache: O_DIRECT refuses the 4-byte read.
		if format, err = probeFormat(base, path); err != nil {
			return res, err
		}
	}
	if c.cache == "none" || c.cache == "directsync" {
		if base, err = directFs(base); err != nil {
			return res, err
		}
	}
	if c.fault != "" {
		// Under the counting layer: what is counted is what the run asked
		// of the files, delays included.
		if base, err = faultfs.NewFromString(base, 1, c.fault); err != nil {
			return res, err
		}
	}
	cfs := iocount.New(base)
	var t benchTarget
	var im *qed.Image
	res.allocated = -1
	switch format {
	case "qed":
		im, err = qed.Open(cfs, path, qed.OpenOptions{ReadOnly: !c.write, ForceShare: c.forceShare})
		if err != nil {
			return res, err
		}
		t = im
	default:
		f, err := openRaw(&env{fs: cfs}, path, c.write, c.forceShare)
		if err != nil {
			return res, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return res, err
		}
		t = &rawTarget{f: f, size: st.Size()}
	}
	closed := false
	defer func() {
		if !closed {
			t.Close()
		}
	}()
	var before int64
	if im != nil && c.write {
		if before, err = dataBytes(im); err != nil {
			return res, err
		}
	}
	if res.elapsed, err = benchRequests(t, c); err != nil {
		return res, err
	}
	if im != nil && c.write {
		after, err := dataBytes(im)
		if err != nil {
			return res, err
		}
		res.allocated = (after - before) / int64(im.Header().ClusterSize)
	}
	closed = true
	if err := t.Close(); err != nil {
		return res, err
	}
	res.io = cfs.Counts(path)
	return res, nil
}

// dataBytes returns how many guest bytes of im are allocated in im itself.
func dataBytes(im *qed.Image) (int64, error) {
	ext, err := im.Map()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, x := range ext {
		if x.Kind == qed.ExtentData {
			n += x.Length
		}
	}
	return n, nil
}

// benchOffset returns the offset of request i: the first at off, each next
// one step further modulo size, as qemu-img bench computes them one by
// one ((prev + step) % size), here without overflow for any i.
func benchOffset(off, step, size, i int64) int64 {
	if i == 0 {
		return off
	}
	if size <= 0 {
		return 0
	}
	s := uint64(size)
	hi, lo := bits.Mul64(uint64(i), uint64(step))
	prod := bits.Rem64(hi, lo, s)
	return int64((uint64(off)%s + prod) % s)
}

// benchRequests issues c.count requests, c.depth at a time, and returns
// the time from the first submission to the last completion. With a
// flush interval the requests go in drained batches of that many, each
// followed by a Flush. In the cache modes writethrough and directsync every
// write request is followed by a Flush before it counts as complete (what
// QEMU does for a device without a volatile write cache).
func benchRequests(t benchTarget, c benchConfig) (time.Duration, error) {
	syncEach := c.write && (c.cache == "writethrough" || c.cache == "directsync")
	size := t.Size()
	batch := c.count
	if c.flushInterval > 0 {
		batch = c.flushInterval
	}
	var (
		firstErr error
		errOnce  sync.Once
		failed   atomic.Bool
	)
	setErr := func(err error) {
		errOnce.Do(func() { firstErr = err })
		failed.Store(true)
	}
	bufs := make([][]byte, c.depth)
	for i := range bufs {
		bufs[i] = make([]byte, c.size)
		if c.write && c.pattern != 0 {
			for j := range bufs[i] {
				bufs[i][j] = c.pattern
			}
		}
	}
	start := time.Now()
	for lo := int64(0); lo < c.count && !failed.Load(); lo += batch {
		hi := min(lo+batch, c.count)
		var next atomic.Int64
		next.Store(lo)
		var wg sync.WaitGroup
		for w := range min(int64(c.depth), hi-lo) {
			buf := bufs[w]
			wg.Go(func() {
				for !failed.Load() {
					i := next.Add(1) - 1
					if i >= hi {
						return
					}
					off := benchOffset(c.offset, c.step, size, i)
					var err error
					if c.write {
						_, err = t.WriteAt(buf, off)
						if err == nil && syncEach {
							err = t.Flush()
						}
					} else {
						var n int
						n, err = t.ReadAt(buf, off)
						if errors.Is(err, io.EOF) && n == len(buf) {
							err = nil
						}
					}
					if err != nil {
						setErr(fmt.Errorf("request %d (%d bytes at offset %d): %w", i, len(buf), off, ioCause(err)))
						return
					}
				}
			})
		}
		wg.Wait()
		if c.flushInterval > 0 && hi-lo == batch && !failed.Load() {
			if err := t.Flush(); err != nil {
				setErr(fmt.Errorf("flush after request %d: %w", hi-1, ioCause(err)))
			}
		}
	}
	elapsed := time.Since(start)
	return elapsed, firstErr
}

// ioCause is err of an I/O request as a cause for a message that names the
// file already: impl/qed's errors as they are, OS errors without their
// path.
func ioCause(err error) error {
	var fe *qed.FileError
	if errors.As(err, &fe) {
		return errors.New(strings.TrimPrefix(err.Error(), fe.Path+": "))
	}
	return unwrapPath(err)
}

// countLog prints the counts of a dm-log-writes log.
func countLog(e *env, path string) error {
	f, err := e.fs.Open(path)
	if err != nil {
		return failf("bench: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return failf("bench: %v", err)
	}
	c, err := iocount.ReadDMLog(f, st.Size())
	if err != nil {
		return failf("bench: %s: %v", path, err)
	}
	fmt.Fprintf(e.stdout, "I/O reaching the logged file (blklogwrites log %s): %s\n", filepath.Clean(path), c)
	return nil
}
