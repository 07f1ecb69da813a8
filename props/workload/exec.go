package workload

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// ImageName is the file name of the image under test inside an Exec's
// directory; backing files are named by BackingName.
const ImageName = "image.qed"

// BackingName is the file name of the i-th backing file (0 = the image's
// immediate backing file).
func BackingName(i int, format string) string { return fmt.Sprintf("backing%d.%s", i, format) }

// Exec runs a workload against a target.Target on a filesystem and
// mirrors every operation in a model.Disk, so that reads can be checked and
// crash states judged. It is the one executor of the property tests, the
// torture campaign, the QEMU recorder and the differential tests (it was
// props.Exec until migration step 5 of docs/architecture.md).
//
// Ordering contract with the model: an operation is recorded in the model
// before its I/O is issued (so a crash during it finds it pending: allowed
// either way), and a flush is recorded only after the target's Flush
// returned success (so a crash during it still allows the pending writes to
// be lost).
//
// Concurrent operations run as: flush, the group from one goroutine per
// write (or, when the Disk is a target.GroupWriter, issued by the implementation
// itself, all in flight at once), flush; then every byte the group wrote
// is read back and must be one of the values written to it (overlaps may
// land in any order), and the model adopts what was read. A pattern-only
// GroupWriter writes target.GroupPattern(id) bytes, and the model records them.
type Exec struct {
	Target target.Target
	FS     afero.Fs
	Dir    string
	W      *Workload
	Model  *model.Disk
	Disk   target.Disk // the open image; nil after a failed reopen
	Next   int         // index of the next op to run

	// Snapshot, if set, is called with the op index and a clone of the
	// model taken just before the op's I/O is issued (after the model
	// recorded it). A crash during op i must be judged against that clone.
	Snapshot func(i int, m *model.Disk)
	// CommandDone, if set, is called with the op index when image
	// command i (commit, rebase, rebase -u) returned, before the checks
	// and the reopen after it: what the command itself did ends there
	// (a fault sweep aims at it).
	CommandDone func(i int)
	// Private, if set, wraps the private filesystem an op builds its own
	// files in (the hostile op's fresh in-memory one): a campaign's fault
	// layer over it, so that the run's fault rules count and fail the
	// op's operations as they do the workload's own.
	Private func(afero.Fs) afero.Fs

	lastSnap *model.Disk // the snapshot of the op in progress (nil: none taken)
}

// ImagePath is the path of the image under test.
func (e *Exec) ImagePath() string { return path.Join(e.Dir, ImageName) }

// NewExec builds the workload's backing chain (deepest first, each file
// filled from its fill id, see workload), the files its image commands
// act on (imagecmds.go) and the image, opens it writable
// and returns an Exec positioned before the first op. Setup I/O is flushed.
func NewExec(t target.Target, fs afero.Fs, dir string, w *Workload) (*Exec, error) {
	return newExec(t, fs, dir, w, nil)
}

