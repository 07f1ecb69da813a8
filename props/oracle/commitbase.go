package oracle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// StageCommitBase: after a crash during a commit (qemu-img commit), the
// base file's guest view is not one the rule allows: every 512-byte
// sector reads its contents from before the commit or the image's, and
// the base's size is its old size or the image's (a shorter base grows).
const StageCommitBase Stage = "commit-base"

// CommitBaseModel returns the model JudgeCommitBase judges a commit's base
// with: old (the base's guest contents when the commit started) durable,
// and pending over it a growth to the image's size when the base is
// shorter and one write of top's current contents (the image's guest view,
// which the commit copies where the image allocates, and which equals old
// everywhere else): so each sector is old or the image's, by the model's
// sector rule.
func CommitBaseModel(old []byte, top *model.Disk) (*model.Disk, error) {
	size := int64(len(old)) / model.SectorSize * model.SectorSize
	m, err := model.New(size, nil)
	if err != nil {
		return nil, err
	}
	if err := m.WriteBytes(0, old[:size]); err != nil {
		return nil, err
	}
	m.Flush()
	if top.Size() > size {
		if err := m.Grow(top.Size()); err != nil {
			return nil, err
		}
	}
	view := make([]byte, top.Size())
	if err := top.ReadAt(view, 0); err != nil {
		return nil, err
	}
	if err := m.WriteBytes(0, view); err != nil {
		return nil, err
	}
	return m, nil
}

// CommitBaseStructureError is RecoverCommitBase's error for a QED base
// left with NEED_CHECK clear over an inconsistency: Report is the
// independent checker's (the campaign's signature names its kinds, as for
// the image's structure stages).
type CommitBaseStructureError struct {
	Path   string
	Report *check.Report
}

func (e *CommitBaseStructureError) Error() string {
	return fmt.Sprintf("commit base %s: NEED_CHECK is clear but the image is inconsistent (%s)", e.Path, kindList(e.Report))
}

