package interop

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
)

// qemuOpens reports whether qemu-io can open img (format qed), and its
// error output when not.
func (r *rig) qemuOpens(img string) (bool, string) {
	r.t.Helper()
	res, err := r.q.RunIO("-f", "qed", "-c", "read 0 512", img)
	if err != nil {
		r.t.Fatal(err)
	}
	return res.ExitCode == 0, string(res.Stdout) + string(res.Stderr)
}

// implRoundTrip writes a pattern at off through impl/qed, reads it back,
// and checks the image is clean by impl/qed's check.
func (r *rig) implRoundTrip(img string, off int64) {
	r.t.Helper()
	im, err := qed.Open(r.osfs, img, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		r.t.Fatalf("impl/qed cannot open %s: %v", img, err)
	}
	p := bytes.Repeat([]byte{0x5c}, 3000)
	if _, err := im.WriteAt(p, off); err != nil {
		r.t.Fatal(err)
	}
	got := make([]byte, len(p))
	if _, err := im.ReadAt(got, off); err != nil || !bytes.Equal(got, p) {
		r.t.Fatalf("read back at %d: %v", off, err)
	}
	rep, err := im.Check(false)
	if err != nil || rep.Corruptions != 0 || rep.Leaks != 0 {
		r.t.Errorf("impl/qed check after the write: %+v %v", rep, err)
	}
	if err := im.Close(); err != nil {
		r.t.Fatal(err)
	}
}

// TestDeviationTableSize1: QEMU 7.2 creates images with table_size 1 but
// cannot open them: its table-offset check computes the table's last
// cluster as offset + (table_size-1)*cluster_size and rejects end <= start
// as an overflow, which is every offset when table_size is 1 ("QED table
// offset is invalid"). Rule (docs/format.md, Header): table_size is a power
// of two from 1 to 16. impl/qed opens, writes and checks such images, both
// QEMU's and its own.
func TestDeviationTableSize1(t *testing.T) {
	r := newRig(t)
	for _, cluster := range []string{"4096", "65536", "2097152"} {
		img := r.path("t1-" + cluster + ".qed")
		r.img("create", "-q", "-f", "qed", "-o", "table_size=1,cluster_size="+cluster, img, "3147264")
		ok, msg := r.qemuOpens(img)
		if ok {
			t.Logf("QEMU now opens table_size=1 images (cluster %s): deviation gone", cluster)
		} else if !strings.Contains(msg, "table offset is invalid") {
			t.Errorf("QEMU refuses its own table_size=1 image for another reason: %s", msg)
		}
		r.implRoundTrip(img, 3147264-3000)
	}
	// qedtorture's own table_size=1 image: impl/qed is happy, QEMU is not.
	own := r.path("own-t1.qed")
	r.qtOK("create", "-q", "-o", "cluster_size=4K,table_size=1", own, "1G")
	r.implRoundTrip(own, 1<<30-3000)
	if out := r.qtOK("check", own); !strings.Contains(out, "No errors") {
		t.Errorf("qedtorture check: %s", out)
	}
	if ok, msg := r.qemuOpens(own); !ok && !strings.Contains(msg, "table offset is invalid") {
		t.Errorf("QEMU refuses qedtorture's table_size=1 image for another reason: %s", msg)
	}
}

// TestDeviationMaxSizeOverflow: QEMU 7.2 computes the maximum image size
// n*n*cluster_size in 64 bits, so for 2 MiB clusters with 16-cluster
// tables (2^65 bytes) it wraps to 0 and refuses every size, at create
// ("less than 0 bytes") and at open ("QED image size is invalid"). Rule
// (docs/format.md, Tables): compute the maximum without overflowing 64 bits.
// impl/qed caps the maximum instead and uses the geometry.
func TestDeviationMaxSizeOverflow(t *testing.T) {
	r := newRig(t)
	if m := qed.MaxImageSize(2<<20, 16); m < 1<<63 {
		t.Errorf("qed.MaxImageSize(2M, 16) = %d, want at least 2^63 (no wrap-around)", m)
	}
	qimg := r.path("q.qed")
	res, err := r.q.RunImg("create", "-q", "-f", "qed", "-o", "cluster_size=2M,table_size=16", qimg, "1M")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 {
		t.Logf("QEMU now creates 2M/16 images: deviation gone")
	} else if !strings.Contains(string(res.Stderr), "less than 0 bytes") {
		t.Errorf("qemu-img create 2M/16 failed differently: %s", res.Stderr)
	}
	own := r.path("own.qed")
	r.qtOK("create", "-q", "-o", "cluster_size=2M,table_size=16", own, "1049088")
	r.implRoundTrip(own, 1049088-3000)
	if ok, msg := r.qemuOpens(own); !ok && !strings.Contains(msg, "image size is invalid") {
		t.Errorf("QEMU refuses the 2M/16 image for another reason: %s", msg)
	}
}

