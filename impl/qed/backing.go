package qed

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/afero"
)

// backingFile is the read side of a backing image: a raw file or a QED
// image. Reads past its end return zeros, as the spec requires for backing
// files shorter than the image they back.
type backingFile interface {
	readAt(p []byte, off int64) error
	// length is the guest size of the backing file: reads past it are zeros.
	length() int64
	close() error
	// files lists the paths of the backing file and its own chain.
	files() []string
}

// rawBacking is a backing file read as raw bytes.
type rawBacking struct {
	f    afero.File
	path string
	size int64
}

func (r *rawBacking) readAt(p []byte, off int64) error {
	n := 0
	if off < r.size {
		want := int64(len(p))
		if off+want > r.size {
			want = r.size - off
		}
		var err error
		n, err = r.f.ReadAt(p[:want], off)
		if err != nil && !(errors.Is(err, io.EOF) && n == int(want)) {
			return fileErr(r.path, fmt.Sprintf("reading backing file at %d", off), err)
		}
	}
	clear(p[n:])
	return nil
}

func (r *rawBacking) close() error { return r.f.Close() }

func (r *rawBacking) length() int64 { return r.size }

func (r *rawBacking) files() []string { return []string{r.path} }

// qedBacking is a backing file that is itself a QED image.
type qedBacking struct{ im *Image }

func (q *qedBacking) readAt(p []byte, off int64) error {
	size := q.im.Size()
	n := 0
	if off < size {
		want := int64(len(p))
		if off+want > size {
			want = size - off
		}
		if _, err := q.im.ReadAt(p[:want], off); err != nil {
			return err
		}
		n = int(want)
	}
	clear(p[n:])
	return nil
}

func (q *qedBacking) close() error { return q.im.Close() }

func (q *qedBacking) length() int64 { return q.im.Size() }

func (q *qedBacking) files() []string { return q.im.Files() }

// chain tracks the images opened while following a backing chain, to
// refuse loops and absurd depth.
type chain struct {
	visited  map[string]bool
	depth    int
	maxDepth int
}

// sameAsVisited reports whether p is, by device and inode (through hard
// links and symlinks), a file already in the chain. Only filesystems whose
// FileInfo os.SameFile understands (the OS's) can say yes; this runs only
// for images with a backing file.
func (ch *chain) sameAsVisited(fs afero.Fs, p string) bool {
	sp, err := fs.Stat(p)
	if err != nil {
		return false
	}
	for v := range ch.visited {
		if sv, err := fs.Stat(v); err == nil && os.SameFile(sp, sv) {
			return true
		}
	}
	return false
}

// resolveBacking returns the path of the backing file named by the image
// at imgPath: absolute names as they are, relative names against the
// directory of the naming image.
func resolveBacking(imgPath, name string) string {
	if filepath.IsAbs(name) {
		return filepath.Clean(name)
	}
	return filepath.Join(filepath.Dir(imgPath), name)
}

// openBacking opens the backing file of h (named by the image at imgPath),
// probing its format unless FeatureBackingNoProbe says raw.
func openBacking(fs afero.Fs, imgPath string, h *Header, ch *chain, opts OpenOptions) (backingFile, error) {
	p := resolveBacking(imgPath, h.BackingFilename)
	if ch.visited[p] || ch.sameAsVisited(fs, p) {
		return nil, fmt.Errorf("%w: %s is named again by %s", ErrBackingLoop, p, imgPath)
	}
	if ch.depth+1 > ch.maxDepth {
		return nil, fmt.Errorf("%w: more than %d backing files below %s", ErrBackingDepth, ch.maxDepth, imgPath)
	}
	f, err := fs.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return nil, fileErr(imgPath, "backing file", fileErr(p, "", err))
	}
	isQED := false
	if h.Features&FeatureBackingNoProbe == 0 {
		// A file too short for the magic is raw; a read that fails is an
		// error, not a raw file: taking a qed backing file whose probe
		// failed (an EIO) for raw would read its header and tables as the
		// guest's data (found by a campaign's fault sweep of a reopen).
		var magic [4]byte
		n, err := f.ReadAt(magic[:], 0)
		if err != nil && n < len(magic) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			f.Close()
			return nil, fileErr(imgPath, "backing file", fileErr(p, "probing the format", err))
		}
		isQED = n == 4 && decodeMagic(magic[:]) == Magic
	}
	writable := opts.writeDepth == ch.depth+1
	if !isQED {
		// A raw backing file is locked as QEMU locks it: read-only (or
		// read-write for Commit's base).
		ro := opts
		ro.ReadOnly = !writable
		ro.ForceShare = ro.ForceShare || (opts.shareChain && !writable)
		if writable {
			f.Close()
			if f, err = fs.OpenFile(p, os.O_RDWR, 0); err != nil {
				return nil, fileErr(imgPath, "backing file", fileErr(p, "", err))
			}
		}
		if err := lockFile(f, p, lockMode(ro), opts.NoLock); err != nil {
			f.Close()
			return nil, fileErr(imgPath, "backing file", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fileErr(imgPath, "backing file", fileErr(p, "", err))
		}
		return &rawBacking{f: guardFile(f), path: p, size: st.Size()}, nil
	}
	f.Close()
	sub := &chain{visited: ch.visited, depth: ch.depth + 1, maxDepth: ch.maxDepth}
	sub.visited[p] = true
	bopts := opts
	bopts.ReadOnly = !writable
	if writable {
		bopts.ForceShare = false
	} else if opts.shareChain {
		bopts.ForceShare = true
	}
	im, err := openImage(fs, p, bopts, sub)
	if err != nil {
		return nil, fileErr(imgPath, "backing file", err)
	}
	return &qedBacking{im: im}, nil
}
