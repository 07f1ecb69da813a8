package workload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// hostileKind: "hostile V S" hands the implementation an image no crash
// of a correct implementation leaves (issue 16: the validation, refusal
// and repair paths a campaign's valid images never reach) and judges what
// it does with it. It runs on a Disk with the target.Hardened capability
// (on another Disk it does nothing), entirely in a private in-memory
// filesystem: the workload's files, its model and its crash states are
// not touched, so the op may stand anywhere in a workload and a crash
// "during" it is a crash between the ops around it.
//
// The hostile image is built from a fixed base: a 4 KiB-cluster image
// with one-cluster tables, two L2 tables (guest clusters 0, 1 and 512
// written, each with its own pattern), made by the target itself and read
// back through it (want). Variant V is:
//
//   - V < len(check.Corruptions()): check.Plant's corruption V planted
//     with seed S, NEED_CHECK set when S is odd. A header field the
//     format forbids (check.CorruptHeaderField) must be refused by a
//     read-only and by a writable open. Otherwise a read-only open may refuse the image;
//     if it opens, every guest cluster outside Planted.Touched reads as
//     in want (a touched one may fail or read anything), the check
//     without repair reports a corruption or a check error (a leak for
//     check.CorruptLeak), and nothing is written (read-only). Then a
//     writable open (which repairs when NEED_CHECK is set) followed by a
//     repairing check must leave an image whose check without repair is
//     clean and whose untouched clusters still read as in want.
//   - V >= that: hostileOpens[V - len]: a file the format forbids in a
//     way Plant does not make (a header shorter than its fields, a file
//     that is not QED at all, a backing file that is missing, names the
//     image itself, or closes a loop through another image, a backing
//     feature with an empty name, a whole header with the wrong magic, an
//     L1 table offset unaligned or past the end of the file, a
//     header_size of 0, a table_size of 32, a backing name longer than
//     4095 bytes), which both opens must refuse, or a
//     creation the format forbids (hostileCreates: a cluster or table
//     size out of range, an image size that is not a multiple of 512, an
//     unknown backing format, a backing file name that does not fit the
//     header, the image as its own backing file), which Create must
//     refuse without leaving the file behind, or (hostileCommands, on a
//     target with target.ImageOps) an image command the format or the
//     command forbids (a rebase onto an unknown format, a format without
//     a name, a name longer than the header allows, the image itself; a
//     commit of an image without a backing file), which must be refused
//     with the image's bytes unchanged; then hostileLate's and
//     hostileAccepted's variants (see there), numbered after all of these.
//
// Every refusal must carry a message (its Error() is not empty).
type hostileKind struct{}

// hostileBase is the base image's geometry: 4 KiB clusters, one-cluster
// tables (512 entries: an L2 table maps 2 MiB), 2 MiB + 3 clusters.
const (
	hostileCS   = 4096
	hostileSize = 512*hostileCS + 3*hostileCS
)

// hostileOpens are the open variants: each writes its files into fs
// (the image at img, in directory dir) and names what it made.
var hostileOpens = [...]struct {
	what string
	make func(fs afero.Fs, t target.Target, dir, img string, base []byte) error
}{
	{"a header shorter than its fields", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return afero.WriteFile(fs, img, base[:40], 0o644)
	}},
	{"a file that is not a QED image", func(fs afero.Fs, _ target.Target, _, img string, _ []byte) error {
		return afero.WriteFile(fs, img, []byte("QFI\xfb not QED"), 0o644)
	}},
	{"a missing backing file", func(fs afero.Fs, t target.Target, _, img string, _ []byte) error {
		return hostileCreate(fs, t, img, "missing.raw", "raw")
	}},
	{"the image as its own backing file", func(fs afero.Fs, t target.Target, dir, img string, _ []byte) error {
		// Created with a raw backing file, then renamed onto the name
		// it stores: the header names the image itself.
		if err := hostileCreate(fs, t, path.Join(dir, "self.qed"), "loop.qed", "qed"); err != nil {
			return err
		}
		return fs.Rename(path.Join(dir, "self.qed"), path.Join(dir, "loop.qed"))
	}},
	{"a backing loop through a second image", func(fs afero.Fs, t target.Target, dir, img string, _ []byte) error {
		// img -> other.qed -> image: made as other.qed over an absent
		// file, image over other.qed, then other.qed's target renamed.
		if err := hostileCreate(fs, t, path.Join(dir, "other.qed"), "later.qed", "qed"); err != nil {
			return err
		}
		if err := hostileCreate(fs, t, img, "other.qed", "qed"); err != nil {
			return err
		}
		return fs.Rename(img, path.Join(dir, "later.qed"))
	}},
	{"a backing feature with an empty name", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) {
			le.PutUint64(b[16:], le.Uint64(b[16:])|1) // features: backing file
			le.PutUint32(b[56:], 64*8)                // backing_filename_offset
			le.PutUint32(b[60:], 0)                   // backing_filename_size
		})
	}},
	{"a whole header with the wrong magic", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) { copy(b, "QFI\xfe") })
	}},
	{"an L1 table offset that is not cluster-aligned", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) { le.PutUint64(b[40:], le.Uint64(b[40:])+512) })
	}},
	{"an L1 table past the end of the file", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) { le.PutUint64(b[40:], 1<<40) })
	}},
	{"a header_size of 0", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) { le.PutUint32(b[12:], 0) })
	}},
	{"a table_size of 32", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) { le.PutUint32(b[8:], 32) })
	}},
	{"a backing file name longer than the format allows", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		// Two header clusters, so that the name fits in them; the L1
		// table offset moved past them (the name is refused first).
		return patchHeader(fs, img, base, func(b []byte) {
			le.PutUint32(b[12:], 2)                   // header_size
			le.PutUint64(b[40:], 2*hostileCS)         // l1_table_offset
			le.PutUint64(b[16:], le.Uint64(b[16:])|1) // features: backing file
			le.PutUint32(b[56:], 64)                  // backing_filename_offset
			le.PutUint32(b[60:], hostileCS+100)       // backing_filename_size
		})
	}},
}

