package crashsim

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
)

// Image is an immutable set of files and directories: the durable base a
// crash point starts from, the state a filesystem was created from, or a
// plain fixture. Images share pages with the filesystems they came from
// and cost O(entries) to create from them.
type Image struct {
	names  map[string]uint64 // cleaned path -> file id ("/" is implicit)
	files  map[uint64]imgFile
	nextID uint64 // the id the next created file gets
}

type imgFile struct {
	dir bool
	c   content
}

// clean maps any afero-style name to the canonical absolute slash path.
func clean(name string) string { return path.Clean("/" + filepath.ToSlash(name)) }

// parent returns the directory holding the cleaned path p.
func parent(p string) string { return path.Dir(p) }

// EmptyImage returns an image with only the root directory.
func EmptyImage() *Image {
	return &Image{names: map[string]uint64{}, files: map[uint64]imgFile{}, nextID: 1}
}

// NewImage returns an image holding the given files (name -> contents),
// creating their parent directories. Zero pages are stored as holes.
func NewImage(files map[string][]byte) (*Image, error) {
	img := EmptyImage()
	gen := newGen()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := clean(name)
		if p == "/" {
			return nil, fmt.Errorf("crashsim: NewImage: %q is the root directory", name)
		}
		for d := parent(p); d != "/"; d = parent(d) {
			id, ok := img.names[d]
			if !ok {
				img.names[d] = img.nextID
				img.files[img.nextID] = imgFile{dir: true}
				img.nextID++
			} else if !img.files[id].dir {
				return nil, fmt.Errorf("crashsim: NewImage: %q: parent %q is a file", name, d)
			}
		}
		if _, ok := img.names[p]; ok {
			return nil, fmt.Errorf("crashsim: NewImage: %q given twice or used as a directory", name)
		}
		var c content
		data := files[name]
		for off := 0; off < len(data); off += PageSize {
			page := data[off:min(off+PageSize, len(data))]
			if !allZero(page) {
				c.writeAt(page, int64(off), gen)
			}
		}
		c.size = int64(len(data))
		img.names[p] = img.nextID
		img.files[img.nextID] = imgFile{c: c}
		img.nextID++
	}
	return img, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Paths returns every file and directory in the image, sorted.
func (img *Image) Paths() []string { return slices.Sorted(maps.Keys(img.names)) }

// ReadFile returns a copy of a file's contents.
func (img *Image) ReadFile(name string) ([]byte, error) {
	id, ok := img.names[clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	f := img.files[id]
	if f.dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	b := make([]byte, f.c.size)
	f.c.readAt(b, 0)
	return b, nil
}

// Size returns a file's length.
func (img *Image) Size(name string) (int64, error) {
	id, ok := img.names[clean(name)]
	if !ok {
		return 0, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return img.files[id].c.size, nil
}

// reachable keeps only the entries whose every ancestor is a directory of
// the map: what a crash leaves visible when a directory entry became
// durable but its parent's entry did not.
func reachable(names map[string]uint64, files func(uint64) (dir bool)) map[string]uint64 {
	out := make(map[string]uint64, len(names))
	for p, id := range names {
		ok := true
		for d := parent(p); d != "/"; d = parent(d) {
			did, found := names[d]
			if !found || !files(did) {
				ok = false
				break
			}
		}
		if ok {
			out[p] = id
		}
	}

	return out
}
