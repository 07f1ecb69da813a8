package workload

import (
	"errors"
	"fmt"
	"math/bits"
)

// Kind is the kind of one guest operation.
type Kind uint8

// The operation kinds. Their script keywords are in kindNames.
const (
	Write       Kind = iota + 1 // write pattern ID over [Off, Off+Len)
	WriteZeroes                 // write zeroes over [Off, Off+Len)
	Read                        // read [Off, Off+Len) and compare with the model
	Flush                       // flush: everything before is durable
	Resize                      // grow the image to Off bytes
	Reopen                      // close cleanly and open again
	Check                       // consistency check without repair: must be clean
	Concurrent                  // run Group at the same time from len(Group) goroutines
)

var kindNames = map[Kind]string{
	Write: "write", WriteZeroes: "zero", Read: "read", Flush: "flush",
	Resize: "resize", Reopen: "reopen", Check: "check", Concurrent: "concurrent",
}

// Kinds lists every operation kind, in script-keyword order of the
// constants above.
func Kinds() []Kind {
	return []Kind{Write, WriteZeroes, Read, Flush, Resize, Reopen, Check, Concurrent}
}

// KindByName is the kind whose script keyword is name.
func KindByName(name string) (Kind, bool) {
	for k, n := range kindNames {
		if n == name {
			return k, true
		}
	}
	return 0, false
}

// KindNames lists the script keywords of every kind, in the order of Kinds.
func KindNames() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, kindNames[k])
	}
	return out
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Op is one guest operation.
type Op struct {
	Kind  Kind
	Off   int64  // byte offset; for Resize the new size
	Len   int64  // byte length (Write, WriteZeroes, Read)
	ID    uint32 // Write: the pattern id, unique in the workload
	Group []Op   // Concurrent: the writes to run at once (Write/WriteZeroes only)
}

// Backing describes one backing image in the chain.
type Backing struct {
	Format      string // "qed" or "raw"
	Size        int64
	ClusterSize uint32 // qed only
	TableSize   uint32 // qed only
	Fill        uint32 // pattern id of the whole contents
}

// Geometry is the image under test and its backing chain (nearest first).
type Geometry struct {
	ClusterSize uint32
	TableSize   uint32
	Size        int64
	Backing     []Backing
}

// Workload is a geometry plus the operations to run on it.
type Workload struct {
	Geometry Geometry
	Ops      []Op
}

// ErrInvalid is wrapped by every Validate error.
var ErrInvalid = errors.New("workload: invalid")

// MaxImageSize bounds generated and parsed images (the model and the
// in-memory filesystems hold only what is written, so this is about
// keeping offsets sane, not memory).
const MaxImageSize = 1 << 50

func validQEDGeometry(cluster, table uint32) error {
	if cluster < 4096 || cluster > 64<<20 || bits.OnesCount32(cluster) != 1 {
		return fmt.Errorf("%w: cluster_size %d is not a power of two in 4096..67108864", ErrInvalid, cluster)
	}
	if table < 1 || table > 16 || bits.OnesCount32(table) != 1 {
		return fmt.Errorf("%w: table_size %d is not a power of two in 1..16", ErrInvalid, table)
	}
	return nil
}

