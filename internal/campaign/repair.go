package campaign

// Repair, differentially (issue 15): consistent images from the engine's
// workloads, each corruption props/check knows planted in them (NEED_CHECK
// set and clear), every target's repair path driven on a copy, and the
// outcome judged.
//
// Guarantees of RunRepair, per planted image and repair path (a Repairer):
//   - no abort and no hang: a panic in an in-process repair, a repair
//     running past Timeout and an in-process repair allocating more than
//     MemoryBound are failures; an out-of-process repair is killed at the
//     timeout by its own tool runner, and the peak resident set of each
//     child process that repair started (its own rusage from wait4, through
//     internal/childrss, where the OS has it) must stay under twice
//     MemoryBound: never another repair's or another run's child, nor this
//     process's own peak (a child's is known only above it);
//   - afterwards the independent checker finds the image consistent, or the
//     repair reported what it left unrepaired (or refused the image); an
//     image left inconsistent must not claim to be clean (NEED_CHECK clear)
//     unless the repair did not write it at all and refused it;
//   - NEED_CHECK clear implies consistent after every implementation's
//     open and close: each writable-open path also reopens and closes what
//     every path left, and must not leave it claiming to be clean;
//   - a writable open that is not a check is not asked to repair an image
//     whose NEED_CHECK is clear (the format lets it trust the flag), but it
//     must still not damage what the corruption did not touch;
//   - every guest cluster the corruption did not touch (check.Planted)
//     reads as before through every GuestReader, whenever the repaired image
//     opens; a consistent repaired image that a reader cannot open is a
//     failure;
//   - the repaired images of repair paths of the same kind (two checks, two
//     writable opens), and of every pair of paths when the plant set
//     NEED_CHECK, are compared (refused or not, consistency, NEED_CHECK,
//     the guest contents): every difference is counted per corruption and
//     pair of paths, and docs/campaigns.md explains each.
//
// Repair paths and readers work on real files in a scratch directory (QEMU
// needs them); the mode is a command of its own (qedtorture repair) because
// nothing here records a trace or enumerates crash states, so the crash
// engine's loop, reports and artifacts do not apply. A crash during a repair
// is judged by RepairCrashes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/internal/childrss"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// A Repairer is one repair path of an implementation, on real files.
type Repairer interface {
	// Name names the path in reports: "impl/qed check -r all", "qemu open".
	Name() string
	// Check reports whether the path is a check (it must repair whatever
	// the NEED_CHECK flag says) rather than a writable open and close
	// (which repairs only an image whose NEED_CHECK is set).
	Check() bool
	// InProcess reports whether Repair runs in this process (its panics,
	// hangs and allocations are then the judge's to catch).
	InProcess() bool
	// Repair runs the path on the image at path (its backing chain beside
	// it). unrepaired is what the implementation reported it left
	// unrepaired (empty: it claims the image repaired); err is a refusal or
	// a failure the implementation reported (a clean error, not an abort).
	Repair(ctx context.Context, path string) (unrepaired []string, err error)
}

// A GuestReader reads what a guest sees in an image through one
// implementation: image_size bytes.
type GuestReader interface {
	Name() string
	ReadGuest(ctx context.Context, path string) ([]byte, error)
}

// RepairConfig configures RunRepair.
type RepairConfig struct {
	Seed        uint64             // campaign seed: workloads and plants
	Images      int                // consistent images (workloads) to corrupt
	Gen         workload.GenConfig // workload generation (zero: DefaultGenConfig with small images)
	Reference   target.Target      // builds the consistent images in memory (impl/qed)
	Corruptions []check.Corruption // nil: all
	Repairers   []Repairer
	Readers     []GuestReader // Readers[0] reads the images before corruption
	Dir         string        // scratch directory (created, emptied per run)
	Timeout     time.Duration // per repair (0: 60 s)
	MemoryBound int64         // bytes an in-process repair may allocate (0: 256 MiB + 16 x the file)
	Log         io.Writer     // progress and failures, one line each (nil: none)
}

