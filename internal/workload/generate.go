package workload

import (
	"math/rand/v2"
)

// GenConfig bounds randomly generated workloads. The zero value is not
// useful; start from DefaultGenConfig.
type GenConfig struct {
	ClusterSizes []uint32 // image cluster sizes to pick from
	TableSizes   []uint32 // image table sizes to pick from
	// MaxClusters bounds the image size in clusters (sizes are then
	// aligned, unaligned to the cluster, or zero).
	MaxClusters int64
	// BackingChance is the probability of a backing chain (length 1..MaxChain).
	BackingChance float64
	MaxChain      int
	// Ops is the number of top-level operations.
	Ops int
	// Weights of each kind; missing kinds are never generated.
	Weights map[Kind]int
}

// DefaultGenConfig returns the configuration the campaign uses by default:
// small images (so crash states are cheap) whose geometry still exercises
// multi-table layouts, backing chains and unaligned I/O.
func DefaultGenConfig() GenConfig {
	return GenConfig{
		ClusterSizes:  []uint32{4096, 8192, 65536},
		TableSizes:    []uint32{1, 2, 4, 16},
		MaxClusters:   96,
		BackingChance: 0.5,
		MaxChain:      2,
		Ops:           12,
		Weights: map[Kind]int{
			Write: 10, WriteZeroes: 3, Read: 2, Flush: 3, Resize: 1,
			Reopen: 1, Check: 1, Concurrent: 2,
		},
	}
}

// Generate returns a valid random workload; the same rng state gives the
// same workload.
func Generate(rng *rand.Rand, cfg GenConfig) *Workload {
	g := Geometry{
		ClusterSize: cfg.ClusterSizes[rng.IntN(len(cfg.ClusterSizes))],
		TableSize:   cfg.TableSizes[rng.IntN(len(cfg.TableSizes))],
	}
	cs := int64(g.ClusterSize)
	maxC := max(cfg.MaxClusters, 1)
	switch r := rng.IntN(10); {
	case r == 0:
		g.Size = 0
	case r < 6:
		g.Size = (1 + rng.Int64N(maxC)) * cs
	default: // unaligned to the cluster, aligned to 512
		g.Size = rng.Int64N(maxC)*cs + 512*(1+rng.Int64N(cs/512-1))
	}
	nextID := uint32(1)
	id := func() uint32 { nextID++; return nextID - 1 }
	if rng.Float64() < cfg.BackingChance && cfg.MaxChain > 0 {
		n := 1 + rng.IntN(cfg.MaxChain)
		g.Backing = make([]Backing, n)
		for i := n - 1; i >= 0; i-- { // deepest first: ids grow toward the image
			b := Backing{Fill: id()}
			// Backing files are often shorter than the image, sometimes longer.
			b.Size = (rng.Int64N(g.Size/512+8) + 1) * 512
			if rng.IntN(2) == 0 {
				b.Format = "raw"
			} else {
				b.Format = "qed"
				b.ClusterSize = cfg.ClusterSizes[rng.IntN(len(cfg.ClusterSizes))]
				b.TableSize = cfg.TableSizes[rng.IntN(len(cfg.TableSizes))]
			}
			g.Backing[i] = b
		}
	}
	w := &Workload{Geometry: g}
	total := 0
	for _, wt := range cfg.Weights {
		total += wt
	}
	size := g.Size
	for len(w.Ops) < cfg.Ops && total > 0 {
		k := pickKind(rng, cfg.Weights, total)
		switch k {
		case Write, WriteZeroes, Read:
			if size == 0 {
				continue
			}
			off, n := extent(rng, size, cs)
			op := Op{Kind: k, Off: off, Len: n}
			if k == Write {
				op.ID = id()
			}
			w.Ops = append(w.Ops, op)
		case Resize:
			grow := (1 + rng.Int64N(4)) * 512 * (1 + rng.Int64N(cs/512))
			if size+grow > MaxImageSize {
				continue
			}
			size += grow
			w.Ops = append(w.Ops, Op{Kind: Resize, Off: size})
		case Concurrent:
			if size == 0 {
				continue
			}
			n := 2 + rng.IntN(3)
			op := Op{Kind: Concurrent}
			for range n {
				off, l := extent(rng, size, cs)
				if rng.IntN(4) == 0 {
					op.Group = append(op.Group, Op{Kind: WriteZeroes, Off: off, Len: l})
				} else {
					op.Group = append(op.Group, Op{Kind: Write, Off: off, Len: l, ID: id()})
				}
			}
			w.Ops = append(w.Ops, op)
		default:
			w.Ops = append(w.Ops, Op{Kind: k})
		}
	}
	return w
}

func pickKind(rng *rand.Rand, weights map[Kind]int, total int) Kind {
	r := rng.IntN(total)
	for k := Write; k <= Concurrent; k++ { // fixed order: deterministic
		if r < weights[k] {
			return k
		}
		r -= weights[k]
	}
	return Flush
}

// extent picks a range inside [0, size): cluster-aligned, sector-aligned
// or byte-unaligned, short or spanning clusters, biased toward a few hot
// clusters so that operations overlap.
func extent(rng *rand.Rand, size, cs int64) (off, n int64) {
	hot := min(size, 4*cs)
	span := size
	if rng.IntN(2) == 0 {
		span = hot
	}
	switch rng.IntN(3) {
	case 0: // cluster-aligned
		off = rng.Int64N(max(span/cs, 1)) * cs
		n = cs * (1 + rng.Int64N(2))
	case 1: // sector-aligned
		off = rng.Int64N(max(span/512, 1)) * 512
		n = 512 * (1 + rng.Int64N(2*cs/512))
	default: // unaligned
		off = rng.Int64N(span)
		n = 1 + rng.Int64N(cs+cs/2)
	}
	off = min(off, size-1)
	n = min(n, size-off)
	return off, n
}
