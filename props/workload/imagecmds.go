package workload

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// The image commands: rebase (safe), rebase-unsafe (rebase -u) and commit
// run as a user runs qemu-img on an image no one has open: the image is
// closed cleanly (everything durable, as reopen), the command runs on the
// files through the target's target.ImageOps, and the image is opened
// again. None of them changes what the guest reads, so the model only
// records the clean close; what a crash in the middle may leave is
// stated in docs/campaigns.md ("The image commands") and enforced by the
// oracle (every guest byte: the model's sector rule, unchanged by the
// command; the header's backing name: BackingNames) and, for commit's
// base, by the campaign (BaseViews).
//
// The files the commands act on are made by the setup, before the image
// is first opened (so an out-of-process driver's snapshot of the files
// holds them), from the ops of the workload:
//
//   - rebase OFF LEN id=N (op i) rebases onto AltName(i), a raw file of the
//     image's size at op i holding what the image's backing file reads at
//     setup (zeros without one) with the pattern of id N over [OFF,
//     OFF+LEN): the clusters outside that range read the same through
//     either file and are not copied, those inside differ and are;
//   - rebase-unsafe LEN (op i) rebases -u onto a raw copy of what the
//     backing file in force at op i reads (the original backing file, or an
//     earlier rebase's AltName), named by UnsafeName(i, LEN): a LEN-byte
//     name ("./" repeated before copyI.raw) that spans header sectors when
//     LEN is long. The copy reads the same, so the guest view does not
//     change: rebase -u's documented use (the backing file was moved or
//     renamed). Its validity needs a backing file in force and no commit
//     before it (a commit changes the backing file's contents after the
//     setup made the copy).

// AltName is the file a safe rebase at op i rebases onto.
func AltName(i int) string { return fmt.Sprintf("alt%d.raw", i) }

// unsafeFile is the file rebase-unsafe at op i names.
func unsafeFile(i int) string { return fmt.Sprintf("copy%d.raw", i) }

// UnsafeName is the backing name rebase-unsafe LEN at op i writes into the
// header: n bytes naming copyI.raw (at least the file name's length).
func UnsafeName(i int, n int64) string {
	f := unsafeFile(i)
	pad := max(int(n)-len(f), 0)
	if pad < 3 { // too short to pad: the file name alone
		return f
	}
	extra := ""
	if pad%2 == 1 {
		extra = "/" // "././" then "/": still the same directory
	}
	return strings.Repeat("./", pad/2) + extra + f
}

// Bounds of rebase-unsafe's name length: the file name itself (plus room
// for the odd-length padding) up to well inside one 4 KiB header cluster
// with the old name beside it (impl/qed keeps both until the header
// switches).
const (
	minUnsafeName = 16
	maxUnsafeName = 1000
)

// backingAt returns the backing name in the header before each op and
// after the last (len(w.Ops)+1 names), and its format.
func (w *Workload) backingAt() (names, formats []string) {
	name, format := "", ""
	if len(w.Geometry.Backing) > 0 {
		format = w.Geometry.Backing[0].Format
		name = BackingName(0, format)
		if n := CraftedBackingName(w.Geometry); n != "" {
			name = n // a crafted image's header names it its own way
		}
	}
	for i, op := range w.Ops {
		names, formats = append(names, name), append(formats, format)
		switch op.Kind {
		case Rebase:
			name, format = "", ""
			if op.Len > 0 {
				name, format = AltName(i), "raw"
			}
		case RebaseUnsafe:
			name, format = UnsafeName(i, op.Len), "raw"
		}
	}
	return append(names, name), append(formats, format)
}

// BackingNames returns the backing file names the image's header may hold
// at a crash while op i is in progress (i -1: the setup; len(Ops): after
// the last op): the name in force, and while a rebase or rebase-unsafe is
// in progress the new name too ("" is no backing file). A header naming
// anything else (a name torn between the old and the new one) is a
// failure. It returns nil for a workload without a rebase or
// rebase-unsafe (the header's name is then the create command's, which a
// target may store in its own form, e.g. an absolute path).
func (w *Workload) BackingNames(i int) []string {
	if !slices.ContainsFunc(w.Ops, func(op Op) bool { return op.Kind == Rebase || op.Kind == RebaseUnsafe }) {
		return nil
	}
	names, _ := w.backingAt()
	i = max(min(i, len(w.Ops)), 0)
	out := []string{names[i]}
	if i < len(w.Ops) && names[i+1] != names[i] {
		out = append(out, names[i+1])
	}
	return out
}

