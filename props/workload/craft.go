package workload

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/spf13/afero"
)

// Craft describes header fields and layouts of a legal QED image that the
// create commands cannot write (issue 14, part 3). The image is created
// as usual, then patched by CraftImage before it is first opened; its
// guest contents are unchanged (zeros, or the backing file's), so the
// model needs nothing. The zero value patches nothing.
//
// Every field keeps the image legal (docs/format.md): an implementation
// must open it, and a writable open may change only what the format says
// (clear the unknown autoclear bits, repair when NEED_CHECK is set, cut
// the partial cluster at the end).
type Craft struct {
	// HeaderSize is header_size in clusters (0 and 1: as created). The
	// header clusters past the first are zeros.
	HeaderSize uint32
	// L1Gap leaves this many unused clusters between the header and the
	// L1 table (l1_table_offset = (header_size + L1Gap) * cluster_size):
	// legal, and leaked clusters to a check.
	L1Gap uint32
	// Compat and Autoclear are feature bits no implementation knows (QED
	// defines none): a compat bit must not stop an open, an autoclear bit
	// is cleared by a writable open before it writes anything else.
	Compat, Autoclear uint64
	// NeedCheck sets NEED_CHECK on the consistent image: the first
	// writable open checks it (and finds nothing to repair).
	NeedCheck bool
	// BackingName, with a backing file, rewrites the backing file name
	// as a path of this many bytes naming the same file ("./././backing0.qed"),
	// up to what the header clusters hold after the fields and to
	// MaxBackingName, written from the second sector on: a name that
	// spans 512-byte sectors.
	BackingName int
	// Probe, with a raw backing file, clears the backing format's
	// NO_PROBE feature: an open probes the format (and finds raw).
	Probe bool
	// Tail appends this many bytes (0 < Tail < cluster size) of stale
	// data after the last cluster: a file length that is not a multiple
	// of the cluster size, as a crash during an extending write leaves.
	Tail int64
}

// craftNameOffset is where a crafted backing file name is written: the
// second sector, past the created header's own name, so that until the
// new header is durable the old one reads its old name intact.
const craftNameOffset = 512

// MaxBackingName bounds a crafted backing file name. QEMU reads the name
// into a PATH_MAX (4096) buffer and then opens it joined to the image's
// directory, which must fit PATH_MAX too ("File name too long" for a
// 4095-byte name in /tmp/...): 3584 leaves 512 bytes for the directory.
const MaxBackingName = 3584

// QED header field offsets and bits (docs/format.md, Header).
const (
	hdrHeaderSize  = 12
	hdrFeatures    = 16
	hdrCompat      = 24
	hdrAutoclear   = 32
	hdrL1Offset    = 40
	hdrNameOffset  = 56
	hdrNameSize    = 60
	hdrFieldsBytes = 64

	featureNeedCheck = 0x02
	featureNoProbe   = 0x04
)

// IsZero reports whether c patches nothing.
func (c Craft) IsZero() bool { return c == Craft{} }

// validate checks c against the geometry it patches.
func (c Craft) validate(g Geometry) error {
	cs := int64(g.ClusterSize)
	hs := int64(max(c.HeaderSize, 1))
	switch {
	case c.HeaderSize > 16 || c.L1Gap > 16:
		return fmt.Errorf("%w: craft: header_size %d and l1_gap %d must be at most 16", ErrInvalid, c.HeaderSize, c.L1Gap)
	case c.BackingName != 0 && len(g.Backing) == 0:
		return fmt.Errorf("%w: craft: backing_name needs a backing file", ErrInvalid)
	case c.BackingName != 0 && (c.BackingName < len(BackingName(0, g.Backing[0].Format))+3 || int64(c.BackingName) > min(hs*cs-craftNameOffset, MaxBackingName)):
		return fmt.Errorf("%w: craft: backing_name %d must be in %d..%d", ErrInvalid, c.BackingName,
			len(BackingName(0, g.Backing[0].Format))+3, min(hs*cs-craftNameOffset, MaxBackingName))
	case c.Probe && (len(g.Backing) == 0 || g.Backing[0].Format != "raw"):
		return fmt.Errorf("%w: craft: probe needs a raw backing file", ErrInvalid)
	case c.Tail < 0 || c.Tail >= cs:
		return fmt.Errorf("%w: craft: tail %d must be in 0..%d", ErrInvalid, c.Tail, cs-1)
	case c.Compat&^0xffffffffffffff00 != 0 || c.Autoclear&^0xffffffffffffff00 != 0:
		return fmt.Errorf("%w: craft: compat %#x and autoclear %#x may set only bits 8..63 (unknown to every implementation)", ErrInvalid, c.Compat, c.Autoclear)
	}
	return nil
}