var le = binary.LittleEndian

// patchHeader writes base with patch applied to a copy as the image at img.
func patchHeader(fs afero.Fs, img string, base []byte, patch func([]byte)) error {
	b := bytes.Clone(base)
	patch(b)
	return afero.WriteFile(fs, img, b, 0o644)
}

// hostileImage is the name under which an open variant leaves the image
// to open (the loops rename theirs).
func hostileImage(v int, dir, img string) string {
	switch hostileOpens[v].what {
	case "the image as its own backing file":
		return path.Join(dir, "loop.qed")
	case "a backing loop through a second image":
		return path.Join(dir, "later.qed")
	}
	return img
}

// hostileCreates are the creation variants: options the format forbids.
var hostileCreates = [...]struct {
	what string
	opts func(img string) target.CreateOptions
}{
	{"a cluster size that is not a power of two", func(string) target.CreateOptions {
		return target.CreateOptions{Size: 1 << 20, ClusterSize: 3 * 4096, TableSize: 1}
	}},
	{"a table size above 16", func(string) target.CreateOptions {
		return target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 32}
	}},
	{"an image size that is not a multiple of 512", func(string) target.CreateOptions {
		return target.CreateOptions{Size: 1<<20 + 1, ClusterSize: 4096, TableSize: 1}
	}},
	{"an unknown backing format", func(string) target.CreateOptions {
		return target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1, BackingFile: "b.vmdk", BackingFormat: "vmdk"}
	}},
	{"a backing file name longer than the header cluster", func(string) target.CreateOptions {
		return target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1, BackingFile: strings.Repeat("n", 4096) + ".raw", BackingFormat: "raw"}
	}},
	{"the image as its own backing file", func(img string) target.CreateOptions {
		return target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1, BackingFile: path.Base(img), BackingFormat: "qed"}
	}},
}

// hostileCommands are the image-command variants: a rebase or commit of
// the base image that the format or the command forbids, on a target
// with target.ImageOps (on another it does nothing).
var hostileCommands = [...]struct {
	what string
	run  func(fs afero.Fs, t target.ImageOps, img string) error
}{
	{"a rebase -u onto an unknown backing format", func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Rebase(fs, img, "b.vmdk", "vmdk", true)
	}},
	{"a rebase -u naming a format without a backing file", func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Rebase(fs, img, "", "raw", true)
	}},
	{"a rebase -u onto a name longer than the header allows", func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Rebase(fs, img, strings.Repeat("n", 4096)+".raw", "raw", true)
	}},
	{"a rebase -u onto the image itself", func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Rebase(fs, img, path.Base(img), "qed", true)
	}},
	{"a rebase onto an unknown backing format", func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Rebase(fs, img, "b.vmdk", "vmdk", false)
	}},
	{"a rebase onto the image itself", func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Rebase(fs, img, path.Base(img), "qed", false)
	}},
	{"a commit of an image without a backing file", func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Commit(fs, img, target.CommitOptions{})
	}},
}

