package workload

import (
	"fmt"

	"github.com/qedtorture/qedtorture/props/target"
)

// mapKind: "map" asks the image for its allocation map (a Disk with the
// target.Mapper capability; on another Disk the op does nothing) and
// judges it: the extents cover [0, size) in order without gaps or
// overlaps, an allocated extent lies at a positive host offset, and every
// range the map says reads as zeros (a zero extent, or an unallocated one
// without a backing file) is zeros in the model of the guest disk. On a
// Disk with target.Informer it also judges the image's info: its path,
// cluster and table size and guest size are the workload's and the
// model's, it is writable, and it names a backing file exactly when it
// reads more than its own file. Neither changes anything.
type mapKind struct{}

func (mapKind) name() string { return "map" }
func (mapKind) weight() int  { return 1 }

func (mapKind) check(op Op, v *validator) error { return v.notNested() }

func (mapKind) args(Op) string { return "" }

func (mapKind) parse(kw string, args []string) (Op, error) {
	return Op{Kind: Map}, nargs(kw, args, 0)
}

func (mapKind) gen(*genState) (Op, bool) { return Op{Kind: Map}, true }

func (mapKind) run(e *Exec, i int, op Op) error {
	m, ok := e.Disk.(target.Mapper)
	if !ok {
		return nil
	}
	e.snapshot(i)
	if in, ok := e.Disk.(target.Informer); ok {
		info := in.Info()
		if err := judgeInfo(info, e, i, false); err != nil {
			return err
		}
		if hr, ok := e.Target.(target.HeaderReader); ok {
			if err := judgeHeaderInfo(hr, info, e); err != nil {
				return err
			}
		}
	}
	exts, err := m.Map()
	if err != nil {
		return fmt.Errorf("map: %w", err)
	}
	return judgeMap(exts, e.Model.Size(), backedAt(e.W, i), e.Model.Verify)
}

// backedAt reports whether the image has a backing file before op i (the
// geometry's, as rebase and rebase-unsafe ops left it).
func backedAt(w *Workload, i int) bool {
	names, _ := w.backingAt()
	return names[i] != ""
}

// judgeInfo checks an open image's info before op i (see mapKind);
// readOnly is how it was opened. The backing file's name is compared
// only in a workload with rebase ops (BackingNames: otherwise a target
// may store the create command's name in its own form).
func judgeInfo(in target.Info, e *Exec, i int, readOnly bool) error {
	g := e.W.Geometry
	if names := e.W.BackingNames(i); names != nil && in.BackingFile != names[0] {
		return fmt.Errorf("info: backing file %q, want %q", in.BackingFile, names[0])
	}
	switch {
	case (in.BackingFile != "") != backedAt(e.W, i):
		return fmt.Errorf("info: backing file %q, want one: %v", in.BackingFile, backedAt(e.W, i))
	case in.Path != e.ImagePath():
		return fmt.Errorf("info: path %q, want %q", in.Path, e.ImagePath())
	case in.ClusterSize != g.ClusterSize || in.TableSize != g.TableSize:
		return fmt.Errorf("info: cluster size %d, table size %d; want %d, %d", in.ClusterSize, in.TableSize, g.ClusterSize, g.TableSize)
	case in.Size != e.Model.Size():
		return fmt.Errorf("info: size %#x, want %#x", in.Size, e.Model.Size())
	case in.ReadOnly != readOnly:
		return fmt.Errorf("info: read-only %v, want %v", in.ReadOnly, readOnly)
	case (in.BackingFile != "") != (in.Files > 1) || in.Files < 1:
		return fmt.Errorf("info: backing file %q with %d file(s) read", in.BackingFile, in.Files)
	}
	return nil
}

// judgeHeaderInfo checks that the info read from the image's header
// alone, while it is open, is the open image's: what a header reader
// (qemu-img info -U) shows of a running image is what the image is
// (every change of its size or backing file written to the header as it
// is made, not only at a flush or close).
func judgeHeaderInfo(hr target.HeaderReader, open target.Info, e *Exec) error {
	h, err := hr.ReadInfo(e.FS, e.ImagePath())
	if err != nil {
		return fmt.Errorf("info from the header: %w", err)
	}
	if h.Path != e.ImagePath() || h.ClusterSize != open.ClusterSize || h.TableSize != open.TableSize || h.Size != open.Size || h.BackingFile != open.BackingFile {
		return fmt.Errorf("info from the header (%q: cluster size %d, table size %d, size %#x, backing file %q) differs from the open image's (cluster size %d, table size %d, size %#x, backing file %q)",
			h.Path, h.ClusterSize, h.TableSize, h.Size, h.BackingFile, open.ClusterSize, open.TableSize, open.Size, open.BackingFile)
	}
	return nil
}

// judgeMap checks a map of an image of size bytes (see mapKind); verify
// compares guest bytes with the model.
func judgeMap(exts []target.Extent, size int64, backed bool, verify func(off int64, p []byte) error) error {
	var zeros []byte
	next := int64(0)
	for j, x := range exts {
		if x.Start != next || x.Length <= 0 || x.Length > size-x.Start {
			return fmt.Errorf("map: extent %d [%#x, +%#x) does not follow %#x inside the image size %#x", j, x.Start, x.Length, next, size)
		}
		next = x.Start + x.Length
		switch {
		case x.Kind == target.ExtentData:
			if x.HostOffset <= 0 {
				return fmt.Errorf("map: extent %d [%#x, +%#x) is allocated at host offset %#x", j, x.Start, x.Length, x.HostOffset)
			}
		case x.Kind == target.ExtentZero || !backed:
			for off := x.Start; off < next; {
				k := min(next-off, 1<<20)
				if int64(len(zeros)) < k {
					zeros = make([]byte, k)
				}
				if err := verify(off, zeros[:k]); err != nil {
					return fmt.Errorf("%w: map says [%#x, +%#x) reads as zeros (extent %d): %w", ErrDataMismatch, x.Start, x.Length, j, err)
				}
				off += k
			}
		}
	}
	if next != size {
		return fmt.Errorf("map: the extents end at %#x, the image size is %#x", next, size)
	}
	return nil
}

func (mapKind) effect(Op, int64) Effect { return Effect{} }