// Prepare makes what op i needs that the setup did not make: the file an
// image command appended to W after NewExec acts on, durable, as the
// setup's (an Exec whose ops are appended as it runs: the state machine,
// props/statemachine, which prepares each op before it counts the op's
// syncs, so that a crash lands in the command, not in its setup). In a
// workload run whole the setup made it, and nothing is written; an image
// command prepares itself if its caller did not.
func (e *Exec) Prepare(i int) error {
	if i < 0 || i >= len(e.W.Ops) {
		return nil
	}
	return e.ensureImageFile(i)
}

// ensureImageFile makes the file image command op i acts on when it does
// not exist yet (Prepare).
func (e *Exec) ensureImageFile(i int) error {
	var name string
	switch op := e.W.Ops[i]; {
	case op.Kind == Rebase && op.Len > 0:
		name = AltName(i)
	case op.Kind == RebaseUnsafe:
		name = unsafeFile(i)
	default:
		return nil
	}
	p := path.Join(e.Dir, name)
	if _, err := e.FS.Stat(p); err == nil {
		return nil
	}
	m, err := chainModel(e.W.Geometry.Backing)
	if err != nil {
		return err
	}
	_, err = walkImageFiles(e.W, m, i+1, false, func(j int, n string, data []byte) error {
		if j != i {
			return nil
		}
		if err := writeRaw(e.FS, p, data, int64(len(data))); err != nil {
			return fmt.Errorf("workload: the file of op %d: %w", i, err)
		}
		return nil
	})
	return err
}

// IsImageCommand reports whether op is an image command
// (ImageCommandKinds).
func IsImageCommand(op Op) bool { return slices.Contains(ImageCommandKinds(), op.Kind) }

// RerunImageCommand runs image command op i again on the image's files,
// the image closed (Disk nil): what a user does after a crash or an error
// interrupted the command (each is idempotent: the same rebase or commit
// again finishes what the first one started). The state machine goes on
// so from a crash during one, so that the ops after it find the backing
// file the workload says is in force.
func (e *Exec) RerunImageCommand(i int) error {
	ops, ok := e.Target.(target.ImageOps)
	if !ok {
		return fmt.Errorf("%w: %s has no image commands (target.ImageOps)", ErrUnsupported, e.Target.Name())
	}
	if e.Disk != nil {
		return fmt.Errorf("workload: rerun of op %d with the image open", i)
	}
	if err := e.ensureImageFile(i); err != nil {
		return err
	}
	return e.imageCmd(i)(ops, e.FS, e.ImagePath())
}

// imageCmd is what image command op i runs on the closed image's files.
func (e *Exec) imageCmd(i int) func(ops target.ImageOps, fs afero.Fs, img string) error {
	op := e.W.Ops[i]
	switch op.Kind {
	case Rebase:
		name, format := "", ""
		if op.Len > 0 {
			name, format = AltName(i), "raw"
		}
		return func(ops target.ImageOps, fs afero.Fs, img string) error {
			return ops.Rebase(fs, img, name, format, false)
		}
	case RebaseUnsafe:
		name := UnsafeName(i, op.Len)
		return func(ops target.ImageOps, fs afero.Fs, img string) error {
			return ops.Rebase(fs, img, name, "raw", true)
		}
	case Commit:
		base := ""
		if op.Off > 0 && int(op.Off) <= len(e.W.Geometry.Backing) {
			base = BackingName(int(op.Off)-1, e.W.Geometry.Backing[op.Off-1].Format)
		}
		return func(ops target.ImageOps, fs afero.Fs, img string) error {
			var p progressCheck
			if err := ops.Commit(fs, img, target.CommitOptions{Drop: op.ID == 1, Base: base, Progress: p.call}); err != nil {
				return err
			}
			return p.finished()
		}
	}
	return func(target.ImageOps, afero.Fs, string) error {
		return fmt.Errorf("workload: op %d (%s) is not an image command", i, op)
	}
}

