package qemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// ErrNotOSFS reports an afero.Fs that does not map to real files.
var ErrNotOSFS = errors.New("qemu: the filesystem must be afero.OsFs or a BasePathFs over it")

// Target drives QEMU's QED driver through target.Target: qemu-img creates
// images, and every open image is a Disk backed by one persistent
// interactive qemu-io process.
type Target struct {
	Tool *qemutool.Tool
	// Rec, when set, puts the target in recording mode: the opens of the
	// image Rec names go through QEMU's blklogwrites driver (see
	// Recorder); every other file is opened as usual.
	Rec *Recorder
	// cr, when set, records the creation (create.go): qemu-img create
	// runs under strace, and the harness's writes are added before each
	// command and before the recorded image's first open.
	cr *creating
}

var (
	_ target.Target          = Target{}
	_ target.PatternVerifier = (*Disk)(nil)
)

// Name implements target.Target.
func (Target) Name() string { return "qemu" }

// RealPath maps name on fs to a path on the OS filesystem.
func RealPath(fs afero.Fs, name string) (string, error) {
	switch f := fs.(type) {
	case *afero.OsFs:
		return filepath.Abs(name)
	case *afero.BasePathFs:
		p, err := f.RealPath(name)
		if err != nil {
			return "", fmt.Errorf("qemu: %s: %w", name, err)
		}
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("%w (got %T for %s)", ErrNotOSFS, fs, name)
}

// CreateArgs returns the qemu-img arguments that create an image with o
// at path (relative backing names are resolved by QEMU against the
// image's directory).
func CreateArgs(path string, o target.CreateOptions) []string {
	var opts []string // 0: QEMU's default, the format's
	if o.ClusterSize != 0 {
		opts = append(opts, fmt.Sprintf("cluster_size=%d", o.ClusterSize))
	}
	if o.TableSize != 0 {
		opts = append(opts, fmt.Sprintf("table_size=%d", o.TableSize))
	}
	args := []string{"create", "-q", "-f", "qed"}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	if o.BackingFile != "" {
		args = append(args, "-b", o.BackingFile)
		if o.BackingFormat != "" {
			args = append(args, "-F", o.BackingFormat)
		}
	}
	return append(args, path, strconv.FormatInt(o.Size, 10))
}

// Create implements target.Target with `qemu-img create -f qed`.
func (t Target) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	real, err := RealPath(fs, path)
	if err != nil {
		return err
	}
	if t.cr != nil {
		return t.cr.create(real, o)
	}
	_, err = t.Tool.Img(CreateArgs(real, o)...)
	return err
}

// Open implements target.Target: it starts one qemu-io process and opens
// the image in it (a writable open repairs an image with NEED_CHECK set).
func (t Target) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	real, err := RealPath(fs, path)
	if err != nil {
		return nil, err
	}
	if t.Rec != nil && real == t.Rec.path {
		if t.cr != nil && t.Rec.Proc() == nil {
			if err := t.cr.harness(); err != nil {
				return nil, err
			}
		}
		return t.Rec.open(t.Tool, o)
	}
	size, err := headerSize(real)
	if err != nil {
		return nil, err
	}
	scratch, removeScratch, err := tempDir("qedtorture-qemu-pat-")
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	p, err := qemuio.Start(t.Tool.Ctx(), t.Tool.IOPath, filepath.Dir(real))
	if err != nil {
		removeScratch()
		return nil, err
	}
	d := &Disk{tool: t.Tool, proc: p, path: real, readOnly: o.ReadOnly, size: size, removeScratch: removeScratch, scratch: scratch}
	if _, err := p.Do(d.openCmd()); err != nil {
		d.shutdown()
		return nil, fmt.Errorf("qemu: open %s: %w", real, err)
	}
	return d, nil
}

// headerSize reads image_size from a QED header.
func headerSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("qemu: %w", err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 48); err != nil {
		return 0, fmt.Errorf("qemu: reading image_size of %s: %w", path, err)
	}
	return int64(binary.LittleEndian.Uint64(b[:])), nil
}

// Disk is an image open in one qemu-io process. Its methods are safe for
// concurrent use (qemu-io runs one command at a time).
type Disk struct {
	tool     *qemutool.Tool
	proc     *qemuio.Proc
	path     string
	readOnly bool
	size     int64
	scratch  string // pattern files for write -s
	// removeScratch removes scratch (and takes it off cleanup's list).
	removeScratch func()
	mu            sync.Mutex // guards seq and size
	seq           int
	closed        bool
	rec           *Recorder // recording mode (see Recorder); nil otherwise
}

func (d *Disk) openCmd() string {
	if d.readOnly {
		return "open -r -o driver=qed " + filepath.Base(d.path)
	}
	return "open -o driver=qed " + filepath.Base(d.path)
}

// Proc returns the qemu-io process behind d.
func (d *Disk) Proc() *qemuio.Proc { return d.proc }