// hostileLate are the variants added after hostileCommands (numbered
// after them, so that the variants before keep their numbers): each makes
// its files from the base image (make, nil: the base as it is); then
// either both opens must refuse the image (run nil) or the image command
// run must be refused with the image's bytes unchanged (on a target with
// target.ImageOps; on another the variant does nothing). Issue 16.2
// (coverage): impl/qed's refusals no other op reaches: a table whose
// clusters wrap past 2^64, a backing chain deeper than
// qed.DefaultMaxBackingDepth (16; QEMU 7.2 opens one of 18, but a
// QEMU disk is not target.Hardened), a header rewrite refused for an
// unknown compat feature (whose data may follow the fields) or for a
// name that fits the format's bound but not the header beside the
// fields, and a commit into a file outside the backing chain.
var hostileLate = [...]struct {
	what string
	make func(fs afero.Fs, t target.Target, dir, img string, base []byte) error
	run  func(fs afero.Fs, t target.ImageOps, img string) error
}{
	{"an L1 table whose last cluster lies past 2^64", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		// Two-cluster tables at the last cluster-aligned offset: the
		// table's second cluster wraps to offset 0.
		return patchHeader(fs, img, base, func(b []byte) {
			le.PutUint32(b[8:], 2)                     // table_size
			le.PutUint64(b[40:], ^uint64(hostileCS-1)) // l1_table_offset: 2^64 - 4096
		})
	}, nil},
	{"a backing chain deeper than 16 files", func(fs afero.Fs, t target.Target, dir, img string, _ []byte) error {
		// img -> c17.qed -> ... -> c1.qed -> c0.raw: 18 files below img.
		if err := afero.WriteFile(fs, path.Join(dir, "c0.raw"), nil, 0o644); err != nil {
			return err
		}
		prev, format := "c0.raw", "raw"
		for i := 1; i <= hostileDeepChain; i++ {
			name := fmt.Sprintf("c%d.qed", i)
			if err := hostileCreate(fs, t, path.Join(dir, name), prev, format); err != nil {
				return err
			}
			prev, format = name, "qed"
		}
		return hostileCreate(fs, t, img, prev, format)
	}, nil},
	{"a rebase -u of an image with an unknown compat feature", hostileCompat, func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Rebase(fs, img, "new.raw", "raw", true)
	}},
	{"a rebase of an image with an unknown compat feature", hostileCompat, func(fs afero.Fs, t target.ImageOps, img string) error {
		// new.raw is empty: it reads zeros, as the image's absent backing
		// file does, so a rebase that copied first would copy nothing.
		return t.Rebase(fs, img, "new.raw", "raw", false)
	}},
	{"a rebase -u onto a name that fits the format but not the header beside its fields", nil, func(fs afero.Fs, t target.ImageOps, img string) error {
		// 64 bytes of fields and 4,040 of name: more than the one
		// header cluster (4,096 bytes), less than the 4,095 bytes the
		// format allows a name.
		return t.Rebase(fs, img, strings.Repeat("n", hostileCS-hdrFields+8-len(".raw"))+".raw", "raw", true)
	}},
	{"a commit -b naming a file outside the backing chain", func(fs afero.Fs, t target.Target, dir, img string, _ []byte) error {
		for _, name := range []string{"b.raw", "other.raw"} {
			if err := afero.WriteFile(fs, path.Join(dir, name), make([]byte, hostileCS), 0o644); err != nil {
				return err
			}
		}
		return hostileCreate(fs, t, img, "b.raw", "raw")
	}, func(fs afero.Fs, t target.ImageOps, img string) error {
		return t.Commit(fs, img, target.CommitOptions{Base: "other.raw"})
	}},
	{"an unknown incompatible feature", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) { le.PutUint64(b[16:], le.Uint64(b[16:])|1<<40) })
	}, nil},
	{"an image_size that is not a multiple of 512", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) { le.PutUint64(b[48:], le.Uint64(b[48:])+1) })
	}, nil},
	{"a cluster_size that is not a power of two", func(fs afero.Fs, _ target.Target, _, img string, base []byte) error {
		return patchHeader(fs, img, base, func(b []byte) { le.PutUint32(b[4:], 3*hostileCS) })
	}, nil},
}

// hostileAccepted are the variants after hostileLate: an image command
// the format allows but no other op makes, on the base image, which must
// succeed (on a target with target.ImageOps; on another the variant does
// nothing) and leave what its judge (part of the entry) requires; want is
// the base's guest contents. Issue 16.2 (coverage): the crash-safe
// header rewrite's third place for a new name (nameSlot: in sector 0 with
// the fields, when neither the bytes before the old name nor those after
// it hold it), which the workloads' names never need.
var hostileAccepted = [...]struct {
	what string
	run  func(fs afero.Fs, t target.Target, ops target.ImageOps, dir, img string, want []byte) error
}{
	{"a rename whose short new name fits only in sector 0 with the fields, beside an old name near the header's end", hostileRenameSector0},
	{"a backing file named by an absolute path", hostileAbsoluteName},
	{"an image with paged tables in a filesystem without SEEK_DATA", hostilePagedNoSeekData},
	{"a commit -b into the bottom of a chain whose middle image is longer than the image", hostileCommitLongerMiddle},
}