// newExec is NewExec with the setup's bytes from c (nil: none kept; when
// set, the caller holds c.mu).
func newExec(t target.Target, fs afero.Fs, dir string, w *Workload, c *SetupCache) (*Exec, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("workload: setup: %w", err)
	}
	m, err := buildBacking(t, fs, dir, w.Geometry.Backing, c)
	if err != nil {
		return nil, err
	}
	if err := makeImageFiles(fs, dir, w, m, c); err != nil {
		return nil, err
	}
	g := w.Geometry
	opts := target.CreateOptions{Size: g.Size, ClusterSize: g.ClusterSize, TableSize: g.TableSize}
	// The image names only the sizes that differ from the format's
	// defaults, as `qemu-img create` without -o: the default path of the
	// target's creation is taken, and its result judged as any geometry
	// (the map op compares the header's sizes with the geometry's).
	if opts.ClusterSize == target.DefaultClusterSize {
		opts.ClusterSize = 0
	}
	if opts.TableSize == target.DefaultTableSize {
		opts.TableSize = 0
	}
	if len(g.Backing) > 0 {
		opts.BackingFile = BackingName(0, g.Backing[0].Format)
		opts.BackingFormat = g.Backing[0].Format
	}
	e := &Exec{Target: t, FS: fs, Dir: dir, W: w}
	if err := t.Create(fs, e.ImagePath(), opts); err != nil {
		return nil, fmt.Errorf("workload: create %s: %w", e.ImagePath(), err)
	}
	if err := CraftImage(fs, e.ImagePath(), g, g.Craft); err != nil {
		return nil, err
	}
	if e.Model, err = model.New(g.Size, m); err != nil {
		return nil, fmt.Errorf("workload: model: %w", err)
	}
	if e.Disk, err = t.Open(fs, e.ImagePath(), e.OpenOptions(false)); err != nil {
		return nil, fmt.Errorf("workload: open %s: %w", e.ImagePath(), err)
	}
	return e, nil
}

// OpenOptions are the options of every open of the workload's image: its
// L2 cache size (Geometry.L2Cache) and readOnly.
func (e *Exec) OpenOptions(readOnly bool) target.OpenOptions {
	return target.OpenOptions{ReadOnly: readOnly, L2CacheTables: e.W.Geometry.L2Cache}
}

// BuildBacking writes the backing chain into dir and returns the model of
// the image's immediate backing file (nil for none).
func BuildBacking(t target.Target, fs afero.Fs, dir string, chain []Backing) (*model.Disk, error) {
	return buildBacking(t, fs, dir, chain, nil)
}

// buildBacking is BuildBacking with the fill bytes from c (nil: none kept).
func buildBacking(t target.Target, fs afero.Fs, dir string, chain []Backing, c *SetupCache) (*model.Disk, error) {
	m, err := chainModel(chain)
	if err != nil {
		return nil, err
	}
	for i := len(chain) - 1; i >= 0; i-- {
		b := chain[i]
		name := path.Join(dir, BackingName(i, b.Format))
		// A QED backing file's bytes are written through the target: the
		// implementation under test, which must not change a caller's
		// bytes but is what is being tested. Only raw files (written
		// here) take the cache's, so that a target that scribbled over
		// them could not change what a later setup of the workload
		// writes.
		cache := c
		if b.Format != "raw" {
			cache = nil
		}
		buf := cache.fill(i, b)
		switch b.Format {
		case "raw":
			err = writeRaw(fs, name, buf, b.Size)
		case "qed":
			opts := target.CreateOptions{Size: b.Size, ClusterSize: b.ClusterSize, TableSize: b.TableSize}
			if i+1 < len(chain) {
				opts.BackingFile = BackingName(i+1, chain[i+1].Format)
				opts.BackingFormat = chain[i+1].Format
			}
			err = writeQED(t, fs, name, opts, buf)
		default:
			err = fmt.Errorf("unknown format %q", b.Format)
		}
		if err != nil {
			return nil, fmt.Errorf("workload: backing %d (%s): %w", i, name, err)
		}
	}
	return m, nil
}

// chainModel returns the model of what the first file of chain reads
// (nil for an empty chain): each file holds its fill pattern over
// FillLen bytes and reads the next file past it.
func chainModel(chain []Backing) (*model.Disk, error) {
	var m *model.Disk
	for i := len(chain) - 1; i >= 0; i-- {
		b := chain[i]
		bm, err := model.New(b.Size, m)
		if err != nil {
			return nil, fmt.Errorf("workload: backing %d model: %w", i, err)
		}
		if err := bm.WriteID(0, b.FillLen(), uint64(b.Fill)); err != nil {
			return nil, fmt.Errorf("workload: backing %d model: %w", i, err)
		}
		bm.Flush()
		m = bm
	}
	return m, nil
}

