package workload

import (
	"fmt"
	"path"
	"sync"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// SetupCache keeps the bytes NewExecCached generates for one workload's
// setup: each raw backing file's fill and the files its image commands
// act on (a QED backing file's fill is written through the target under
// test, and is generated afresh each time). A fault sweep records the same workload again and again; with a
// cache, every setup after the first writes the same bytes without
// generating them again (model.Fill, and reading the backing chain's
// model whole for the image commands' files, were most of a setup's
// cost).
//
// Guarantees:
//   - a setup through a cache writes the same files, with the same
//     operations in the same order, as one without: the cache changes
//     how much is computed, never what is written;
//   - a cache holds one workload's bytes: used with another workload (by
//     its geometry and ops, which are all the setup's bytes depend on),
//     it starts over;
//   - the bytes are never changed once generated, so that files of
//     several recordings may share them (frozen writes, see writeRaw);
//   - it is safe for concurrent use.
type SetupCache struct {
	mu      sync.Mutex
	key     string
	backing map[int][]byte // chain index -> its FillLen bytes of fill
	files   []setupFile    // the image commands' files, in emit order
	walked  bool           // files is complete
}

// setupFile is one file walkImageFiles emits.
type setupFile struct {
	op   int
	name string
	data []byte
}

// use makes c hold w's bytes (clearing what another workload left) and
// locks it; the caller unlocks c.mu.
func (c *SetupCache) use(w *Workload) {
	c.mu.Lock()
	if k := fmt.Sprintf("%+v|%+v", w.Geometry, w.Ops); k != c.key {
		c.key, c.backing, c.files, c.walked = k, map[int][]byte{}, nil, false
	}
}

// fill returns backing file i's fill bytes (b.FillLen() of b.Fill's
// pattern), from the cache when c is not nil.
func (c *SetupCache) fill(i int, b Backing) []byte {
	if c != nil {
		if buf, ok := c.backing[i]; ok {
			return buf
		}
	}
	buf := make([]byte, b.FillLen())
	model.Fill(buf, uint64(b.Fill), 0)
	if c != nil {
		c.backing[i] = buf
	}
	return buf
}

// NewExecCached is NewExec with the setup's bytes taken from c (nil: none
// kept), filled on its first use for w.
func NewExecCached(t target.Target, fs afero.Fs, dir string, w *Workload, c *SetupCache) (*Exec, error) {
	if c != nil {
		c.use(w)
		defer c.mu.Unlock()
	}
	return newExec(t, fs, dir, w, c)
}

// makeImageFiles writes the files the image commands of w act on (see
// imagecmds.go) into dir; backing is the model of the image's backing
// file (nil for none). With a cache, they are walked once.
func makeImageFiles(fs afero.Fs, dir string, w *Workload, backing *model.Disk, c *SetupCache) error {
	write := func(i int, name string, data []byte) error {
		if err := writeRaw(fs, path.Join(dir, name), data, int64(len(data))); err != nil {
			return fmt.Errorf("workload: setup of op %d: %w", i, err)
		}
		return nil
	}
	if c != nil && c.walked {
		for _, f := range c.files {
			if err := write(f.op, f.name, f.data); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := walkImageFiles(w, backing, len(w.Ops), false, func(i int, name string, data []byte) error {
		if c != nil {
			c.files = append(c.files, setupFile{i, name, data})
		}
		return write(i, name, data)
	})
	if c != nil {
		// A walk stopped by an error is not kept: the next setup walks
		// again (and fails the same way).
		c.walked = err == nil
		if err != nil {
			c.files = nil
		}
	}
	return err
}
