package workload

import (
	"bytes"
	"errors"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// Tests written for mutants of op_hostile.go that survived the rest of
// the suite (docs/mutation.md): impl/qed refuses a hostile open variant
// made wrong as readily as the right one (a loop that was never closed
// leaves a missing file, refused too), so TestHostileOp cannot tell; these
// read back the files each variant makes.

// hostileHeader is what TestHostileOpensMake reads of a QED header.
type hostileHeader struct {
	magic                      string
	tableSize, headerSize      uint32
	features                   uint64
	l1, nameOff, nameSize      uint64
	name                       string
	fileSize                   int
	restOfTheFieldsLikeTheBase bool
}

func readHostileHeader(t *testing.T, fs afero.Fs, p string, base []byte) hostileHeader {
	t.Helper()
	b, err := afero.ReadFile(fs, p)
	require.NoError(t, err, "the variant's image %s", p)
	require.GreaterOrEqual(t, len(b), hdrFieldsBytes, p)
	h := hostileHeader{
		magic:      string(b[:4]),
		tableSize:  le.Uint32(b[8:]),
		headerSize: le.Uint32(b[hdrHeaderSize:]),
		features:   le.Uint64(b[hdrFeatures:]),
		l1:         le.Uint64(b[hdrL1Offset:]),
		nameOff:    uint64(le.Uint32(b[hdrNameOffset:])),
		nameSize:   uint64(le.Uint32(b[hdrNameSize:])),
		fileSize:   len(b),
	}
	if h.features&1 != 0 && h.nameOff+h.nameSize <= uint64(len(b)) {
		h.name = string(b[h.nameOff : h.nameOff+h.nameSize])
	}
	// Every byte but the fields a variant patches is the base's.
	if len(b) == len(base) {
		c := bytes.Clone(b)
		copy(c, base[:4])
		for _, f := range []struct{ off, n int }{{8, 4}, {hdrHeaderSize, 4}, {hdrFeatures, 8}, {hdrL1Offset, 8}, {hdrNameOffset, 4}, {hdrNameSize, 4}} {
			copy(c[f.off:f.off+f.n], base[f.off:f.off+f.n])
		}
		h.restOfTheFieldsLikeTheBase = bytes.Equal(c, base)
	}
	return h
}

// TestHostileOpensMake: each open variant leaves, under the name
// hostileImage gives, the file its description says (header fields read
// back byte by byte), and the loops' images name each other.
func TestHostileOpensMake(t *testing.T) {
	tg := qedtarget.Target{}
	const dir = "/hostile"
	img := path.Join(dir, "image.qed")
	newBase := func(t *testing.T) (afero.Fs, []byte) {
		fs := afero.NewMemMapFs()
		require.NoError(t, fs.MkdirAll(dir, 0o755))
		base, _, err := hostileBase(fs, tg, img)
		require.NoError(t, err)
		require.NoError(t, fs.Remove(img))
		return fs, base
	}
	_, base := newBase(t)
	b0 := readHostileHeader(t, func() afero.Fs {
		fs := afero.NewMemMapFs()
		require.NoError(t, afero.WriteFile(fs, img, base, 0o644))
		return fs
	}(), img, base)
	require.Equal(t, "QED\x00", b0.magic)
	require.EqualValues(t, 1, b0.tableSize)
	require.EqualValues(t, 1, b0.headerSize)
	require.EqualValues(t, hostileCS, b0.l1, "the base's L1 table follows its header")
	require.Zero(t, b0.features&1, "the base has no backing file")

	seen := map[string]bool{}
	for v, o := range hostileOpens {
		t.Run(o.what, func(t *testing.T) {
			require.False(t, seen[o.what], "variant %d's description is not unique", v)
			seen[o.what] = true
			fs, base := newBase(t)
			require.NoError(t, o.make(fs, tg, dir, img, base))
			p := hostileImage(v, dir, img)
			exists := func(name string) bool {
				ok, err := afero.Exists(fs, path.Join(dir, name))
				require.NoError(t, err)
				return ok
			}
			switch o.what {
			case "a header shorter than its fields":
				b, err := afero.ReadFile(fs, p)
				require.NoError(t, err)
				require.Equal(t, base[:40], b)
				return
			case "a file that is not a QED image":
				b, err := afero.ReadFile(fs, p)
				require.NoError(t, err)
				require.Equal(t, "QFI\xfb not QED", string(b))
				return
			}
			h := readHostileHeader(t, fs, p, base)
			switch o.what {
			case "a missing backing file":
				require.Equal(t, "missing.raw", h.name)
				require.False(t, exists("missing.raw"))
			case "the image as its own backing file":
				require.Equal(t, path.Join(dir, "loop.qed"), p)
				require.Equal(t, "loop.qed", h.name, "the image names itself")
				require.False(t, exists("self.qed"), "renamed onto the name it stores")
			case "a backing loop through a second image":
				require.Equal(t, path.Join(dir, "later.qed"), p)
				require.Equal(t, "other.qed", h.name)
				require.True(t, exists("other.qed"))
				require.Equal(t, "later.qed", readHostileHeader(t, fs, path.Join(dir, "other.qed"), base).name, "the loop closes")
				require.False(t, exists("image.qed"))
			case "a backing feature with an empty name":
				require.EqualValues(t, 1, h.features&1)
				require.EqualValues(t, 512, h.nameOff, "an offset past the header's fields")
				require.Zero(t, h.nameSize)
				require.True(t, h.restOfTheFieldsLikeTheBase)
			case "a whole header with the wrong magic":
				require.Equal(t, "QFI\xfe", h.magic)
				require.True(t, h.restOfTheFieldsLikeTheBase)
				require.Equal(t, b0.l1, h.l1)
			case "an L1 table offset that is not cluster-aligned":
				require.Equal(t, b0.l1+512, h.l1, "unaligned, past the header cluster")
				require.True(t, h.restOfTheFieldsLikeTheBase)
			case "an L1 table past the end of the file":
				require.EqualValues(t, 1<<40, h.l1)
				require.True(t, h.restOfTheFieldsLikeTheBase)
			case "a header_size of 0":
				require.Zero(t, h.headerSize)
				require.True(t, h.restOfTheFieldsLikeTheBase)
			case "a table_size of 32":
				require.EqualValues(t, 32, h.tableSize)
				require.True(t, h.restOfTheFieldsLikeTheBase)
			case "a backing file name longer than the format allows":
				// Only the name's length is wrong: it fits the two header
				// clusters, past the fields, and the L1 table lies past them.
				require.EqualValues(t, 2, h.headerSize)
				require.EqualValues(t, 2*hostileCS, h.l1)
				require.EqualValues(t, 1, h.features&1)
				require.EqualValues(t, hdrFieldsBytes, h.nameOff)
				require.Greater(t, h.nameSize, uint64(4095), "longer than 4095 bytes")
				require.LessOrEqual(t, h.nameOff+h.nameSize, uint64(2*hostileCS))
				require.True(t, h.restOfTheFieldsLikeTheBase)
			default:
				t.Fatalf("variant %d (%s) not checked here", v, o.what)
			}
		})
	}
}

// TestHostileValidates: the bounds of "hostile V S" (seeds 0 to 2^32-1,
// variants 0 to hostileVariants()-1), and the message naming them.
func TestHostileValidates(t *testing.T) {
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\n"
	n := hostileVariants()
	for _, ok := range []string{"hostile 0 0", "hostile 0 4294967295", "hostile " + strconv.Itoa(n-1) + " 0"} {
		_, err := Parse(strings.NewReader(head + ok + "\n"))
		require.NoError(t, err, ok)
	}
	for _, c := range []struct{ op, msg string }{
		{"hostile 0 4294967296", "hostile seed 4294967296, want 0 to 4294967295"},
		{"hostile " + strconv.Itoa(n) + " 0", "hostile variant " + strconv.Itoa(n) + ", want 0 to " + strconv.Itoa(n-1)},
	} {
		_, err := Parse(strings.NewReader(head + c.op + "\n"))
		require.ErrorIs(t, err, ErrInvalid, c.op)
		require.ErrorContains(t, err, c.msg, c.op)
	}
}

// needCheckSpy is impl/qed recording the NEED_CHECK bit of every image
// it opens read-only, as the file holds it at the open.
type needCheckSpy struct {
	qedtarget.Target
	seen *[]bool
}

func (s needCheckSpy) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	if o.ReadOnly {
		if b, err := afero.ReadFile(fs, p); err == nil && len(b) >= hdrFieldsBytes {
			*s.seen = append(*s.seen, le.Uint64(b[hdrFeatures:])&featureNeedCheck != 0)
		}
	}
	return s.Target.Open(fs, p, o)
}