// hostileAbsoluteName creates an image over a raw backing file named by
// its absolute path (the workloads' names are relative, so that their
// files move together) and requires it to read the backing file's bytes
// (it allocates nothing).
func hostileAbsoluteName(fs afero.Fs, t target.Target, _ target.ImageOps, dir, _ string, _ []byte) error {
	b := path.Join(dir, "abs.raw")
	data := make([]byte, hostileSize)
	model.Fill(data, 9, 0)
	if err := afero.WriteFile(fs, b, data, 0o644); err != nil {
		return err
	}
	img := path.Join(dir, "abs.qed")
	if err := hostileCreate(fs, t, img, b, "raw"); err != nil {
		return fmt.Errorf("hostile: creating an image over %s: %w", b, err)
	}
	return hostileReadsAs(fs, t, img, data, "the image over a backing file named by an absolute path")
}

// hostilePagedNoSeekData creates an image whose tables are paged (64 KiB
// clusters, two-cluster tables: impl/qed holds tables over 64 KiB in
// pages of 512 entries and, where the file answers SEEK_DATA, reads only
// their pages with data) in the op's filesystem (afero's in-memory one,
// which does not answer SEEK_DATA, unlike the campaign's crash
// filesystem), writes guest clusters 0 and 512 (entries in the first and
// the second page of the L2 table), and requires a fresh read-only open
// to read them back, and zeros around them.
func hostilePagedNoSeekData(fs afero.Fs, t target.Target, _ target.ImageOps, dir, _ string, _ []byte) error {
	const cs = 64 << 10
	img := path.Join(dir, "paged.qed")
	if err := t.Create(fs, img, target.CreateOptions{Size: 520 * cs, ClusterSize: cs, TableSize: 2}); err != nil {
		return err
	}
	d, err := t.Open(fs, img, target.OpenOptions{})
	if err != nil {
		return err
	}
	buf := make([]byte, cs)
	for i, c := range []int64{0, 512} {
		model.Fill(buf, uint64(i+1), c*cs)
		if _, err := d.WriteAt(buf, c*cs); err != nil {
			d.Close()
			return err
		}
	}
	if err := d.Close(); err != nil {
		return err
	}
	if d, err = t.Open(fs, img, target.OpenOptions{ReadOnly: true}); err != nil {
		return fmt.Errorf("hostile: opening an image with paged tables: %w", err)
	}
	defer d.Close()
	want := make([]byte, cs)
	for i, c := range []int64{0, 1, 511, 512, 519} {
		clear(want)
		switch c {
		case 0, 512:
			model.Fill(want, uint64(i/3+1), c*cs)
		}
		if _, err := d.ReadAt(buf, c*cs); err != nil {
			return fmt.Errorf("hostile: reading guest cluster %d of an image with paged tables: %w", c, err)
		}
		if !bytes.Equal(buf, want) {
			return fmt.Errorf("hostile: guest cluster %d of an image with paged tables reads differently", c)
		}
	}
	return nil
}

// hostileCommitLongerMiddle commits an image into the raw file at the
// bottom of its chain (commit -b), through a QED image between them that
// is longer than the image and allocates the image's first cluster too
// and a cluster past the image's size: the base must then read, over the
// image's size, what the image read before, and the image still reads
// the same (a commit into a deeper base leaves the images as they are).
func hostileCommitLongerMiddle(fs afero.Fs, t target.Target, ops target.ImageOps, dir, _ string, _ []byte) error {
	base, mid, img := path.Join(dir, "bottom.raw"), path.Join(dir, "middle.qed"), path.Join(dir, "top.qed")
	if err := afero.WriteFile(fs, base, make([]byte, hostileSize+8*hostileCS), 0o644); err != nil {
		return err
	}
	if err := t.Create(fs, mid, target.CreateOptions{Size: hostileSize + 8*hostileCS, ClusterSize: hostileCS, TableSize: 1, BackingFile: "bottom.raw", BackingFormat: "raw"}); err != nil {
		return err
	}
	if err := hostileWrite(fs, t, mid, 5, 0, hostileSize+2*hostileCS); err != nil {
		return err
	}
	if err := hostileCreate(fs, t, img, "middle.qed", "qed"); err != nil {
		return err
	}
	if err := hostileWrite(fs, t, img, 6, 0, 7*hostileCS); err != nil {
		return err
	}
	want, err := hostileGuest(fs, t, img)
	if err != nil {
		return err
	}
	if err := ops.Commit(fs, img, target.CommitOptions{Base: "bottom.raw"}); err != nil {
		return fmt.Errorf("hostile: a commit -b into the bottom of a chain whose middle image is longer: %w", err)
	}
	got, err := afero.ReadFile(fs, base)
	if err != nil {
		return err
	}
	if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		return fmt.Errorf("hostile: after a commit -b into %s it does not read what the image read", base)
	}
	return hostileReadsAs(fs, t, img, want, "the image after its commit -b through a longer middle image")
}