// ReadAt implements io.ReaderAt with `read -v` (hex dump), 1 MiB per command.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	return d.proc.ReadAt("qemu", p, off)
}

// patternChunk bounds one `read -P` of VerifyPattern (no output: qemu-io
// only allocates the buffer).
const patternChunk = 16 << 20

// VerifyPattern implements target.PatternVerifier with `read -q -P`:
// QEMU compares the bytes it reads with b itself ("Pattern verification
// failed" when one differs), no hex dump.
func (d *Disk) VerifyPattern(off, n int64, b byte) (bool, error) {
	for end := off + n; off < end; off += patternChunk {
		c := min(patternChunk, end-off)
		out, err := d.proc.Do(fmt.Sprintf("read -q -P %d %d %d", b, off, c))
		var ce *qemuio.CommandError
		switch {
		case errors.As(err, &ce) && strings.Contains(out, "Pattern verification failed"):
			return false, nil
		case err != nil:
			return false, err
		}
	}
	return true, nil
}

// WriteAt implements io.WriterAt with `write -s FILE` (the bytes go
// through a pattern file).
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	if d.rec != nil {
		return d.rec.writeAt(p, off)
	}
	d.mu.Lock()
	d.seq++
	name := filepath.Join(d.scratch, fmt.Sprintf("w%d.bin", d.seq))
	d.mu.Unlock()
	if err := os.WriteFile(name, p, 0o644); err != nil {
		return 0, fmt.Errorf("qemu: pattern file: %w", err)
	}
	defer os.Remove(name)
	if _, err := d.proc.Do(fmt.Sprintf("write -s %s %d %d", name, off, len(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteZeroes implements target.Disk with `write -z`.
func (d *Disk) WriteZeroes(off, n int64) error {
	q := ""
	if d.rec != nil {
		q = "-q "
	}
	_, err := d.proc.Do(fmt.Sprintf("write %s-z %d %d", q, off, n))
	return err
}

// Flush implements target.Disk.
func (d *Disk) Flush() error {
	_, err := d.proc.Do("flush")
	return err
}

// Size implements target.Disk.
func (d *Disk) Size() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.size
}

// Resize implements target.Disk with `truncate`.
func (d *Disk) Resize(size int64) error {
	if _, err := d.proc.Do(fmt.Sprintf("truncate %d", size)); err != nil {
		return err
	}
	d.mu.Lock()
	d.size = size
	d.mu.Unlock()
	return nil
}

// Check implements target.Disk with `qemu-img check`: without repair it
// reads the live image with shared permissions (-U); with repair it closes
// the image in qemu-io, runs `check -r all` and opens it again.
func (d *Disk) Check(repair bool) (target.CheckResult, error) {
	if d.rec != nil {
		return d.rec.check(d, repair)
	}
	if !repair {
		c, _, err := checkJSON(d.tool, d.path, "-U")
		return c, err
	}
	if _, err := d.proc.Do("close"); err != nil {
		return target.CheckResult{}, err
	}
	c, _, err := checkJSON(d.tool, d.path, "-r", "all")
	if _, oerr := d.proc.Do(d.openCmd()); oerr != nil && err == nil {
		err = oerr
	}
	return c, err
}

// checkJSON runs qemu-img check --output=json with extra args and returns
// the counts and the exit code (0 clean, 2 corruptions, 3 leaks, 1 failed).
func checkJSON(tool *qemutool.Tool, path string, extra ...string) (target.CheckResult, int, error) {
	args := append([]string{"check", "-f", "qed", "--output=json"}, extra...)
	res, err := tool.RunImg(append(args, path)...)
	if err != nil {
		return target.CheckResult{}, -1, err
	}
	c, perr := qemutool.ParseCheck(res.Stdout)
	if perr != nil {
		return target.CheckResult{}, res.ExitCode, fmt.Errorf("qemu: check %s: exit %d: %s", path, res.ExitCode, res.Stderr)
	}
	r := target.CheckResult{Corruptions: c.Corruptions, Leaks: c.Leaks, CheckErrors: c.CheckErrors}
	if c.CorruptionsFixed != nil {
		r.CorruptionsFixed = *c.CorruptionsFixed
	}
	return r, res.ExitCode, nil
}

// Close implements target.Disk: `close` (QEMU flushes and clears
// NEED_CHECK) and the process quits.
func (d *Disk) Close() error {
	if d.closed {
		return errors.New("qemu: disk already closed")
	}
	_, err := d.proc.Do("close")
	if d.rec != nil { // the recording's qemu-io lives on (Recorder.Proc)
		d.closed = true
		return err
	}
	if qerr := d.shutdown(); err == nil {
		err = qerr
	}
	return err
}

func (d *Disk) shutdown() error {
	d.closed = true
	err := d.proc.Quit()
	d.removeScratch()
	return err
}