// RepairFailure is one judged rule broken.
type RepairFailure struct {
	Image      int    // workload index
	Corruption string // check.Corruption name
	NeedCheck  bool
	Seed       uint64 // the plant's seed
	Repairer   string
	Rule       string // "abort", "hang", "memory", "unrepaired-unreported", "claims-clean", "untouched-changed", "unreadable"
	What       string
}

func (f RepairFailure) String() string {
	return fmt.Sprintf("image %d %s need-check=%v seed %d: %s: %s: %s", f.Image, f.Corruption, f.NeedCheck, f.Seed, f.Repairer, f.Rule, f.What)
}

// RepairDifference counts the plants on which two repair paths left
// different images, by what differed.
type RepairDifference struct {
	Corruption string
	NeedCheck  bool
	A, B       string // repairer names
	What       string // "consistency", "need-check", "guest-data"
	Count      int
}

// RepairReport is the outcome of RunRepair.
type RepairReport struct {
	Seed          uint64
	Images        int            // consistent images made
	Plants        int            // corruptions planted (kind x NEED_CHECK x image, applicable)
	NotApplicable int            // plants the image had nothing for
	Runs          int            // repair runs judged (plants x repairers)
	ReaderSkips   int            // images a reader could not read when consistent (QEMU: table_size 1)
	Consistent    map[string]int // per repairer: runs ending consistent
	Unrepaired    map[string]int // per repairer: runs with unrepaired damage reported (or refused)
	Failures      []RepairFailure
	Differences   []RepairDifference
}