// TestDeviationLongBackingName: qemu-img 7.2 creates a QED image whose
// backing file name does not fit in the header cluster (cluster_size - 64
// bytes); the name runs into the L1 table and QEMU cannot open the result
// ("QED backing filename offset is invalid"). Rule (docs/format.md,
// Creating an image): such a name must be refused at create time.
// qed.Create and qedtorture create refuse it; opening QEMU's image fails
// in impl/qed with a FormatError naming the field.
func TestDeviationLongBackingName(t *testing.T) {
	r := newRig(t)
	long := strings.Repeat("b", 5000)
	img := r.path("long.qed")
	res, err := r.q.RunImg("create", "-q", "-f", "qed", "-u", "-b", long, "-F", "raw", "-o", "cluster_size=4096", img, "1M")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Logf("QEMU now refuses the long name at create: deviation gone (%s)", res.Stderr)
	} else {
		if ok, msg := r.qemuOpens(img); ok || !strings.Contains(msg, "backing filename offset is invalid") {
			t.Errorf("QEMU opening its own long-name image: ok=%v %s", ok, msg)
		}
		_, err := qed.Open(r.osfs, img, qed.OpenOptions{ReadOnly: true})
		var fe *qed.FormatError
		if !errors.As(err, &fe) || !strings.Contains(fe.Field, "backing_filename") {
			t.Errorf("impl/qed on QEMU's long-name image: %v, want a FormatError on the backing name", err)
		}
	}
	err = qed.Create(r.osfs, r.path("own.qed"), qed.CreateOptions{Size: 1 << 20, ClusterSize: 4096, BackingFile: long, BackingFormat: "raw"})
	if !errors.Is(err, qed.ErrInvalidOption) {
		t.Errorf("qed.Create with a 5000-byte backing name in a 4 KiB header: %v", err)
	}
	_, errs, code := r.qt("create", "-q", "-u", "-b", long, "-o", "cluster_size=4K", r.path("own2.qed"), "1M")
	if code != 2 || !strings.Contains(errs, "does not fit") {
		t.Errorf("qedtorture create with the long name: exit %d, %s", code, errs)
	}
}

// TestDeviationProbeAnyFormat: without BACKING_FORMAT_NO_PROBE QEMU probes
// the backing file among all formats it knows, so a qcow2 backing file is
// read as qcow2. Rule (docs/format.md, Backing files): QED magic -> QED,
// anything else -> raw. impl/qed reads the qcow2 file's bytes as raw data.
// (QEMU's own qed_spec.txt only says "probed"; the narrower rule is this
// project's, and it is the safe one: a guest cannot make its raw disk
// look like another format.)
func TestDeviationProbeAnyFormat(t *testing.T) {
	r := newRig(t)
	base := r.path("b.qcow2")
	r.img("create", "-q", "-f", "qcow2", base, "1M")
	r.io(base, "qcow2", "write -P 0x5a 0 64k")
	ov := r.path("ov.qed")
	if err := qed.Create(r.osfs, ov, qed.CreateOptions{Size: 1 << 20, BackingFile: "b.qcow2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.q.IOBatch(ov, "qed", "read -P 0x5a 0 64k"); err != nil {
		t.Logf("QEMU no longer probes qcow2 behind QED: %v", err)
	}
	im, err := qed.Open(r.osfs, ov, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	got := make([]byte, 4)
	if _, err := im.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if string(got) != "QFI\xfb" {
		t.Errorf("impl/qed reads %q at guest 0, want the qcow2 file's raw magic", got)
	}
}