// TestHostileSeedParity: a planted image has NEED_CHECK set exactly when
// the seed is odd, as "hostile V S" documents (a recorded op replays the
// same image).
func TestHostileSeedParity(t *testing.T) {
	for _, c := range []check.Corruption{check.CorruptLeak, check.Corruptions()[0]} {
		for _, s := range []uint64{1, 2, 7, 1<<32 - 2} {
			var seen []bool
			require.NoError(t, runHostile(needCheckSpy{seen: &seen}, int(c), s), "corruption %s seed %d", c, s)
			require.NotEmpty(t, seen, "corruption %s seed %d: no read-only open", c, s)
			require.Equal(t, s%2 == 1, seen[0], "corruption %s seed %d: NEED_CHECK", c, s)
		}
	}
}

// hostileSpy is impl/qed with every disk it opens wrapped by wrap.
type hostileSpy struct {
	qedtarget.Target
	wrap func(fs afero.Fs, p string, o target.OpenOptions, d target.Disk) target.Disk
	// before is the file as it was before the last open.
	before *[]byte
}

func (s hostileSpy) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	*s.before, _ = afero.ReadFile(fs, p)
	d, err := s.Target.Open(fs, p, o)
	if err != nil {
		return nil, err
	}
	return s.wrap(fs, p, o, d), nil
}