// RunRepair runs the repair mode (see the file comment).
func RunRepair(ctx context.Context, cfg RepairConfig) (*RepairReport, error) {
	if cfg.Reference == nil || len(cfg.Repairers) == 0 || len(cfg.Readers) == 0 || cfg.Dir == "" {
		return nil, errors.New("campaign: repair: Reference, Repairers, Readers and Dir are required")
	}
	if cfg.Images <= 0 {
		cfg.Images = 1
	}
	if cfg.Gen.Ops == 0 {
		cfg.Gen = workload.DefaultGenConfig()
		cfg.Gen.NoExtras()        // planted corruption on the images create writes
		cfg.Gen.NoImageCommands() // the images of plain guest I/O, as before the image commands were drawn
		cfg.Gen.MaxClusters = min(cfg.Gen.MaxClusters, 64)
	}
	if cfg.Corruptions == nil {
		cfg.Corruptions = check.Corruptions()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	rep := &RepairReport{Seed: cfg.Seed, Consistent: map[string]int{}, Unrepaired: map[string]int{}}
	diffs := map[RepairDifference]int{}
	for w := 0; w < cfg.Images; w++ {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		wl, ws := GenerateWorkload(cfg.Seed, w, cfg.Gen)
		files, err := consistentImage(cfg.Reference, wl)
		if err != nil {
			return rep, fmt.Errorf("campaign: repair: workload %d (seed %d): %w", w, ws, err)
		}
		if !check.Structure(files[workload.ImageName]).IsConsistent() {
			return rep, fmt.Errorf("campaign: repair: workload %d (seed %d) left an inconsistent image", w, ws)
		}
		rep.Images++
		orig, err := readOn(ctx, cfg, cfg.Readers[0], files)
		if err != nil {
			return rep, fmt.Errorf("campaign: repair: workload %d: reading the consistent image with %s: %w", w, cfg.Readers[0].Name(), err)
		}
		// A reader that cannot read the consistent image (QEMU 7.2 and
		// table_size 1) reads none of its plants; its repair paths then
		// refuse them, which the judge accepts as reported. readers is a
		// slice of its own: appending to cfg.Readers[:1] would overwrite
		// cfg.Readers[1:], dropping a skipped reader from the next images.
		readers := []GuestReader{cfg.Readers[0]}
		for _, rd := range cfg.Readers[1:] {
			got, err := readOn(ctx, cfg, rd, files)
			switch {
			case err != nil:
				rep.ReaderSkips++
				logf("image %d: %s cannot read the consistent image, skipped: %v", w, rd.Name(), err)
				continue
			case !bytes.Equal(got, orig):
				return rep, fmt.Errorf("campaign: repair: workload %d: %s and %s read the consistent image differently", w, rd.Name(), cfg.Readers[0].Name())
			}
			readers = append(readers, rd)
		}
		icfg := cfg
		icfg.Readers = readers
		for _, c := range cfg.Corruptions {
			for _, nc := range []bool{true, false} {
				ps := WorkloadSeed(ws, int(c)*2+boolInt(nc))
				img, p, err := check.Plant(files[workload.ImageName], c, nc, ps)
				if errors.Is(err, check.ErrNotApplicable) {
					rep.NotApplicable++
					continue
				}
				if err != nil {
					return rep, fmt.Errorf("campaign: repair: workload %d: plant %v: %w", w, c, err)
				}
				rep.Plants++
				base := RepairFailure{Image: w, Corruption: c.String(), NeedCheck: nc, Seed: ps}
				var outs []repairOut
				for _, r := range cfg.Repairers {
					rep.Runs++
					o, fails := judgeRepair(ctx, icfg, r, files, img, p, orig)
					outs = append(outs, o)
					if o.consistent {
						rep.Consistent[r.Name()]++
					} else if o.reported {
						rep.Unrepaired[r.Name()]++
					}
					for _, f := range fails {
						b := base
						b.Repairer, b.Rule, b.What = r.Name(), f[0], f[1]
						if f[2] != "" {
							b.Repairer = f[2] + " (after " + r.Name() + ")"
						}
						rep.Failures = append(rep.Failures, b)
						logf("FAIL %s (%s)", b, p.What)
					}
				}
				for i := range outs {
					for j := i + 1; j < len(outs); j++ {
						for _, what := range outs[i].differ(outs[j], nc) {
							diffs[RepairDifference{Corruption: c.String(), NeedCheck: nc, A: outs[i].name, B: outs[j].name, What: what}]++
						}
					}
				}
			}
		}
		logf("image %d (workload seed %d): %d plants so far, %d failures", w, ws, rep.Plants, len(rep.Failures))
	}
	for d, n := range diffs {
		d.Count = n
		rep.Differences = append(rep.Differences, d)
	}
	sort.Slice(rep.Differences, func(i, j int) bool {
		a, b := rep.Differences[i], rep.Differences[j]
		return fmt.Sprint(a.Corruption, a.NeedCheck, a.A, a.B, a.What) < fmt.Sprint(b.Corruption, b.NeedCheck, b.A, b.B, b.What)
	})
	return rep, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// consistentImage runs w on t in memory, closes the image and returns the
// files of its directory by name.
func consistentImage(t target.Target, w *workload.Workload) (map[string][]byte, error) {
	fs := afero.NewMemMapFs()
	e, err := workload.NewExec(t, fs, Dir, w)
	if err != nil {
		return nil, err
	}
	if err := e.RunAll(); err != nil {
		return nil, err
	}
	if e.Disk != nil {
		if err := e.Disk.Close(); err != nil {
			return nil, err
		}
	}
	ents, err := afero.ReadDir(fs, Dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, fi := range ents {
		b, err := afero.ReadFile(fs, filepath.Join(Dir, fi.Name()))
		if err != nil {
			return nil, err
		}
		files[fi.Name()] = b
	}
	return files, nil
}

// writeFiles empties dir and writes files into it, image replaced by img
// when img is not nil; it returns the image's path.
func writeFiles(dir string, files map[string][]byte, img []byte) (string, error) {
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for name, b := range files {
		if name == workload.ImageName && img != nil {
			b = img
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, workload.ImageName), nil
}

func readOn(ctx context.Context, cfg RepairConfig, r GuestReader, files map[string][]byte) ([]byte, error) {
	p, err := writeFiles(filepath.Join(cfg.Dir, "orig"), files, nil)
	if err != nil {
		return nil, err
	}
	return r.ReadGuest(ctx, p)
}

// repairOut is what one repair path left.
type repairOut struct {
	name       string
	consistent bool
	needCheck  bool
	reported   bool   // unrepaired damage reported, or the image refused
	refused    bool   // the path returned an error (refused the image)
	check      bool   // the path is a check (else a writable open)
	guest      []byte // as read by the first reader (nil: unreadable)
}

// differ lists what differs between two repaired images of paths of the
// same kind (two checks, or two writable opens), or of any two paths when
// the plant set NEED_CHECK (needCheck: a writable open must then check and
// repair as a check does): "refused" alone when one refused the image and
// the other did not.
func (o repairOut) differ(p repairOut, needCheck bool) []string {
	if o.check != p.check && !needCheck {
		return nil
	}
	if o.refused != p.refused {
		return []string{"refused"}
	}
	var d []string
	if o.consistent != p.consistent {
		d = append(d, "consistency")
	}
	if o.needCheck != p.needCheck {
		d = append(d, "need-check")
	}
	if (o.guest == nil) != (p.guest == nil) || !bytes.Equal(o.guest, p.guest) {
		d = append(d, "guest-data")
	}
	return d
}

// judgeRepair runs r on a copy of the planted image and judges it; each
// failure is {rule, what, by}: by names another path (a reopen) that broke it, "" for r.
func judgeRepair(ctx context.Context, cfg RepairConfig, r Repairer, files map[string][]byte, img []byte, p *check.Planted, orig []byte) (repairOut, [][3]string) {
	out := repairOut{name: r.Name(), check: r.Check()}
	var fails [][3]string
	fail := func(rule, format string, args ...any) {
		fails = append(fails, [3]string{rule, fmt.Sprintf(format, args...), ""})
	}
	path, err := writeFiles(filepath.Join(cfg.Dir, "repair"), files, img)
	if err != nil {
		fail("harness", "%v", err)
		return out, fails
	}
	unrep, rerr, ok := runRepair(ctx, cfg, r, path, int64(len(img)), fail)
	if !ok {
		return out, fails
	}
	after, err := os.ReadFile(path)
	if err != nil {
		fail("harness", "%v", err)
		return out, fails
	}
	cr := check.Structure(after)
	out.refused = rerr != nil
	out.consistent = cr.IsConsistent()
	out.needCheck = cr.NeedCheck()
	// A writable open has no report but its refusal and the flag it
	// leaves: NEED_CHECK still set says "not repaired".
	out.reported = len(unrep) > 0 || rerr != nil || (!r.Check() && out.needCheck)
	written := !bytes.Equal(after, img)
	expectRepair := r.Check() || p.NeedCheck
	switch {
	case out.consistent:
	case !expectRepair:
		// A plain open of an image marked clean: nothing to repair.
	case !out.reported:
		fail("unrepaired-unreported", "the image is left inconsistent (%v) and the repair reported nothing", cr.Kinds())
	case cr.Has(check.ViolNeedCheckClearButInconsistent) && (written || rerr == nil):
		fail("claims-clean", "left inconsistent (%v) with NEED_CHECK clear", cr.Kinds())
	}
	// NEED_CHECK clear implies consistent after every implementation's
	// open and close: each writable-open path reopens what r left. An
	// image already claiming clean (an open trusted a clear flag) is not
	// the reopening path's doing.
	if !cr.Has(check.ViolNeedCheckClearButInconsistent) {
		for _, o := range cfg.Repairers {
			if o.Check() {
				continue
			}
			rp, err := writeFiles(filepath.Join(cfg.Dir, "reopen"), files, after)
			if err != nil {
				fail("harness", "%v", err)
				continue
			}
			var sub [][3]string
			_, _, ok := runRepair(ctx, cfg, o, rp, int64(len(after)), func(rule, format string, args ...any) {
				sub = append(sub, [3]string{rule, fmt.Sprintf(format, args...), o.Name()})
			})
			fails = append(fails, sub...)
			if !ok {
				continue
			}
			b, err := os.ReadFile(rp)
			if err != nil {
				fail("harness", "%v", err)
				continue
			}
			if rr := check.Structure(b); rr.Has(check.ViolNeedCheckClearButInconsistent) {
				fails = append(fails, [3]string{"reopen-claims-clean",
					fmt.Sprintf("opening and closing the image %s left clears NEED_CHECK over %v", r.Name(), rr.Kinds()), o.Name()})
			}
		}
	}
	if p.AllTouched {
		return out, fails
	}
	for i, rd := range cfg.Readers {
		got, err := rd.ReadGuest(ctx, path)
		if err != nil {
			if out.consistent && !errors.Is(err, context.Canceled) {
				fail("unreadable", "%s cannot read the consistent repaired image: %v", rd.Name(), err)
			}
			continue
		}
		if i == 0 {
			out.guest = got
		}
		if len(got) != len(orig) {
			fail("untouched-changed", "%s reads %d guest bytes, %d before", rd.Name(), len(got), len(orig))
			continue
		}
		if off, ok := firstUntouchedDiff(p, orig, got, int64(check.Structure(img).Header.ClusterSize)); ok {
			fail("untouched-changed", "%s reads guest byte %d (untouched cluster) as 0x%02x, was 0x%02x", rd.Name(), off, got[off], orig[off])
		}
	}
	return out, fails
}

// firstUntouchedDiff returns the first guest offset outside p.Touched where
// a and b differ.
func firstUntouchedDiff(p *check.Planted, a, b []byte, cs int64) (int64, bool) {
	for off := int64(0); off < int64(len(a)); off += cs {
		end := min(off+cs, int64(len(a)))
		if !p.Untouched(off, end-off) || bytes.Equal(a[off:end], b[off:end]) {
			continue
		}
		for i := off; i < end; i++ {
			if a[i] != b[i] {
				return i, true
			}
		}
	}
	return 0, false
}

// runRepair runs one repair with the judge's bounds: a panic, a timeout
// and (in process) an allocation bound are failures (ok false).
func runRepair(ctx context.Context, cfg RepairConfig, r Repairer, path string, size int64, fail func(rule, format string, args ...any)) (unrep []string, rerr error, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	ctx, peak := childrss.Watch(ctx) // this repair's children alone
	bound := cfg.MemoryBound
	if bound <= 0 {
		bound = 256<<20 + 16*size
	}
	type result struct {
		unrep []string
		err   error
		panic any
		alloc uint64
	}
	done := make(chan result, 1)
	go func() {
		var res result
		var m0, m1 runtime.MemStats
		if r.InProcess() {
			runtime.ReadMemStats(&m0)
		}
		defer func() {
			res.panic = recover()
			if r.InProcess() {
				runtime.ReadMemStats(&m1)
				res.alloc = m1.TotalAlloc - m0.TotalAlloc
			}
			done <- res
		}()
		res.unrep, res.err = r.Repair(ctx, path)
	}()
	select {
	case res := <-done:
		switch {
		case res.panic != nil:
			fail("abort", "panic: %v", res.panic)
			return nil, nil, false
		case ctx.Err() != nil && errors.Is(res.err, context.DeadlineExceeded):
			// The repair returned its deadline's error as the deadline
			// passed, and the select took its result (a race: the
			// case below takes a repair still running).
			fail("hang", "still running after %v", cfg.Timeout)
			return nil, nil, false
		case r.InProcess() && res.alloc > uint64(bound):
			fail("memory", "allocated %d bytes (bound %d)", res.alloc, bound)
		case !r.InProcess():
			// The peak of each child this repair started, on its
			// own (QEMU's tools use tens of MB).
			if rss := peak.Max(); rss > 2*bound {
				fail("memory", "a child process reached %d bytes resident (bound %d)", rss, 2*bound)
			}
		}
		return res.unrep, res.err, true
	case <-ctx.Done():
		fail("hang", "still running after %v", cfg.Timeout)
		return nil, nil, false
	}
}