// walkImageFiles walks the ops of w before op upTo, calling emit with the
// name and contents of each file the setup makes for them, and returns
// what the backing file in force before op upTo reads as the setup made
// it (nil for none; always nil unless wantCur: reading the backing model
// whole costs its size). backing is the model of the geometry's backing
// file. The contents emitted are never changed afterwards: emit may keep
// them (the setup writes them frozen).
func walkImageFiles(w *Workload, backing *model.Disk, upTo int, wantCur bool, emit func(i int, name string, data []byte) error) ([]byte, error) {
	var cur []byte // what the backing file in force reads
	loaded := backing == nil
	load := func() error {
		if loaded {
			return nil
		}
		loaded = true
		cur = make([]byte, backing.Size())
		return backing.ReadAt(cur, 0)
	}
	for i, op := range w.Ops[:upTo] {
		switch op.Kind {
		case Rebase:
			if op.Len == 0 {
				cur, loaded = nil, true
				continue
			}
			if err := load(); err != nil {
				return nil, err
			}
			alt := make([]byte, w.SizeAt(i))
			copy(alt, cur)
			model.Fill(alt[op.Off:op.Off+op.Len], uint64(op.ID), op.Off)
			if err := emit(i, AltName(i), alt); err != nil {
				return nil, err
			}
			cur, loaded = alt, true
		case RebaseUnsafe:
			if err := load(); err != nil {
				return nil, err
			}
			if err := emit(i, unsafeFile(i), cur); err != nil {
				return nil, err
			}
		}
	}
	if !wantCur {
		return nil, nil
	}
	if err := load(); err != nil {
		return nil, err
	}
	return cur, nil
}

// CommitBase describes the base file of a commit at op i of w: its name
// in the Exec's directory, its format, and (fixed true) its guest contents
// when the commit starts, as the setup made them. ok is false when op i
// is not a commit; fixed is false when an earlier commit wrote the same
// file (its contents then depend on the run, and only the image's own
// view is judged).
//
// A commit's base is the backing file in force, or with -b N (Op.Off) the
// file at depth N of the geometry's chain (Cursor.Chain: no rebase before
// it). An earlier commit changed the base's contents when it wrote the
// same file, or a file deeper in the same chain (what the base reads
// through).
func (w *Workload) CommitBase(i int) (name, format string, old []byte, ok, fixed bool, err error) {
	if i < 0 || i >= len(w.Ops) || w.Ops[i].Kind != Commit {
		return "", "", nil, false, false, nil
	}
	names, formats := w.backingAt()
	base := func(j int) (name, format string, depth int) {
		if d := int(w.Ops[j].Off); d > 1 && d <= len(w.Geometry.Backing) {
			b := w.Geometry.Backing[d-1]
			return BackingName(d-1, b.Format), b.Format, d
		}
		return names[j], formats[j], 1
	}
	name, format, depth := base(i)
	for j := range i {
		if w.Ops[j].Kind != Commit {
			continue
		}
		if n, _, d := base(j); n == name || names[j] == names[i] && d > depth {
			return name, format, nil, true, false, nil
		}
	}
	if depth > 1 {
		m, err := chainModel(w.Geometry.Backing[depth-1:])
		if err != nil {
			return "", "", nil, false, false, err
		}
		old = make([]byte, m.Size())
		err = m.ReadAt(old, 0)
		return name, format, old, err == nil, err == nil, err
	}
	m, err := chainModel(w.Geometry.Backing)
	if err != nil {
		return "", "", nil, false, false, err
	}
	old, err = walkImageFiles(w, m, i, true, func(int, string, []byte) error { return nil })
	return name, format, old, err == nil, err == nil, err
}

// progressCheck checks the progress a commit reports
// (target.CommitOptions.Progress): (0, total) first, the same total
// throughout, done never decreasing nor above total, and (total, total)
// last once the commit returned success. A target that reports none
// passes.
type progressCheck struct {
	calls       int
	done, total int64
	err         error
}

func (p *progressCheck) call(done, total int64) {
	switch {
	case p.err != nil:
	case p.calls == 0 && (done != 0 || total < 0):
		p.err = fmt.Errorf("commit progress: first report (%d, %d), want (0, total)", done, total)
	case p.calls > 0 && total != p.total:
		p.err = fmt.Errorf("commit progress: total %d after %d", total, p.total)
	case done < p.done || done > total:
		p.err = fmt.Errorf("commit progress: done %d after %d, of %d", done, p.done, total)
	}
	p.calls++
	p.done, p.total = done, total
}

// finished is the check's verdict once the commit returned success.
func (p *progressCheck) finished() error {
	if p.err == nil && p.calls > 0 && p.done != p.total {
		p.err = fmt.Errorf("commit progress: ended at %d of %d", p.done, p.total)
	}
	return p.err
}

// ErrUnsupported is wrapped by the error of an op the target cannot run
// (an image command on a target without target.ImageOps).
var ErrUnsupported = errors.New("workload: op not supported by the target")