// hostileWrite writes one cluster of pattern id at each guest offset of
// offs into the image at img.
func hostileWrite(fs afero.Fs, t target.Target, img string, id uint64, offs ...int64) error {
	d, err := t.Open(fs, img, target.OpenOptions{})
	if err != nil {
		return err
	}
	buf := make([]byte, hostileCS)
	for _, off := range offs {
		model.Fill(buf, id, off)
		if _, err := d.WriteAt(buf, off); err != nil {
			d.Close()
			return err
		}
	}
	return d.Close()
}

// hostileGuest reads the whole guest view of the image at img.
func hostileGuest(fs afero.Fs, t target.Target, img string) ([]byte, error) {
	d, err := t.Open(fs, img, target.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	buf := make([]byte, d.Size())
	if _, err := d.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}

// hostileReadsAs requires a read-only open of img to read want.
func hostileReadsAs(fs afero.Fs, t target.Target, img string, want []byte, what string) error {
	got, err := hostileGuest(fs, t, img)
	if err != nil {
		return fmt.Errorf("hostile: reading %s: %w", what, err)
	}
	if i := mismatchAt(got, want); len(got) != len(want) || i >= 0 {
		return fmt.Errorf("hostile: %s does not read as it should (first difference in the cluster at %#x)", what, i)
	}
	return nil
}

// hostileRenameSector0 renames the base image's backing file (it has
// none) to a 4,000-byte name, whose bytes end 32 bytes before the end of
// the header cluster, then to a 100-byte one (rebase -u both): the new
// name fits neither before the old one (which starts right after the
// fields) nor after it, but it fits in sector 0 with the fields, where a
// crash-safe rewrite writes both at once (one sector is atomic). The
// header must then name the new file (read from the file's bytes), and
// the image over it (an empty raw file, which reads zeros like no backing
// file) must read as the base did.
func hostileRenameSector0(fs afero.Fs, t target.Target, ops target.ImageOps, dir, img string, want []byte) error {
	long := strings.Repeat("./", (hostileCS-hdrFields-32-len("new.raw"))/2) + "new.raw"
	short := strings.Repeat("./", (100-len("new.raw"))/2) + "new.raw"
	if err := afero.WriteFile(fs, path.Join(dir, "new.raw"), nil, 0o644); err != nil {
		return err
	}
	for _, name := range []string{long, short} {
		if err := ops.Rebase(fs, img, name, "raw", true); err != nil {
			return fmt.Errorf("hostile: a rebase -u of the base image to a %d-byte name failed: %w", len(name), err)
		}
	}
	b, err := afero.ReadFile(fs, img)
	if err != nil {
		return err
	}
	off, n := uint64(le.Uint32(b[56:])), uint64(le.Uint32(b[60:]))
	if off+n > uint64(len(b)) || string(b[off:off+n]) != short || le.Uint64(b[16:])&1 == 0 {
		return fmt.Errorf("hostile: after a rebase -u to a %d-byte name beside a %d-byte one, the header does not name it", len(short), len(long))
	}
	d, err := t.Open(fs, img, target.OpenOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("hostile: opening the image renamed to a %d-byte name: %w", len(short), err)
	}
	defer d.Close()
	return untouchedRead(d, "the image renamed to a short name", &check.Planted{}, want)
}

// hostileDeepChain is the number of QED files between the image and the
// raw file at the bottom of hostileLate's deep chain.
const hostileDeepChain = 17

// hdrFields is the size of the header's fields; the backing name may
// start right after them.
const hdrFields = 64

// hostileCompat makes the base image with an unknown compat feature set
// (and an empty raw file new.raw beside it).
func hostileCompat(fs afero.Fs, _ target.Target, dir, img string, base []byte) error {
	if err := afero.WriteFile(fs, path.Join(dir, "new.raw"), nil, 0o644); err != nil {
		return err
	}
	return patchHeader(fs, img, base, func(b []byte) { le.PutUint64(b[24:], le.Uint64(b[24:])|1<<40) })
}

// hostileVariants is the number of variants of "hostile V S".
func hostileVariants() int {
	return len(check.Corruptions()) + len(hostileOpens) + len(hostileCreates) + len(hostileCommands) + len(hostileLate) + len(hostileAccepted)
}

func hostileCreate(fs afero.Fs, t target.Target, img, backing, format string) error {
	return t.Create(fs, img, target.CreateOptions{Size: hostileSize, ClusterSize: hostileCS, TableSize: 1, BackingFile: backing, BackingFormat: format})
}

func (hostileKind) name() string { return "hostile" }

// weight is 0: the generator draws it after the ops (drawExtras'
// HostileChance), so that the workloads without one are drawn as before.
func (hostileKind) weight() int { return 0 }

func (hostileKind) check(op Op, v *validator) error {
	if err := v.notNested(); err != nil {
		return err
	}
	if op.Off < 0 || op.Off >= int64(hostileVariants()) {
		return fmt.Errorf("%w: op %d: hostile variant %d, want 0 to %d", ErrInvalid, v.i, op.Off, hostileVariants()-1)
	}
	if op.Len < 0 || op.Len > 1<<32-1 {
		return fmt.Errorf("%w: op %d: hostile seed %d, want 0 to %d", ErrInvalid, v.i, op.Len, int64(1<<32-1))
	}
	return nil
}

func (hostileKind) args(op Op) string { return fmt.Sprintf("%d %d", op.Off, op.Len) }

func (hostileKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 2); err != nil {
		return Op{}, err
	}
	v, err := num(args[0], "variant")
	if err != nil {
		return Op{}, err
	}
	s, err := num(args[1], "seed")
	return Op{Kind: Hostile, Off: v, Len: s}, err
}

