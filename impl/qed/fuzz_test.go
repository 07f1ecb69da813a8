package qed

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"
)

// fuzzReadBudget bounds how many guest bytes one fuzz input may read.
const fuzzReadBudget = 1 << 20

// FuzzOpen feeds arbitrary bytes as an image: open read-only and
// writable, check, map and read everything mapped. It asserts no panic,
// and that a byte written through a clean writable open reads back.
//
// The input is the image in a sparse encoding (see expandSparse): every
// byte string decodes to some file, but a valid 4 KiB-cluster image, mostly
// zeros, is ~100 bytes instead of 20 KiB. Raw images made the fuzzing
// engine spend its whole budget minimising large inputs.
func FuzzOpen(f *testing.F) {
	f.Add(encodeSparse(validImage(f, CreateOptions{})))
	f.Add(encodeSparse(validImage(f, CreateOptions{Size: 40 * cs4k, TableSize: 1}, 0, 3*cs4k+100, 39*cs4k)))
	f.Add(encodeSparse(validImage(f, CreateOptions{BackingFile: "base.raw", BackingFormat: "raw"}, cs4k)))
	f.Add(encodeSparse(validImage(f, CreateOptions{BackingFile: "base.raw"}, 0)))
	nc := validImage(f, CreateOptions{}, 0, 5*cs4k)
	f.Add(encodeSparse(messWith(nc, offFeatures, 8, FeatureNeedCheck)))
	seeds, _ := filepath.Glob("testdata/fuzz/*.qed")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(encodeSparse(b))
		}
	}
	f.Fuzz(func(t *testing.T, enc []byte) { fuzzImage(t, expandSparse(enc)) })
}

// maxSparseImage bounds a decoded fuzz image.
const maxSparseImage = 4 << 20

// expandSparse decodes a sparse image: a sequence of tokens, each a
// literal count byte n, n literal bytes, then a little-endian u16 count of
// 16-byte zero blocks. Truncated tokens end the image.
func expandSparse(enc []byte) []byte {
	var out []byte
	for len(enc) > 0 && len(out) < maxSparseImage {
		n := int(enc[0])
		enc = enc[1:]
		n = min(n, len(enc))
		out = append(out, enc[:n]...)
		enc = enc[n:]
		if len(enc) < 2 {
			break
		}
		z := int(binary.LittleEndian.Uint16(enc)) * 16
		enc = enc[2:]
		out = append(out, make([]byte, min(z, maxSparseImage-len(out)))...)
	}
	return out
}

// encodeSparse is the inverse of expandSparse.
func encodeSparse(img []byte) []byte {
	var enc []byte
	for len(img) > 0 {
		// Literal run: up to 255 bytes, stopping at a 16-byte zero block.
		n := 0
		for n < len(img) && n < 255 {
			if n+16 <= len(img) && isZero(img[n:n+16]) {
				break
			}
			n++
		}
		enc = append(enc, byte(n))
		enc = append(enc, img[:n]...)
		img = img[n:]
		z := 0
		for z < 0xffff && len(img) >= 16 && isZero(img[:16]) {
			img = img[16:]
			z++
		}
		enc = binary.LittleEndian.AppendUint16(enc, uint16(z))
	}
	return enc
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// fuzzImage is the body of FuzzOpen on decoded image bytes.
func fuzzImage(t *testing.T, img []byte) {
	{
		fs := afero.NewMemMapFs()
		afero.WriteFile(fs, "/base.raw", []byte("backing data"), 0o644)
		afero.WriteFile(fs, "/f.qed", img, 0o644)

		if im, err := Open(fs, "/f.qed", OpenOptions{ReadOnly: true, IdleClearDelay: -1}); err == nil {
			im.Check(false)
			exerciseReads(t, im)
			if _, err := im.WriteAt([]byte{1}, 0); err == nil {
				t.Fatal("write succeeded on a read-only image")
			}
			im.Close()
		}
		if im, err := Open(fs, "/f.qed", OpenOptions{IdleClearDelay: -1}); err == nil {
			rep, err := im.Check(false)
			exerciseReads(t, im)
			if err == nil && rep.Corruptions == 0 && im.Size() > 0 {
				off := im.Size() / 2
				p := []byte{0xa5, 0x5a}[:min(2, im.Size()-off)]
				if _, err := im.WriteAt(p, off); err == nil {
					q := make([]byte, len(p))
					if _, err := im.ReadAt(q, off); err != nil || !bytes.Equal(p, q) {
						t.Fatalf("read back %x, %v after writing %x at %d", q, err, p, off)
					}
				}
				im.WriteZeroes(0, min(im.Size(), 3*int64(im.geo.clusterSize)/2))
			}
			im.Close()
		}
	}
}

// exerciseReads maps the image and reads mapped data, the start and the
// end, within fuzzReadBudget.
func exerciseReads(t *testing.T, im *Image) {
	budget := int64(fuzzReadBudget)
	read := func(off, n int64) {
		n = min(n, budget, im.Size()-off)
		if n <= 0 || off < 0 {
			return
		}
		budget -= n
		im.ReadAt(make([]byte, n), off)
	}
	exts, _ := im.Map()
	for _, e := range exts {
		if e.Kind == ExtentData {
			read(e.Start, e.Length)
		}
	}
	read(0, 64<<10)
	read(im.Size()-64<<10, 64<<10)
}

func TestSparseEncodingRoundTrip(t *testing.T) {
	for _, img := range [][]byte{
		nil, {1}, make([]byte, 17), validImage(t, CreateOptions{}, 0, 5*cs4k+3),
		append(make([]byte, 100), 1, 2, 3),
	} {
		enc := encodeSparse(img)
		if got := expandSparse(enc); !bytes.Equal(got, img) {
			t.Fatalf("round trip of %d bytes gave %d bytes", len(img), len(got))
		}
		if len(img) > 1000 && len(enc) > len(img)/20 {
			t.Fatalf("encoding of %d bytes is %d bytes", len(img), len(enc))
		}
	}
}