// imageCommand runs op i, an image command: a clean close (the model
// flushed), cmd on the closed image's files, a reopen whose size must be
// the model's. A crash during the close is judged against the model with
// the pending writes (the first snapshot), one during the command against
// the flushed model (the second).
func (e *Exec) imageCommand(i int) error {
	ops, ok := e.Target.(target.ImageOps)
	if !ok {
		return fmt.Errorf("%w: %s has no image commands (target.ImageOps)", ErrUnsupported, e.Target.Name())
	}
	if err := e.ensureImageFile(i); err != nil {
		return err
	}
	cmd := e.imageCmd(i)
	e.snapshot(i)
	err := e.Disk.Close()
	e.Disk = nil
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	e.Model.Flush() // a clean close makes everything durable
	e.snapshot(i)
	cerr := cmd(ops, e.FS, e.ImagePath())
	if e.CommandDone != nil {
		e.CommandDone(i)
	}
	if cerr == nil && e.W.Ops[i].Kind == Commit {
		cerr = e.checkCommitted(i)
	}
	// Open again even after a failed command: a fault may explain it, and
	// the workload then goes on.
	if e.Disk, err = e.Target.Open(e.FS, e.ImagePath(), e.OpenOptions(false)); err != nil {
		return errors.Join(cerr, fmt.Errorf("reopen: %w", err))
	}
	if cerr != nil {
		return cerr
	}
	if got, want := e.Disk.Size(), e.Model.Size(); got != want {
		return fmt.Errorf("size after %s is %#x, want %#x", e.W.Ops[i].Kind, got, want)
	}
	return nil
}

// maxCheckedCommit bounds the images whose base checkCommitted reads
// whole (as the setup of a rebase's file, maxRebaseImage).
const maxCheckedCommit = maxRebaseImage

// checkCommitted checks the base of commit op i once the command
// returned success, the image closed: the crash states during the commit
// allow each sector of the base old or new, so a commit that wrote
// nothing would pass them; here every sector must read the image's view
// (the model's, the model flushed by the clean close), except where the
// image would read what the base read before if nothing above the base
// allocated (the base's old contents, cut at the size of the smallest
// file between: the image reads zeros past it), where the base may keep
// its old contents (nothing above allocated there, or it allocated the
// same data). Past the image's size the base keeps its old contents, and
// its size is its old one or the image's, the larger. Only for a base
// whose old contents the workload fixes (Workload.CommitBase), and an
// image of at most maxCheckedCommit bytes.
func (e *Exec) checkCommitted(i int) error {
	name, format, old, ok, fixed, err := e.W.CommitBase(i)
	if err != nil || !ok || !fixed || e.Model.Size() > maxCheckedCommit {
		return err
	}
	view := make([]byte, e.Model.Size())
	if err := e.Model.ReadAt(view, 0); err != nil {
		return err
	}
	through := int64(len(old)) // the image reads the base's old contents below this
	if d := int(e.W.Ops[i].Off); d > 1 {
		for _, b := range e.W.Geometry.Backing[:d-1] {
			through = min(through, b.Size)
		}
	}
	p := path.Join(e.Dir, name)
	got, err := target.ReadGuest(e.Target, e.FS, p, format)
	if err != nil {
		return fmt.Errorf("commit base %s after the commit: %w", name, err)
	}
	if want := max(int64(len(old)), int64(len(view))); int64(len(got)) != want {
		return fmt.Errorf("commit base %s after the commit: size %#x, want %#x", name, len(got), want)
	}
	for lo := int64(0); lo < int64(len(got)); lo += model.SectorSize {
		hi := min(lo+model.SectorSize, int64(len(got)))
		g := got[lo:hi]
		oldS := make([]byte, hi-lo) // the base's old contents, zeros past them
		if lo < int64(len(old)) {
			copy(oldS, old[lo:min(hi, int64(len(old)))])
		}
		if hi > int64(len(view)) {
			if !bytes.Equal(g, oldS) {
				return fmt.Errorf("commit base %s after the commit: sector %#x past the image's size changed", name, lo)
			}
			continue
		}
		v := view[lo:hi]
		if bytes.Equal(g, v) {
			continue
		}
		readsThrough := lo >= through && !slices.ContainsFunc(v, func(b byte) bool { return b != 0 }) ||
			hi <= through && bytes.Equal(v, oldS)
		if !readsThrough || !bytes.Equal(g, oldS) {
			return fmt.Errorf("commit base %s after the commit: sector %#x reads neither the image's data nor, where the image reads through to it, its old contents", name, lo)
		}
	}
	return nil
}
