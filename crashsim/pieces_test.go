package crashsim

import (
	"bytes"
	"math/rand/v2"
	"path"
	"testing"

	"github.com/spf13/afero"
)

// TestAppendPiecesRebuilds: for random runs of unaligned writes,
// truncates and discards over two files (one renamed durably while a
// write to it was pending), every state of every model at every crash
// point is the durable image with its AppendPieces written over it in
// order, up to the state's lengths; a write's kept bytes are the op's own
// memory unless marked Garbage, Len of them.
func TestAppendPiecesRebuilds(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 3))
	models := append(Models(), Model{Base: Prefix, Size: true}, Model{Base: Torn, Sector: 512, Garbage: true, Size: true})
	states := 0
	for round := range 12 {
		fsys := New(Options{ImplicitDirSync: true})
		must(t, fsys.Mkdir("/d", 0o755))
		names := []string{"/d/a", "/d/b"}
		files := []afero.File{mustCreate(t, fsys, names[0]), mustCreate(t, fsys, names[1])}
		for i := range 12 {
			if round%2 == 0 && i == 6 {
				must(t, fsys.Rename("/d/b", "/d/c"))
				names[1] = "/d/c"
				continue
			}
			fi := r.IntN(2)
			f := files[fi]
			switch r.IntN(6) {
			case 0:
				must(t, f.Truncate(r.Int64N(20000)))
			case 1:
				must(t, fsys.Apply(Op{Kind: OpDiscard, Path: names[fi], Off: r.Int64N(20000), Size: r.Int64N(6000)}))
			case 2:
				must(t, f.Sync())
			default:
				b := make([]byte, 1+r.IntN(9000))
				for j := range b {
					b[j] = byte(r.IntN(255) + 1)
				}
				mustWriteAt(t, f, string(b), r.Int64N(20000))
			}
		}
		tr := fsys.Trace()
		for k := int64(1); k <= int64(len(tr.Ops)); k++ {
			rf, err := fsys.Start().Replay(tr, k, Options{ImplicitDirSync: true})
			must(t, err)
			p := rf.Crash()
			durable := p.Durable().NewFS(Options{})
			for _, m := range models {
				for id := range p.IDs(m, EnumOptions{Bound: 16, Samples: 6, Seed: seed + uint64(round)}) {
					st, err := p.State(id)
					must(t, err)
					pieces, err := p.AppendPieces(nil, id)
					must(t, err)
					want := map[string][]byte{}
					for _, n := range names {
						if c := contentOf(t, durable, n); c != absent {
							want[n] = []byte(c)
						}
					}
					for _, pc := range pieces {
						o := p.ops[pc.Op]
						if pc.Data != nil && !pc.Garbage && !sameBytes(pc.Data, o.Data, pc.Off-o.Off) {
							t.Fatalf("round %d %s: piece %+v: data is not the op's own bytes", round, id, pc)
						}
						if pc.Data != nil && int64(len(pc.Data)) != pc.Len {
							t.Fatalf("round %d %s: piece at %d of %d bytes holds %d", round, id, pc.Off, pc.Len, len(pc.Data))
						}
						b := want[pc.Path]
						end := pc.Off + pc.Len
						if pc.Data == nil {
							end = min(end, int64(len(b)))
						}
						if end > int64(len(b)) {
							b = append(b, make([]byte, end-int64(len(b)))...)
						}
						if pc.Data != nil {
							copy(b[pc.Off:end], pc.Data)
						} else if pc.Off < end {
							clear(b[pc.Off:end])
						}
						want[pc.Path] = b
					}
					for _, n := range names {
						got := contentOf(t, st, n)
						w, ok := want[n]
						if !ok {
							if got != absent {
								t.Fatalf("round %d %s: %s exists", round, id, n)
							}
							continue
						}
						if int64(len(got)) > int64(len(w)) {
							w = append(w, make([]byte, len(got)-len(w))...)
						}
						if !bytes.Equal([]byte(got), w[:len(got)]) || !allZeroBytes(w[len(got):]) {
							t.Fatalf("round %d %s: %s: the pieces do not rebuild the state (%d pieces)", round, id, path.Base(n), len(pieces))
						}
					}
					states++
				}
			}
		}
	}
	t.Logf("%d states rebuilt", states)
}

func allZeroBytes(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

// TestAppendPiecesBadID: an id of another point or with an out-of-range
// ordinal is refused.
func TestAppendPiecesBadID(t *testing.T) {
	fsys := New(Options{})
	f := mustCreate(t, fsys, "/a")
	mustWriteAt(t, f, "x", 0)
	p := fsys.Crash()
	if _, err := p.AppendPieces(nil, StateID{K: p.K() + 1, Model: Model{Base: Subset}}); err == nil {
		t.Fatal("another point's id accepted")
	}
	if _, err := p.AppendPieces(nil, StateID{K: p.K(), Model: Model{Base: Subset}, Ordinal: 99}); err == nil {
		t.Fatal("an out-of-range ordinal accepted")
	}
}