// RecoverCommitBase recovers the QED base file at path of a commit that
// crashed in the middle, before the image is judged: the base is an image
// being written, so it may need its own recovery (NEED_CHECK set, a table
// entry linked before its cluster's data landed); reading through it
// read-only, as the image's open does, does not repair it (QEMU 7.2's
// read-only opens do not either). The chain is recovered from the base
// up, as a user would (qemu-img check -r all BASE, then the image): the
// raw base must pass the independent checker (NEED_CHECK clear:
// consistent), then a writable open and a close through t repair it. A
// raw base needs nothing.
func RecoverCommitBase(t target.Target, fs afero.Fs, path, format string) error {
	if format == "raw" {
		return nil
	}
	rep, err := checkStructure(fs, path, check.File)
	if err != nil {
		return fmt.Errorf("commit base %s: %w", path, err)
	}
	if !rep.NeedCheck() && !rep.IsConsistent() {
		return &CommitBaseStructureError{Path: path, Report: rep}
	}
	d, err := t.Open(fs, path, target.OpenOptions{})
	if err != nil {
		return fmt.Errorf("commit base %s: writable open (its recovery): %w", path, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("commit base %s: close after its recovery: %w", path, err)
	}
	return nil
}

// ErrCommitBaseSize is wrapped by JudgeCommitBase's error when the base's
// size is neither its old size nor the image's (a shorter base grown by
// writes without a durable grow first: campaign signature
// .../commit-base/size).
var ErrCommitBaseSize = errors.New("oracle: commit base of a size the rule does not allow")

// JudgeCommitBase judges the base file at path (format "raw" or "qed",
// recovered by RecoverCommitBase) of a commit crashed in the middle
// against m (CommitBaseModel): its size must be one m allows and every
// guest byte must pass m's sector rule. nil when the base is allowed.
func JudgeCommitBase(t target.Target, fs afero.Fs, path, format string, m *model.Disk) error {
	return JudgeCommitBaseViews(t, fs, path, format, m, nil, nil)
}

// JudgeCommitBaseViews is JudgeCommitBase with the two contents m allows
// each sector given (durable: the base's old contents, zeros past them;
// view: the image's, as CommitBaseModel read it), so that a base whose
// every sector is one or the other passes on a byte comparison: with
// one pending write over the old contents, that is the sector rule
// exactly. Any other base is judged by m (the verdict and its message
// are JudgeCommitBase's). A caller judging many states of one commit
// builds the two once (the campaign: the model's judge of a whole base
// cost as much as the rest of the state).
func JudgeCommitBaseViews(t target.Target, fs afero.Fs, path, format string, m *model.Disk, durable, view []byte) error {
	if format != "raw" && format != "qed" {
		return fmt.Errorf("commit base %s: unknown format %q", path, format)
	}
	if format == "raw" && view != nil && rawBaseOneOf(fs, path, m, durable, view) {
		return nil
	}
	var pooled *[]byte
	var buf []byte
	if format == "qed" {
		pooled = guestPool.Get().(*[]byte)
		defer guestPool.Put(pooled)
		buf = *pooled
	}
	got, err := target.ReadGuestInto(t, fs, path, format, buf)
	if err != nil {
		return fmt.Errorf("commit base %s: %w", path, err)
	}
	if pooled != nil && cap(got) > cap(*pooled) && cap(got) <= maxPooledGuest {
		*pooled = got[:0]
	}
	if !slices.Contains(m.CrashSizes(), int64(len(got))) {
		return fmt.Errorf("%w: commit base %s: size %#x, the rule allows %#x", ErrCommitBaseSize, path, len(got), m.CrashSizes())
	}
	if view != nil && everySectorOneOf(got, durable, view) {
		return nil
	}
	if err := m.VerifyCrash(0, got); err != nil {
		return fmt.Errorf("commit base %s: a sector is neither its old contents nor the image's: %w", path, err)
	}
	return nil
}

// guestPool holds the buffers a QED commit base's guest view is read
// into (perf, issue 19 goal 5: a fresh buffer of the base's size for
// every crash state of a commit was two thirds of the bytes a 4 MiB-cluster
// campaign allocated, and the clearing of each a tenth of its commit
// bases' judging), up to maxPooledGuest bytes each: a longer view is read
// into a buffer of its own, as before.
var guestPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledGuest is the longest guest view read into a pooled buffer.
const maxPooledGuest = 64 << 20

// rawBaseOneOf reports whether the raw file at path has a size m allows
// and every sector equal to the same bytes of durable or of view, read
// in chunks into pooled scratch: what JudgeCommitBaseViews decides from
// the whole file, without a buffer of its size (perf, issue 19 goal 5:
// a fresh buffer of the base for every crash state of a commit to a raw
// base was 9 % of a 4 MiB-cluster campaign's CPU). The file's bytes are
// crashsim's or the host's, not the target's: how they are read does not
// change them. False when unsure (an open, stat or read error, a file
// that does not end at its stated size) as well as when the base does not
// pass: the caller then judges from the whole file as before, with the
// same error.
func rawBaseOneOf(fs afero.Fs, path string, m *model.Disk, durable, view []byte) bool {
	f, err := fs.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !slices.Contains(m.CrashSizes(), fi.Size()) {
		return false
	}
	size := fi.Size()
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	for off := int64(0); off < size; {
		p := sc.chunk[:min(int64(len(sc.chunk)), size-off)] // whole sectors but the file's last
		n, err := f.ReadAt(p, off)
		if n != len(p) || (err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == size)) {
			return false
		}
		a, b := durable[min(off, int64(len(durable))):], view[min(off, int64(len(view))):]
		if !everySectorOneOf(p, a, b) {
			return false
		}
		off += int64(n)
	}
	var one [1]byte
	n, _ := f.ReadAt(one[:], size) // read to the end, as a whole-file read does
	return n == 0
}

// everySectorOneOf reports whether each 512-byte sector of got (the last
// one possibly short) equals the same bytes of a or of b. A block of
// oneOfBlock bytes wholly equal to a's or to b's passes at once (each of
// its sectors does: perf, most of a commit base is one or the other over
// long stretches); only the other blocks are compared sector by sector.
func everySectorOneOf(got, a, b []byte) bool {
	for blo := 0; blo < len(got); blo += oneOfBlock {
		bhi := min(blo+oneOfBlock, len(got))
		g := got[blo:bhi]
		if (bhi <= len(a) && bytes.Equal(g, a[blo:bhi])) || (bhi <= len(b) && bytes.Equal(g, b[blo:bhi])) {
			continue
		}
		for lo := blo; lo < bhi; lo += model.SectorSize {
			hi := min(lo+model.SectorSize, len(got))
			g := got[lo:hi]
			if !(hi <= len(a) && bytes.Equal(g, a[lo:hi])) && !(hi <= len(b) && bytes.Equal(g, b[lo:hi])) {
				return false
			}
		}
	}
	return true
}

// oneOfBlock is everySectorOneOf's block, a multiple of the sector size.
const oneOfBlock = 64 << 10