func (hostileKind) gen(g *genState) (Op, bool) {
	return Op{Kind: Hostile, Off: g.rng.Int64N(int64(hostileVariants())), Len: g.rng.Int64N(1 << 32)}, true
}

func (hostileKind) run(e *Exec, i int, op Op) error {
	if _, ok := e.Disk.(target.Hardened); !ok {
		return nil
	}
	e.snapshot(i)
	var fs afero.Fs = afero.NewMemMapFs()
	if e.Private != nil {
		fs = e.Private(fs)
	}
	return runHostileIn(e.Target, fs, int(op.Off), uint64(op.Len))
}

func (hostileKind) effect(Op, int64) Effect { return Effect{} }

// runHostile runs variant v with seed s on t in a fresh in-memory
// filesystem (see hostileKind).
func runHostile(t target.Target, v int, s uint64) error {
	return runHostileIn(t, afero.NewMemMapFs(), v, s)
}

// runHostileIn is runHostile in fs, an empty filesystem of the op's own
// (Exec.Private's layer over a fresh in-memory one).
func runHostileIn(t target.Target, fs afero.Fs, v int, s uint64) error {
	const dir = "/hostile"
	img := path.Join(dir, "image.qed")
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	nc := len(check.Corruptions())
	late := nc + len(hostileOpens) + len(hostileCreates) + len(hostileCommands)
	if v >= late+len(hostileLate) {
		c := hostileAccepted[v-late-len(hostileLate)]
		ops, ok := t.(target.ImageOps)
		if !ok {
			return nil
		}
		_, want, err := hostileBase(fs, t, img)
		if err != nil {
			return fmt.Errorf("hostile: building the base image: %w", err)
		}
		return c.run(fs, t, ops, dir, img, want)
	}
	if v >= late {
		return runHostileLate(t, fs, dir, img, v-late)
	}
	if v >= nc+len(hostileOpens)+len(hostileCreates) {
		c := hostileCommands[v-nc-len(hostileOpens)-len(hostileCreates)]
		ops, ok := t.(target.ImageOps)
		if !ok {
			return nil
		}
		base, _, err := hostileBase(fs, t, img)
		if err != nil {
			return fmt.Errorf("hostile: building the base image: %w", err)
		}
		if err := refused(c.run(fs, ops, img), c.what); err != nil {
			return err
		}
		if got, _ := afero.ReadFile(fs, img); !bytes.Equal(got, base) {
			return fmt.Errorf("hostile: %s was refused but changed the image", c.what)
		}
		return nil
	}
	if v >= nc+len(hostileOpens) {
		c := hostileCreates[v-nc-len(hostileOpens)]
		err := t.Create(fs, img, c.opts(img))
		if err := refused(err, "create with "+c.what); err != nil {
			return err
		}
		if _, serr := fs.Stat(img); serr == nil {
			return fmt.Errorf("hostile: create with %s was refused but left %s behind", c.what, img)
		}
		return nil
	}
	base, want, err := hostileBase(fs, t, img)
	if err != nil {
		return fmt.Errorf("hostile: building the base image: %w", err)
	}
	if v >= nc {
		o := hostileOpens[v-nc]
		if err := fs.Remove(img); err != nil {
			return err
		}
		if err := o.make(fs, t, dir, img, base); err != nil {
			return fmt.Errorf("hostile: making %s: %w", o.what, err)
		}
		return refusedOpens(fs, t, hostileImage(v-nc, dir, img), o.what)
	}
	c := check.Corruptions()[v]
	planted, p, err := check.Plant(base, c, s%2 == 1, s)
	if errors.Is(err, check.ErrNotApplicable) {
		return nil // the base has what every corruption needs; kept for safety
	}
	if err != nil {
		return fmt.Errorf("hostile: planting %s: %w", c, err)
	}
	what := fmt.Sprintf("an image with %s planted (%s, NEED_CHECK %v)", c, p.What, p.NeedCheck)
	if err := afero.WriteFile(fs, img, planted, 0o644); err != nil {
		return err
	}
	if c == check.CorruptHeaderField {
		return refusedOpens(fs, t, img, what)
	}
	if err := hostileReadOnly(fs, t, img, what, planted, p, want); err != nil {
		return err
	}
	return hostileRepair(fs, t, img, what, p, want)
}

