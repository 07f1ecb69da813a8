package campaign

import (
	"hash/maphash"
	"io"
	"path"

	"github.com/spf13/afero"
)

// stateKey names a crash state's bytes (every file of Dir: name, length,
// contents) together with the model snapshot it is judged against. The
// oracle is deterministic, so two states with the same key get the same
// verdict: judge() runs the oracle once per key and counts the others as
// checked (Report.OracleRuns counts the oracle runs). The hash is 128 bits
// (two independently seeded maphashes), so a collision, which could hide a
// failure, is out of reach (~2^-64 per pair).
type stateKey struct {
	snap   int
	h1, h2 uint64
}

// stateHasher hashes crash states, reusing its buffer.
type stateHasher struct {
	s1, s2 maphash.Seed
	buf    []byte
}

func newStateHasher() *stateHasher {
	return &stateHasher{s1: maphash.MakeSeed(), s2: maphash.MakeSeed()}
}

// key returns the key of the state in fs, or ok=false if it cannot be
// read (the oracle will then say why).
func (sh *stateHasher) key(fs afero.Fs, snap int) (stateKey, bool) {
	infos, err := afero.ReadDir(fs, Dir)
	if err != nil {
		return stateKey{}, false
	}
	var h1, h2 maphash.Hash
	h1.SetSeed(sh.s1)
	h2.SetSeed(sh.s2)
	for _, fi := range infos { // sorted by name
		if fi.IsDir() {
			continue
		}
		f, err := fs.Open(path.Join(Dir, fi.Name()))
		if err != nil {
			return stateKey{}, false
		}
		n := fi.Size()
		if int64(cap(sh.buf)) < n {
			sh.buf = make([]byte, n)
		}
		b := sh.buf[:n]
		_, err = f.ReadAt(b, 0)
		f.Close()
		if err != nil && err != io.EOF {
			return stateKey{}, false
		}
		for _, h := range []*maphash.Hash{&h1, &h2} {
			h.WriteString(fi.Name())
			maphash.WriteComparable(h, n)
			h.Write(b)
		}
	}
	return stateKey{snap: snap, h1: h1.Sum64(), h2: h2.Sum64()}, true
}