var errInjected = errors.New("injected")

// closeFails: Close closes, then reports an error.
type closeFails struct{ target.Disk }

func (d closeFails) Close() error {
	d.Disk.Close()
	return errInjected
}

// lyingCheck repairs but reports nothing left, and then always finds a
// corruption.
type lyingCheck struct{ target.Disk }

func (d lyingCheck) Check(repair bool) (target.CheckResult, error) {
	if repair {
		_, err := d.Disk.Check(true)
		return target.CheckResult{}, err
	}
	return target.CheckResult{Corruptions: 1}, nil
}

// wrongReads reads every byte inverted.
type wrongReads struct{ target.Disk }

func (d wrongReads) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	for i := range p[:n] {
		p[i] ^= 0xff
	}
	return n, err
}

// staleReads answers, once the repair ran, every read it answered
// before with the bytes and error of then: an image reading through
// tables it cached before the repair rewrote them.
type staleReads struct {
	target.Disk
	repaired bool
	before   map[int64]staleRead
}

type staleRead struct {
	b   []byte
	err error
}

func (d *staleReads) ReadAt(p []byte, off int64) (int, error) {
	if r, ok := d.before[off]; ok && d.repaired && len(r.b) == len(p) {
		return copy(p, r.b), r.err
	}
	n, err := d.Disk.ReadAt(p, off)
	if !d.repaired {
		d.before[off] = staleRead{append([]byte(nil), p...), err}
	}
	return n, err
}

func (d *staleReads) Check(repair bool) (target.CheckResult, error) {
	r, err := d.Disk.Check(repair)
	d.repaired = d.repaired || repair
	return r, err
}