// runHostileLate runs hostileLate[v] in fs (see there).
func runHostileLate(t target.Target, fs afero.Fs, dir, img string, v int) error {
	c := hostileLate[v]
	ops, isOps := t.(target.ImageOps)
	if c.run != nil && !isOps {
		return nil
	}
	base, _, err := hostileBase(fs, t, img)
	if err != nil {
		return fmt.Errorf("hostile: building the base image: %w", err)
	}
	if c.make != nil {
		if err := fs.Remove(img); err != nil {
			return err
		}
		if err := c.make(fs, t, dir, img, base); err != nil {
			return fmt.Errorf("hostile: making %s: %w", c.what, err)
		}
	}
	if c.run == nil {
		return refusedOpens(fs, t, img, c.what)
	}
	before, err := afero.ReadFile(fs, img)
	if err != nil {
		return err
	}
	if err := refused(c.run(fs, ops, img), c.what); err != nil {
		return err
	}
	if got, _ := afero.ReadFile(fs, img); !bytes.Equal(got, before) {
		return fmt.Errorf("hostile: %s was refused but changed the image", c.what)
	}
	return nil
}

// hostileBase creates the base image in fs at img through t and returns
// its bytes and its guest contents.
func hostileBase(fs afero.Fs, t target.Target, img string) (base, want []byte, err error) {
	if err := t.Create(fs, img, target.CreateOptions{Size: hostileSize, ClusterSize: hostileCS, TableSize: 1}); err != nil {
		return nil, nil, err
	}
	d, err := t.Open(fs, img, target.OpenOptions{})
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, hostileCS)
	for i, g := range []int64{0, 1, 512} {
		model.Fill(buf, uint64(i+1), g*hostileCS)
		if _, err := d.WriteAt(buf, g*hostileCS); err != nil {
			d.Close()
			return nil, nil, err
		}
	}
	want = make([]byte, hostileSize)
	if _, err := d.ReadAt(want, 0); err != nil {
		d.Close()
		return nil, nil, err
	}
	if err := d.Close(); err != nil {
		return nil, nil, err
	}
	base, err = afero.ReadFile(fs, img)
	return base, want, err
}

// refused requires err to be a refusal with a message.
func refused(err error, what string) error {
	if err == nil {
		return fmt.Errorf("hostile: %s was not refused", what)
	}
	if err.Error() == "" {
		return fmt.Errorf("hostile: %s was refused with an empty message", what)
	}
	return nil
}

// refusedOpens requires a read-only and a writable open of img to fail.
func refusedOpens(fs afero.Fs, t target.Target, img, what string) error {
	for _, ro := range []bool{true, false} {
		d, err := t.Open(fs, img, target.OpenOptions{ReadOnly: ro})
		if err == nil {
			d.Close()
		}
		if err := refused(err, fmt.Sprintf("opening %s (read-only %v)", what, ro)); err != nil {
			return err
		}
	}
	return nil
}

// hostileReadOnly opens the planted image read-only (which may refuse
// it), reads every cluster, checks it without repair and requires the
// file unchanged.
func hostileReadOnly(fs afero.Fs, t target.Target, img, what string, planted []byte, p *check.Planted, want []byte) error {
	d, err := t.Open(fs, img, target.OpenOptions{ReadOnly: true})
	if err != nil {
		return refused(err, "")
	}
	err = untouchedRead(d, what+", read-only", p, want)
	if err == nil {
		var r target.CheckResult
		r, err = d.Check(false)
		switch {
		case err != nil:
			// A check that gives up on the image found it damaged.
			err = nil
		case p.Corruption == check.CorruptLeak && r.Leaks == 0:
			err = fmt.Errorf("hostile: the check of %s found no leak", what)
		case p.Corruption != check.CorruptLeak && r.Corruptions == 0 && r.CheckErrors == 0:
			err = fmt.Errorf("hostile: the check of %s found nothing", what)
		}
	}
	if cerr := d.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("hostile: closing %s (read-only): %w", what, cerr)
	}
	if err != nil {
		return err
	}
	if got, _ := afero.ReadFile(fs, img); !bytes.Equal(got, planted) {
		return fmt.Errorf("hostile: a read-only open of %s changed the file", what)
	}
	return nil
}

