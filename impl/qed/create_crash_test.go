package qed_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
)

// strongestModels are every crash model crashsim has, and the torn,
// garbage-filled, size-changing one on top: the strongest model a crash
// during Create is proven under.
func strongestModels() []crashsim.Model {
	return append(crashsim.Models(), crashsim.Model{Base: crashsim.Torn, Sector: 512, Garbage: true, Size: true})
}

// TestCreateCrash proves Create's ordering (image.go, Create and
// writeNewImage) under real directory semantics and the strongest crash
// model, at every operation index: after a crash during the creation of a
// new image the image is absent, or it opens (writable) as a valid image
// of the requested geometry that reads the backing file's data or zeros,
// and checks clean; never a half-written header that Open accepts. Over
// an existing image (replaced in place after its lock is taken, as
// qemu-img create does: no rename), the old image survives unchanged, or
// what is left is a file Open refuses (the old image was being destroyed),
// or the new image complete and empty: the old image's tables are never
// read under the new header.
func TestCreateCrash(t *testing.T) {
	const size = 64 << 10
	raw := pattern(0x5a, 24<<10)
	cases := []struct {
		name  string
		start func(fs afero.Fs)
		opts  qed.CreateOptions
	}{
		{"new", nil, qed.CreateOptions{Size: size, ClusterSize: opsCluster, TableSize: 1}},
		{"new-over-raw-backing", func(fs afero.Fs) {
			if err := afero.WriteFile(fs, "/d/base.raw", raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}, qed.CreateOptions{Size: size, ClusterSize: opsCluster, TableSize: 2, BackingFile: "base.raw", BackingFormat: "raw"}},
		{"over-an-existing-image", func(fs afero.Fs) {
			mustCreate(t, fs, "/d/img.qed", qed.CreateOptions{Size: size, TableSize: 1}, map[int64][]byte{0: pattern(7, 8192), 40960: pattern(9, 4096)})
		}, qed.CreateOptions{Size: size, ClusterSize: opsCluster, TableSize: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := setup(t, func(fs afero.Fs) {
				if err := afero.WriteFile(fs, "/d/other", nil, 0o644); err != nil { // the directory exists
					t.Fatal(err)
				}
				if c.start != nil {
					c.start(fs)
				}
			})
			var old []byte
			if b, err := start.ReadFile("/d/img.qed"); err == nil {
				old = b
			}
			want := make([]byte, size)
			if c.opts.BackingFile != "" {
				copy(want, raw)
			}
			o := crashsim.ExploreOptions{Start: start, AllPoints: true, Models: strongestModels(), Bound: 4096, Samples: 64, Seed: 1}
			rep, err := crashsim.Explore(func(fs *crashsim.FS) error {
				return qed.Create(fs, "/d/img.qed", c.opts)
			}, o, func(s crashsim.State) error { return checkCreated(s.FS, c.opts, want, old) })
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Err(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d crash points, %d states, none failing", rep.Points, rep.States)
		})
	}
}

// checkCreated judges one crash state of a Create (see TestCreateCrash).
func checkCreated(fsys afero.Fs, o qed.CreateOptions, want, old []byte) error {
	b, err := afero.ReadFile(fsys, "/d/img.qed")
	if errors.Is(err, fs.ErrNotExist) {
		if old != nil {
			return errors.New("the existing image vanished")
		}
		return nil // absent: the creation never became durable
	}
	if err != nil {
		return err
	}
	if old != nil && bytes.Equal(b, old) {
		return nil // the old image, untouched
	}
	im, err := qed.Open(fsys, "/d/img.qed", qed.OpenOptions{IdleClearDelay: -1})
	if err != nil && old != nil {
		return nil // the old image destroyed, the new one not written: refused
	}
	if err != nil {
		return fmt.Errorf("a file of %d bytes is left under the image's name and Open refuses it: %w", len(b), err)
	}
	defer im.Close()
	h := im.Header()
	if h.ClusterSize != o.ClusterSize || h.TableSize != o.TableSize || h.ImageSize != uint64(o.Size) || h.BackingFilename != o.BackingFile {
		return fmt.Errorf("Open accepts an image of another geometry: %+v", h)
	}
	got := make([]byte, len(want))
	if _, err := im.ReadAt(got, 0); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		return fmt.Errorf("the new image has data: guest byte %#x reads %#x, want %#x (the backing file's or zero)", i, got[i], want[i])
	}
	rep, err := im.Check(false)
	if err != nil {
		return err
	}
	if rep.Corruptions > 0 {
		return fmt.Errorf("the new image is corrupt: %v", rep.Problems)
	}
	return nil
}