// Validate reports the first way w breaks the package invariants.
func (w *Workload) Validate() error {
	g := w.Geometry
	if err := validQEDGeometry(g.ClusterSize, g.TableSize); err != nil {
		return err
	}
	if g.Size < 0 || g.Size%512 != 0 || g.Size > MaxImageSize {
		return fmt.Errorf("%w: image size %d must be a multiple of 512 in 0..%d", ErrInvalid, g.Size, int64(MaxImageSize))
	}
	for i, b := range g.Backing {
		switch b.Format {
		case "qed":
			if err := validQEDGeometry(b.ClusterSize, b.TableSize); err != nil {
				return fmt.Errorf("backing %d: %w", i, err)
			}
		case "raw":
		default:
			return fmt.Errorf("%w: backing %d: format %q is not qed or raw", ErrInvalid, i, b.Format)
		}
		if b.Size < 0 || b.Size%512 != 0 || b.Size > MaxImageSize {
			return fmt.Errorf("%w: backing %d: size %d must be a multiple of 512 in 0..%d", ErrInvalid, i, b.Size, int64(MaxImageSize))
		}
		if b.Fill == 0 {
			return fmt.Errorf("%w: backing %d: fill id must be non-zero", ErrInvalid, i)
		}
	}
	// Ids increase from the deepest backing file to the image and then in
	// op order, so that a model can name each write by its id.
	var lastID uint32
	for i := len(g.Backing) - 1; i >= 0; i-- {
		if g.Backing[i].Fill <= lastID {
			return fmt.Errorf("%w: backing %d: fill id %d must be above the deeper backing's %d", ErrInvalid, i, g.Backing[i].Fill, lastID)
		}
		lastID = g.Backing[i].Fill
	}
	size := g.Size
	var check func(i int, op Op, nested bool) error
	check = func(i int, op Op, nested bool) error {
		switch op.Kind {
		case Write, WriteZeroes, Read:
			if op.Len <= 0 || op.Off < 0 || op.Off > size || op.Len > size-op.Off {
				return fmt.Errorf("%w: op %d: %s [%#x, +%#x) outside the image size %#x", ErrInvalid, i, op.Kind, op.Off, op.Len, size)
			}
			if op.Kind == Write {
				if op.ID == 0 {
					return fmt.Errorf("%w: op %d: write id must be non-zero", ErrInvalid, i)
				}
				if op.ID <= lastID {
					return fmt.Errorf("%w: op %d: write id %d must be above the previous id %d", ErrInvalid, i, op.ID, lastID)
				}
				lastID = op.ID
			}
			if nested && op.Kind == Read {
				return fmt.Errorf("%w: op %d: concurrent groups hold writes only", ErrInvalid, i)
			}
		case Flush, Reopen, Check:
			if nested {
				return fmt.Errorf("%w: op %d: concurrent groups hold writes only", ErrInvalid, i)
			}
		case Resize:
			if nested {
				return fmt.Errorf("%w: op %d: concurrent groups hold writes only", ErrInvalid, i)
			}
			if op.Off < size || op.Off%512 != 0 || op.Off > MaxImageSize {
				return fmt.Errorf("%w: op %d: resize to %#x (from %#x) must grow to a multiple of 512", ErrInvalid, i, op.Off, size)
			}
			size = op.Off
		case Concurrent:
			if nested || len(op.Group) < 1 {
				return fmt.Errorf("%w: op %d: concurrent needs a non-empty group and cannot nest", ErrInvalid, i)
			}
			for _, sub := range op.Group {
				if err := check(i, sub, true); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%w: op %d: unknown kind %d", ErrInvalid, i, op.Kind)
		}
		return nil
	}
	for i, op := range w.Ops {
		if err := check(i, op, false); err != nil {
			return err
		}
	}
	return nil
}

// SizeAt returns the image size in force before op i runs.
func (w *Workload) SizeAt(i int) int64 {
	size := w.Geometry.Size
	for _, op := range w.Ops[:i] {
		if op.Kind == Resize {
			size = op.Off
		}
	}
	return size
}

// Clone returns a deep copy of w.
func (w *Workload) Clone() *Workload {
	c := &Workload{Geometry: w.Geometry}
	c.Geometry.Backing = append([]Backing(nil), w.Geometry.Backing...)
	c.Ops = make([]Op, len(w.Ops))
	for i, op := range w.Ops {
		c.Ops[i] = op
		c.Ops[i].Group = append([]Op(nil), op.Group...)
	}
	return c
}

// FillLen is how many bytes from offset 0 of backing file b hold its fill
// pattern (see the package doc).
func (b Backing) FillLen() int64 {
	if b.Format == "qed" {
		return b.Size / 2 &^ 511
	}
	return b.Size
}