// hostileRepair opens the planted image writable (repairing it when
// NEED_CHECK is set), reads it and repairs it with a check. As in the repair
// campaign (docs/campaigns.md, "Repair of planted corruption"), a repair
// may leave damage it cannot fix (impl/qed, like qemu-img check -r, does
// not resolve a cluster referenced twice) but must then report it: a
// check after the repair that still finds corruption needs a repairing
// check that counted corruptions it did not fix (CheckResult.Corruptions
// of a repairing check counts those left, as qemu-img's does; the fixed
// ones are CorruptionsFixed). The image closed after
// it must not claim to be clean (NEED_CHECK clear) while the independent
// checker finds it inconsistent, and the untouched clusters read as
// before.
func hostileRepair(fs afero.Fs, t target.Target, img, what string, p *check.Planted, want []byte) error {
	d, err := t.Open(fs, img, target.OpenOptions{})
	if err != nil {
		return fmt.Errorf("hostile: a writable open of %s failed: %w", what, err)
	}
	defer d.Close()
	// Read before the repair too: the writable image reads the untouched
	// clusters as they were, and the repair works on an image whose
	// tables are cached (the reads after it must see what it wrote).
	if err := untouchedRead(d, what+", writable, before the repair", p, want); err != nil {
		return err
	}
	rep, err := d.Check(true)
	if err != nil {
		return fmt.Errorf("hostile: the repair of %s failed: %w", what, err)
	}
	r, err := d.Check(false)
	if err != nil {
		return fmt.Errorf("hostile: the check after the repair of %s failed: %w", what, err)
	}
	if (r.Corruptions != 0 || r.CheckErrors != 0) && rep.Corruptions == 0 && rep.CheckErrors == 0 {
		return fmt.Errorf("hostile: after the repair of %s the check reports %d corruptions, %d check errors, and the repair reported none left", what, r.Corruptions, r.CheckErrors)
	}
	if err := untouchedRead(d, what+", repaired", p, want); err != nil {
		return err
	}
	// A repair that left nothing: the open image reads, everywhere, what
	// a fresh open of the file it leaves reads (not tables it cached
	// before the repair rewrote them).
	clean := rep.Corruptions == 0 && rep.CheckErrors == 0
	var seen []byte
	if clean {
		seen = guestClusters(d)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("hostile: closing %s after the repair: %w", what, err)
	}
	b, err := afero.ReadFile(fs, img)
	if err != nil {
		return err
	}
	if cr := check.Structure(b); cr.Has(check.ViolNeedCheckClearButInconsistent) {
		return fmt.Errorf("hostile: %s, repaired and closed, has NEED_CHECK clear but is inconsistent (%v)", what, cr.Kinds())
	}
	if !clean {
		return nil
	}
	d, err = t.Open(fs, img, target.OpenOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("hostile: a read-only open of %s after its repair failed: %w", what, err)
	}
	again := guestClusters(d)
	if err := d.Close(); err != nil {
		return fmt.Errorf("hostile: closing %s (read-only, after the repair): %w", what, err)
	}
	if i := mismatchAt(seen, again); i >= 0 {
		return fmt.Errorf("hostile: the repaired image %s read at %#x differs from a fresh open of the file it left", what, i)
	}
	return nil
}

// guestClusters reads d whole, cluster by cluster; a cluster that fails
// to read is 0xff bytes, marked by a last byte of 1 appended per cluster
// (0 for one read), so two reads compare with bytes.Equal.
func guestClusters(d target.Disk) []byte {
	var out []byte
	buf := make([]byte, hostileCS)
	for off := int64(0); off < d.Size(); off += hostileCS {
		n := min(hostileCS, d.Size()-off)
		if _, err := d.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
			out = append(append(out, bytes.Repeat([]byte{0xff}, int(n))...), 1)
			continue
		}
		out = append(append(out, buf[:n]...), 0)
	}
	return out
}

// mismatchAt returns the guest offset of the first cluster where two
// guestClusters reads differ (-1 for none).
func mismatchAt(a, b []byte) int64 {
	for i := 0; i < max(len(a), len(b)); i += hostileCS + 1 {
		ea, eb := min(i+hostileCS+1, len(a)), min(i+hostileCS+1, len(b))
		if i >= len(a) || i >= len(b) || !bytes.Equal(a[i:ea], b[i:eb]) {
			return int64(i / (hostileCS + 1) * hostileCS)
		}
	}
	return -1
}

// untouchedRead reads every guest cluster of d; a cluster outside
// p.Touched must read as in want (a touched one may fail or read
// anything).
func untouchedRead(d target.Disk, what string, p *check.Planted, want []byte) error {
	if d.Size() != int64(len(want)) && !p.AllTouched {
		return fmt.Errorf("hostile: %s: size %d, want %d", what, d.Size(), len(want))
	}
	buf := make([]byte, hostileCS)
	for off := int64(0); off < int64(len(want)); off += hostileCS {
		n := min(hostileCS, int64(len(want))-off)
		_, err := d.ReadAt(buf[:n], off)
		if !p.Untouched(off, n) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("hostile: %s: reading untouched guest cluster at %#x: %w", what, off, err)
		}
		if !bytes.Equal(buf[:n], want[off:off+n]) {
			return fmt.Errorf("hostile: %s: untouched guest cluster at %#x reads differently", what, off)
		}
	}
	return nil
}
