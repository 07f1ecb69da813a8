package workload

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/qedtorture/qedtorture/model"
)

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
	// Craft patches the created image's header and layout (craft.go).
	Craft Craft
	// L2Cache, when positive, is the L2 cache size in tables every open
	// of the image asks for (target.OpenOptions.L2CacheTables, a hint:
	// impl/qed honours it), so images with more L2 tables in use than
	// that evict tables and read them back (image line key l2_cache=N,
	// 1..MaxL2Cache); 0: the target's default.
	L2Cache int
}

// MaxL2Cache bounds Geometry.L2Cache (impl/qed's default cache holds 64
// tables).
const MaxL2Cache = 64

// Workload is a geometry plus the operations to run on it.
type Workload struct {
	Geometry Geometry
	Ops      []Op
}

// ErrInvalid is wrapped by every Validate error.
var ErrInvalid = errors.New("workload: invalid")

// MaxImageSize bounds generated and parsed images and their backing
// files: the model's largest disk (model.MaxSize, 8 TiB), so every image
// a workload names can be modelled (the in-memory filesystems hold only
// what is written, so this is not about memory). It was 2^50 before: a
// geometry of 4 MiB clusters drew images and backing files of up to
// 32 TiB, whose setup the model refused, and the campaign reported that
// as the target's setup failure.
const MaxImageSize = model.MaxSize

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
	if g.L2Cache < 0 || g.L2Cache > MaxL2Cache {
		return fmt.Errorf("%w: l2_cache %d not in 0..%d", ErrInvalid, g.L2Cache, MaxL2Cache)
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
	if err := g.Craft.validate(g); err != nil {
		return err
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
	c := Cursor{Size: g.Size, LastID: lastID, Backing: len(g.Backing) > 0, Chain: CommitChain(g.Backing)}
	for i, op := range w.Ops {
		if err := c.Step(i, op); err != nil {
			return err
		}
	}
	return nil
}

// checkOp checks one op (a top-level op or a group member) at v.
func checkOp(op Op, v *validator) error {
	s := op.Kind.spec()
	if s == nil {
		return fmt.Errorf("%w: op %d: unknown kind %d", ErrInvalid, v.i, op.Kind)
	}
	return s.check(op, v)
}

// Cursor is what the validity of the next op depends on: the image size
// in force and the last write (or backing fill) id. Validate walks a
// workload with one; the state machine keeps one per state, so that
// neither needs to know what each kind checks or changes.
type Cursor struct {
	Size   int64
	LastID uint32
	// Backing: the image has a backing file (the geometry's, or the one
	// a rebase named); Committed: a commit ran (rebase-unsafe's copy,
	// made by the setup, would no longer read what the backing file
	// reads). Only the image commands look at them.
	Backing, Committed bool
	// Chain is the depth of the deepest file of the geometry's backing
	// chain a "commit -b N" may name (CommitChain), 0 once a rebase
	// changed the chain (or where the caller does not track it: no
	// commit -b is then valid or drawn).
	Chain int
}

// CommitChain is the depth (1 the image's own backing file) of the
// deepest file of chain a commit may commit into: the chain down to its
// first raw file (a commit's intermediate files are QED images, opened
// to list what they allocate), 0 without a backing file.
func CommitChain(chain []Backing) int {
	for i, b := range chain {
		if b.Format != "qed" {
			return i + 1
		}
	}
	return len(chain)
}

// Step checks op as Validate checks the op at index i (i names it in the
// error) and, when it is valid, moves c past it: the size it leaves, its
// last write id. An invalid op leaves c as it was.
func (c *Cursor) Step(i int, op Op) error {
	v := validator{i: i, size: c.Size, lastID: c.LastID, backing: c.Backing, committed: c.Committed, chain: c.Chain}
	if err := checkOp(op, &v); err != nil {
		return err
	}
	c.Size, c.LastID, c.Backing, c.Committed, c.Chain = v.size, v.lastID, v.backing, v.committed, v.chain
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

// Sizes returns the image size in force before each op (SizeAt of every
// op, in one pass).
func (w *Workload) Sizes() []int64 {
	size := w.Geometry.Size
	out := make([]int64, len(w.Ops))
	for i, op := range w.Ops {
		out[i] = size
		if op.Kind == Resize {
			size = op.Off
		}
	}
	return out
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
