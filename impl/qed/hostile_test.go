package qed

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"
)

// validImage returns the bytes of a small valid image (4 KiB clusters).
func validImage(t testing.TB, co CreateOptions, writes ...int64) []byte {
	t.Helper()
	fs := afero.NewMemMapFs()
	if co.ClusterSize == 0 {
		co.ClusterSize = cs4k
	}
	if co.Size == 0 {
		co.Size = 64 * cs4k
	}
	afero.WriteFile(fs, "/base.raw", []byte("backing"), 0o644)
	im := mustCreate(t, fs, "/v.qed", co, OpenOptions{})
	for _, off := range writes {
		if _, err := im.WriteAt([]byte{0xee, 0xff}, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := afero.ReadFile(fs, "/v.qed")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// messWith returns a copy of b with a little-endian value of size bytes
// poked at off (zip's messWith, for QED headers).
func messWith(b []byte, off, size int, v uint64) []byte {
	c := append([]byte(nil), b...)
	var w [8]byte
	binary.LittleEndian.PutUint64(w[:], v)
	copy(c[off:off+size], w[:size])
	return c
}

func TestHostileHeaders(t *testing.T) {
	good := validImage(t, CreateOptions{}, 0)
	withName := validImage(t, CreateOptions{BackingFile: "base.raw", BackingFormat: "raw"}, 0)
	cases := []struct {
		name  string
		img   []byte
		field string
		want  error
	}{
		{"empty file", nil, "header", ErrInvalidHeader},
		{"truncated header", good[:40], "header", ErrInvalidHeader},
		{"bad magic", messWith(good, offMagic, 4, 0x12345678), "magic", ErrNotQED},
		{"unknown feature", messWith(good, offFeatures, 8, 0x8|FeatureBackingFile), "features", ErrUnsupportedFeature},
		{"cluster size 0", messWith(good, offClusterSize, 4, 0), "cluster_size", ErrInvalidHeader},
		{"cluster size not pow2", messWith(good, offClusterSize, 4, 3*4096), "cluster_size", ErrInvalidHeader},
		{"cluster size huge", messWith(good, offClusterSize, 4, 1<<31), "cluster_size", ErrInvalidHeader},
		{"table size 0", messWith(good, offTableSize, 4, 0), "table_size", ErrInvalidHeader},
		{"table size 3", messWith(good, offTableSize, 4, 3), "table_size", ErrInvalidHeader},
		{"table size 32", messWith(good, offTableSize, 4, 32), "table_size", ErrInvalidHeader},
		{"image size odd", messWith(good, offImageSize, 8, 1000), "image_size", ErrInvalidHeader},
		{"image size past max", messWith(good, offImageSize, 8, 1<<62), "image_size", ErrInvalidHeader},
		{"table size huge for file", messWith(good, offTableSize, 4, 16), "l1_table_offset", ErrInvalidHeader},
		{"L1 in header", messWith(good, offL1TableOffset, 8, 0), "l1_table_offset", ErrInvalidHeader},
		{"L1 misaligned", messWith(good, offL1TableOffset, 8, cs4k+8), "l1_table_offset", ErrInvalidHeader},
		{"L1 past EOF", messWith(good, offL1TableOffset, 8, 1<<40), "l1_table_offset", ErrInvalidHeader},
		{"L1 offset wraps", messWith(good, offL1TableOffset, 8, ^uint64(0)&^(cs4k-1)), "l1_table_offset", ErrInvalidHeader},
		{"header size huge", messWith(good, offHeaderSize, 4, 0xffffffff), "l1_table_offset", ErrInvalidHeader},
		{"name past header", messWith(withName, offBackingFilenameSize, 4, cs4k), "backing_filename_offset", ErrInvalidHeader},
		{"name offset huge", messWith(withName, offBackingFilenameOffset, 4, 0xfffffff0), "backing_filename_offset", ErrInvalidHeader},
		{"name too long", messWith(messWith(messWith(withName, offHeaderSize, 4, 2), offL1TableOffset, 8, 2*cs4k), offBackingFilenameSize, 4, 5000), "backing_filename_size", ErrInvalidHeader},
		{"name empty", messWith(withName, offBackingFilenameSize, 4, 0), "backing_filename_size", ErrInvalidHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := afero.NewMemMapFs()
			if err := afero.WriteFile(fs, "/h.qed", tc.img, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{true, false} {
				_, err := Open(fs, "/h.qed", OpenOptions{ReadOnly: ro})
				if !errors.Is(err, tc.want) {
					t.Fatalf("read-only=%v: %v, want %v", ro, err, tc.want)
				}
				var fe *FormatError
				if !errors.As(err, &fe) || fe.Field != tc.field {
					t.Fatalf("read-only=%v: %v, want a FormatError for field %s", ro, err, tc.field)
				}
			}
		})
	}
}

// TestHeaderSizeOverflow reaches QEMU's header_size*cluster_size check:
// the L1 table must lie past 4 GiB for it to be reached, so this uses a
// sparse file on the OS filesystem (and exercises >4 GiB offsets).
func TestHeaderSizeOverflow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.qed")
	good := validImage(t, CreateOptions{})
	const l1 = 5 << 30
	img := messWith(good, offHeaderSize, 4, (1<<32)/cs4k+1) // header bytes 4 GiB + 4 KiB
	img = messWith(img, offL1TableOffset, 8, l1)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(img[:cs4k])
	if err := f.Truncate(l1 + 4*cs4k); err != nil {
		f.Close()
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	_, err = Open(afero.NewOsFs(), path, OpenOptions{ReadOnly: true})
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Field != "header_size" {
		t.Fatalf("got %v, want a header_size FormatError", err)
	}
}

func TestCreateRefusesBadOptions(t *testing.T) {
	fs := afero.NewMemMapFs()
	long := make([]byte, cs4k-HeaderFieldsSize+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, co := range []CreateOptions{
		{Size: 1000},
		{Size: 4096, ClusterSize: 1000},
		{Size: 4096, TableSize: 3},
		{Size: 4096, ClusterSize: cs4k, BackingFile: string(long)},
		{Size: 4096, BackingFile: "x", BackingFormat: "vmdk"},
		{Size: MaxImageSize(cs4k, 1) + 512, ClusterSize: cs4k, TableSize: 1},
	} {
		if err := Create(fs, "/x.qed", co); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("Create(%+v) = %v, want ErrInvalidOption", co, err)
		}
	}
	// Creating over an existing longer file truncates it.
	afero.WriteFile(fs, "/old.qed", make([]byte, 1<<20), 0o644)
	mustNil(t, Create(fs, "/old.qed", CreateOptions{Size: 4096, ClusterSize: cs4k}))
	if st, _ := fs.Stat("/old.qed"); st.Size() != 5*cs4k {
		t.Fatalf("re-created image is %d bytes", st.Size())
	}
}

func TestMaxImageSizeNoOverflow(t *testing.T) {
	if got := MaxImageSize(64*1024, 4); got != 64<<40 {
		t.Fatalf("default max %d, want 64 TiB", got)
	}
	if got := MaxImageSize(MaxClusterSize, MaxTableSize); got != ^uint64(0) {
		t.Fatalf("largest geometry %d, want saturation", got)
	}
	if got := MaxImageSize(2<<20, 16); got != ^uint64(0) {
		t.Fatalf("2 MiB x 16: %d, want saturation (QEMU gets 0)", got)
	}
}