// frozenWriter is a file that can keep the bytes written to it instead of
// a copy (crashsim.File.WriteAtFrozen).
type frozenWriter interface {
	WriteAtFrozen(p []byte, off int64) (int, error)
}

// writeRaw writes a raw file of size bytes holding data, durably. data
// is never changed afterwards (the setup generates it for this and keeps
// it, SetupCache): a file that can keep it instead of a copy does.
func writeRaw(fs afero.Fs, name string, data []byte, size int64) error {
	f, err := fs.Create(name)
	if err != nil {
		return err
	}
	write := f.WriteAt
	if fw, ok := f.(frozenWriter); ok {
		write = fw.WriteAtFrozen
	}
	if _, err := write(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeQED(t target.Target, fs afero.Fs, name string, opts target.CreateOptions, data []byte) error {
	if err := t.Create(fs, name, opts); err != nil {
		return err
	}
	d, err := t.Open(fs, name, target.OpenOptions{})
	if err != nil {
		return err
	}
	if len(data) > 0 {
		if _, err := d.WriteAt(data, 0); err != nil {
			d.Close()
			return err
		}
	}
	return d.Close()
}

// OpError is a failed op: which op, what it was, and what went wrong.
// Mismatch is set when a read disagreed with the model.
type OpError struct {
	Index    int
	Op       Op
	Err      error
	Mismatch *model.Mismatch
}

func (e *OpError) Error() string {
	return fmt.Sprintf("op %d (%s): %v", e.Index, e.Op, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// ErrDataMismatch is wrapped by OpErrors of reads that disagreed with the model.
var ErrDataMismatch = errors.New("workload: data read back differs from the model")

// Done reports whether every op has run.
func (e *Exec) Done() bool { return e.Next >= len(e.W.Ops) }

// Step runs the next op. An error is an *OpError; the Exec stays usable
// only if the error came from the target (faults may be injected).
func (e *Exec) Step() error {
	i := e.Next
	op := e.W.Ops[i]
	e.Next++
	if err := e.step(i, op); err != nil {
		oe := &OpError{Index: i, Op: op, Err: err}
		errors.As(err, &oe.Mismatch)
		return oe
	}
	return nil
}

// RunAll runs the remaining ops, stopping at the first error.
func (e *Exec) RunAll() error {
	for !e.Done() {
		if err := e.Step(); err != nil {
			return err
		}
	}
	return nil
}

func (e *Exec) snapshot(i int) {
	e.lastSnap = nil
	if e.Snapshot != nil {
		e.lastSnap = e.Model.Clone()
		e.Snapshot(i, e.lastSnap)
	}
}

// failWrite marks the k-th pending write from the last as failed (see
// model.Disk.FailWrite) in the model and in the snapshot of the op in
// progress, which crashes during the op are judged against.
func (e *Exec) failWrite(k int) {
	e.Model.FailWrite(k)
	if e.lastSnap != nil {
		e.lastSnap.FailWrite(k)
	}
}

func (e *Exec) step(i int, op Op) error {
	if e.Disk == nil {
		return errors.New("image is not open (an earlier reopen failed)")
	}
	s := op.Kind.spec()
	if s == nil {
		return fmt.Errorf("unknown op kind %v", op.Kind)
	}
	return s.run(e, i, op)
}

func (e *Exec) write(op Op) error {
	buf := make([]byte, op.Len)
	model.Fill(buf, uint64(op.ID), op.Off)
	n, err := e.Disk.WriteAt(buf, op.Off)
	if err == nil && n != len(buf) {
		err = fmt.Errorf("short write: %d of %d bytes without an error", n, len(buf))
	}
	return err
}

// concurrent runs a group: flush; the writes at once; flush; read back.
// A Disk that is a target.GroupWriter issues the writes itself (qemu-io's aio
// commands); otherwise each write runs in its own goroutine.
func (e *Exec) concurrent(i int, op Op) error {
	e.snapshot(i)
	if err := e.Disk.Flush(); err != nil {
		return fmt.Errorf("flush before the group: %w", err)
	}
	e.Model.Flush()
	gw, _ := e.Disk.(target.GroupWriter)
	pattern := gw != nil && gw.PatternOnly()
	data := groupData(op.Group, pattern)
	e.Model.BeginGroup() // issued at once: after a crash, in any order
	for j, sub := range op.Group {
		var err error
		switch {
		case sub.Kind != Write:
			err = e.Model.WriteZeroes(sub.Off, sub.Len)
		case pattern:
			err = e.Model.WriteBytes(sub.Off, data[j])
		default:
			err = e.Model.WriteID(sub.Off, sub.Len, uint64(sub.ID))
		}
		if err != nil {
			return fmt.Errorf("model: %w", err)
		}
	}
	e.Model.EndGroup()
	e.snapshot(i)
	if gw != nil {
		ws := make([]target.GroupWrite, len(op.Group))
		for j, sub := range op.Group {
			ws[j] = target.GroupWrite{Off: sub.Off, Len: sub.Len, Zero: sub.Kind != Write, Data: data[j]}
		}
		if err := gw.WriteGroup(ws); err != nil {
			for k := range op.Group { // which write failed is not known
				e.failWrite(k)
			}
			return err
		}
	} else {
		errs := make([]error, len(op.Group))
		var wg sync.WaitGroup
		for j, sub := range op.Group {
			wg.Go(func() {
				if sub.Kind == Write {
					errs[j] = e.write(sub)
				} else {
					errs[j] = e.Disk.WriteZeroes(sub.Off, sub.Len)
				}
			})
		}
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				e.failWrite(len(op.Group) - 1 - j)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	if err := e.Disk.Flush(); err != nil {
		return fmt.Errorf("flush after the group: %w", err)
	}
	if err := e.checkGroup(op.Group, data, pattern); err != nil {
		return err
	}
	// The model then takes what was read as the durable contents (its own
	// check is weaker: it also allows the values from before the group).
	err := e.Model.Recover(e.Model.Size(), func(p []byte, off int64) error {
		_, err := e.Disk.ReadAt(p, off)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: after the concurrent group: %w", ErrDataMismatch, err)
	}
	return nil
}

// groupData returns the bytes each write of a group writes (nil for a
// write-zeroes): its id's pattern (model.Fill), or target.GroupPattern(id)
// repeated for a pattern-only GroupWriter.
func groupData(group []Op, pattern bool) [][]byte {
	data := make([][]byte, len(group))
	for j, sub := range group {
		if sub.Kind != Write {
			continue
		}
		data[j] = make([]byte, sub.Len)
		if pattern {
			for k := range data[j] {
				data[j][k] = target.GroupPattern(sub.ID)
			}
		} else {
			model.Fill(data[j], uint64(sub.ID), sub.Off)
		}
	}
	return data
}

// checkGroup reads back every byte a concurrent group wrote: each must hold
// the value of one of the group's writes that cover it (overlaps may land in
// any order, but a write is never lost nor torn across a flush). With
// pattern (a pattern-only GroupWriter: each write one repeated byte) and a
// Disk that is a target.PatternVerifier, a stretch whose covering writes
// all leave one byte value is verified by the Disk itself, not read
// (QEMU's `read -P`: no hex dump), and only a stretch that fails that, or
// that may hold several values, is read and checked as below: the
// verdict is the same, the bytes the Disk vouched for being the bytes it
// read.
func (e *Exec) checkGroup(group []Op, data [][]byte, pattern bool) error {
	lo, hi := group[0].Off, group[0].Off+group[0].Len
	for _, sub := range group {
		lo, hi = min(lo, sub.Off), max(hi, sub.Off+sub.Len)
	}
	pv, _ := e.Disk.(target.PatternVerifier)
	if !pattern {
		pv = nil
	}
	got := make([]byte, hi-lo)
	if pv == nil {
		if _, err := e.Disk.ReadAt(got, lo); err != nil {
			return fmt.Errorf("read back after the concurrent group: %w", err)
		}
	}
	// Between two consecutive edges of the group's requests the same
	// writes cover every byte: a stretch equal to one of them as a whole
	// passes at once (perf, issue 19: groups of megabyte writes of big
	// clusters were checked byte by byte); any other stretch is checked
	// byte by byte below, which decides.
	edges := []int64{lo, hi}
	for _, sub := range group {
		edges = append(edges, sub.Off, sub.Off+sub.Len)
	}
	slices.Sort(edges)
	edges = slices.Compact(edges)
	for i := 0; i+1 < len(edges); i++ {
		a, b := edges[i], edges[i+1]
		if pv != nil {
			v, covered, one := stretchValue(group, data, a, b)
			if !covered {
				continue // not judged
			}
			if one {
				ok, err := pv.VerifyPattern(a, b-a, v)
				if err != nil {
					return fmt.Errorf("read back after the concurrent group: %w", err)
				}
				if ok {
					continue
				}
			}
			if _, err := e.Disk.ReadAt(got[a-lo:b-lo], a); err != nil {
				return fmt.Errorf("read back after the concurrent group: %w", err)
			}
		}
		if !e.groupStretchMatches(group, data, got[a-lo:b-lo], a) {
			if err := e.checkGroupBytes(group, data, got, lo, int(a-lo), int(b-lo)); err != nil {
				return err
			}
		}
	}
	return nil
}

// stretchValue says what the requests of a pattern-only group covering
// the stretch [a, b) between two of their edges may leave there: covered
// whether any covers it, and one whether they all leave the same byte v
// (0 for a write-zeroes, else the write's repeated byte).
func stretchValue(group []Op, data [][]byte, a, b int64) (v byte, covered, one bool) {
	for j, sub := range group {
		if a < sub.Off || b > sub.Off+sub.Len {
			continue
		}
		var x byte
		if data[j] != nil {
			x = data[j][0]
		}
		if !covered {
			v, covered, one = x, true, true
		} else if x != v {
			one = false
		}
	}
	return v, covered, one
}

// groupStretchMatches reports whether got, the bytes read at off, holds
// as a whole the value of one of the group's requests covering all of it
// (false when none covers it: checkGroupBytes then skips it).
func (e *Exec) groupStretchMatches(group []Op, data [][]byte, got []byte, off int64) bool {
	end := off + int64(len(got))
	for j, sub := range group {
		if off < sub.Off || end > sub.Off+sub.Len {
			continue
		}
		if data[j] == nil {
			if !slices.ContainsFunc(got, func(b byte) bool { return b != 0 }) {
				return true
			}
			continue
		}
		if bytes.Equal(got, data[j][off-sub.Off:end-sub.Off]) {
			return true
		}
	}
	return false
}

// checkGroupBytes checks got[from:to] (got read at lo) byte by byte: each
// byte a request of the group covers must be the value of one of those
// requests.
func (e *Exec) checkGroupBytes(group []Op, data [][]byte, got []byte, lo int64, from, to int) error {
	for k := from; k < to; k++ {
		pos := lo + int64(k)
		covered, ok := false, false
		for j, sub := range group {
			if pos >= sub.Off && pos < sub.Off+sub.Len {
				covered = true
				want := byte(0) // a write-zeroes
				if data[j] != nil {
					want = data[j][pos-sub.Off]
				}
				if want == got[k] {
					ok = true
					break
				}
			}
		}
		if covered && !ok {
			return fmt.Errorf("%w: after the concurrent group, byte at %#x is %#02x, which none of the group's writes covering it wrote (%s)",
				ErrDataMismatch, pos, got[k], e.Model.Explain(pos, got[k:min(len(got), k+16)]))
		}
	}
	return nil
}