// longName returns a path of n bytes naming the file name (relative, in
// the same directory): "./" repeated, with one doubled slash when the
// padding is odd.
func longName(name string, n int) string {
	pad := n - len(name)
	prefix := strings.Repeat("./", pad/2)
	if pad%2 == 1 {
		prefix = ".//" + strings.Repeat("./", (pad-3)/2)
	}
	return prefix + name
}

// CraftedBackingName returns the backing file name CraftImage writes for
// g (g.Craft.BackingName bytes naming BackingName(0, ...)), or "" when the
// craft keeps the name create wrote.
func CraftedBackingName(g Geometry) string {
	if g.Craft.BackingName == 0 || len(g.Backing) == 0 {
		return ""
	}
	return longName(path.Base(BackingName(0, g.Backing[0].Format)), g.Craft.BackingName)
}

// CraftImage patches the image at p, just created with geometry g and not
// yet opened (its L1 table is empty and no cluster is allocated), as c
// says, and syncs it. It writes through fs, so a recording filesystem
// records it as setup I/O.
func CraftImage(fs afero.Fs, p string, g Geometry, c Craft) error {
	if c.IsZero() {
		return nil
	}
	if err := c.validate(g); err != nil {
		return err
	}
	f, err := fs.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("workload: craft %s: %w", p, err)
	}
	defer f.Close()
	fail := func(what string, err error) error { return fmt.Errorf("workload: craft %s: %s: %w", p, what, err) }
	var h [hdrFieldsBytes]byte
	if _, err := f.ReadAt(h[:], 0); err != nil && err != io.EOF {
		return fail("reading the header", err)
	}
	le := binary.LittleEndian
	cs := uint64(g.ClusterSize)
	tableBytes := cs * uint64(g.TableSize)
	end := cs + tableBytes // as created: header cluster, L1 table
	// Crash safety (a crash during creation is judged: the image must be
	// absent, as created, or as crafted, never a header that points past
	// what is durable): first everything the new header points at (the
	// file's extension over the moved L1 table, the new backing name in
	// a sector of its own, where the old header does not look), one Sync,
	// then the header's fields, one 64-byte write inside sector 0, and a
	// Sync. The stale tail may land anywhere in that order: any prefix of
	// it is a legal file length.
	if c.HeaderSize > 1 || c.L1Gap > 0 {
		hs := uint64(max(c.HeaderSize, 1))
		l1 := (hs + uint64(c.L1Gap)) * cs
		le.PutUint32(h[hdrHeaderSize:], uint32(hs))
		le.PutUint64(h[hdrL1Offset:], l1)
		end = l1 + tableBytes
		// The old L1 table (all zeros) becomes header, gap or table
		// clusters: the file only grows, by zeros.
		if err := f.Truncate(int64(end)); err != nil {
			return fail("extending the file", err)
		}
	}
	le.PutUint64(h[hdrCompat:], le.Uint64(h[hdrCompat:])|c.Compat)
	le.PutUint64(h[hdrAutoclear:], le.Uint64(h[hdrAutoclear:])|c.Autoclear)
	features := le.Uint64(h[hdrFeatures:])
	if c.NeedCheck {
		features |= featureNeedCheck
	}
	if c.Probe {
		features &^= featureNoProbe
	}
	le.PutUint64(h[hdrFeatures:], features)
	if c.BackingName > 0 {
		name := CraftedBackingName(g)
		le.PutUint32(h[hdrNameOffset:], craftNameOffset)
		le.PutUint32(h[hdrNameSize:], uint32(len(name)))
		if _, err := f.WriteAt([]byte(name), craftNameOffset); err != nil {
			return fail("writing the backing file name", err)
		}
	}
	if c.Tail > 0 {
		tail := make([]byte, c.Tail)
		for i := range tail {
			tail[i] = 0xe5 // stale bytes, never guest data
		}
		if _, err := f.WriteAt(tail, int64(end)); err != nil {
			return fail("appending the partial cluster", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail("sync before the header", err)
	}
	if _, err := f.WriteAt(h[:], 0); err != nil {
		return fail("writing the header", err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	return nil
}