// restoresDamage closes, then writes back the damaged image it was opened
// on, NEED_CHECK cleared: a close that claims a clean image.
type restoresDamage struct {
	target.Disk
	fs      afero.Fs
	p       string
	damaged []byte
}

func (d restoresDamage) Close() error {
	if err := d.Disk.Close(); err != nil {
		return err
	}
	b := bytes.Clone(d.damaged)
	le.PutUint64(b[hdrFeatures:], le.Uint64(b[hdrFeatures:])&^featureNeedCheck)
	return afero.WriteFile(d.fs, d.p, b, 0o644)
}

// TestHostileJudgesTheRest: the judgements of a planted image that a
// target refusing or repairing well never reaches, each made to fail by a
// target wrong in one way only.
func TestHostileJudgesTheRest(t *testing.T) {
	// A corruption judged by its opens and checks: not a leak, not a
	// header field (refused).
	var c check.Corruption
	found := false
	for _, k := range check.Corruptions() {
		if k != check.CorruptLeak && k != check.CorruptHeaderField {
			c, found = k, true
			break
		}
	}
	require.True(t, found)
	// runHostile opens the base writable, the planted image read-only,
	// then writable (the repair).
	writable := 0
	var before []byte
	repairing := func(o target.OpenOptions) bool { return !o.ReadOnly && writable == 2 }
	for _, s := range []uint64{1, 2} { // NEED_CHECK set and clear
		require.NoError(t, runHostile(qedtarget.Target{}, int(c), s), "impl/qed itself, seed %d", s)
	}
	for _, tc := range []struct {
		name string
		wrap func(fs afero.Fs, p string, o target.OpenOptions, d target.Disk) target.Disk
		want string
		// needCheckClear: only the seed with NEED_CHECK clear (a set
		// one is repaired by the writable open, before any read).
		needCheckClear bool
	}{
		{"the read-only close fails", func(_ afero.Fs, _ string, o target.OpenOptions, d target.Disk) target.Disk {
			if o.ReadOnly {
				return closeFails{d}
			}
			return d
		}, "(read-only): injected", false},
		{"the close after the repair fails", func(_ afero.Fs, _ string, o target.OpenOptions, d target.Disk) target.Disk {
			if repairing(o) {
				return closeFails{d}
			}
			return d
		}, "after the repair: injected", false},
		{"the repair reports nothing left, the check after it finds damage", func(_ afero.Fs, _ string, _ target.OpenOptions, d target.Disk) target.Disk {
			return lyingCheck{d}
		}, "the repair reported none left", false},
		{"a read-only open reads wrong data", func(_ afero.Fs, _ string, o target.OpenOptions, d target.Disk) target.Disk {
			if o.ReadOnly {
				return wrongReads{d}
			}
			return d
		}, "read-only: untouched guest cluster at 0x", false},
		{"the repaired image closed as damaged as before, NEED_CHECK clear", func(fs afero.Fs, p string, o target.OpenOptions, d target.Disk) target.Disk {
			if !repairing(o) {
				return d
			}
			return restoresDamage{Disk: d, fs: fs, p: p, damaged: before}
		}, "has NEED_CHECK clear but is inconsistent", false},
		{"the repaired image reads what it read before the repair", func(_ afero.Fs, _ string, o target.OpenOptions, d target.Disk) target.Disk {
			if !repairing(o) {
				return d
			}
			return &staleReads{Disk: d, before: map[int64]staleRead{}}
		}, "differs from a fresh open of the file it left", true},
	} {
		for _, s := range []uint64{1, 2} {
			if tc.needCheckClear && s%2 == 1 {
				continue
			}
			writable = 0
			err := runHostile(hostileSpy{wrap: func(fs afero.Fs, p string, o target.OpenOptions, d target.Disk) target.Disk {
				if !o.ReadOnly {
					writable++
				}
				return tc.wrap(fs, p, o, d)
			}, before: &before}, int(c), s)
			require.ErrorContains(t, err, tc.want, "%s (%s, seed %d)", tc.name, c, s)
		}
	}
}
