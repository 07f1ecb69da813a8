package qemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"

	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// Recorder is the recording mode of a Target (Target.Rec): the opens of
// one image go through QEMU's blklogwrites driver, so that every write
// and flush QEMU issues to the image file is logged, in order, in
// image.log beside it. The first open snapshots the image's directory
// (the image and its backing files, as the setup left them: the base the
// log replays on), creates an empty log, starts the one qemu-io process
// of the recording and opens the image with a fresh log; every later open
// (a reopen) appends to it (log-append) in the same process, so the
// whole run is one qemu-io session (Proc's log) that the artifact's
// repro.sh replays.
//
// The Disks it opens differ from a plain Target's in three ways, all for
// the recording: WriteAt sends its bytes through a pattern file under
// pat/ in the image's directory, named after its contents (patternName),
// so that the session's script reproduces the run from the artifact's
// files (WritePatterns writes the same files from the workload); Check
// runs the independent structural checker on QEMU's live file besides
// `qemu-img check -U`; and they implement target.GroupWriter with
// aio_write commands, which take only a byte pattern (PatternOnly). Close
// closes the image but leaves the process running for the next open; the
// recording ends it (Quit, Abort or Kill).
type Recorder struct {
	path string // the image recorded
	dir  string // its directory: backing files, image.log, pat/

	mu    sync.Mutex
	files map[string][]byte // the snapshot taken at the first open, by "/"+name
	proc  *qemuio.Proc
	tool  *qemutool.Tool
	pats  map[string]bool // pattern files written
	err   error           // the first error of a phase (Exec.Snapshot cannot return one)
	segs  []segment       // image commands recorded by their system calls (traced.go)
}

// NewRecorder returns the recording mode for the image at path (a real
// path; the log and the pattern files go into its directory).
func NewRecorder(path string) *Recorder {
	return &Recorder{path: path, dir: filepath.Dir(path), pats: map[string]bool{}}
}

// Proc returns the recording's qemu-io process (nil before the first open).
func (r *Recorder) Proc() *qemuio.Proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// Files returns the snapshot of the image's directory taken at the first
// open, by "/"+name.
func (r *Recorder) Files() map[string][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files
}

// Kill kills the recording's qemu-io process, if it still runs.
func (r *Recorder) Kill() {
	if p := r.Proc(); p != nil {
		_ = p.Kill()
	}
}

// logOpts returns the -o options of an open through blklogwrites.
func logOpts(appendLog bool) string {
	o := "driver=qed,file.driver=blklogwrites,file.file.driver=file,file.file.filename=" + workload.ImageName +
		",file.log.driver=file,file.log.filename=" + LogName + ",file.log-super-update-interval=1"
	if appendLog {
		return o + ",file.log-append=on"
	}
	return o + ",file.log-sector-size=512"
}

func (r *Recorder) open(tool *qemutool.Tool, o target.OpenOptions) (target.Disk, error) {
	if o.ReadOnly {
		return nil, errors.New("qemu: a recording opens its image writable")
	}
	if filepath.Base(r.path) != workload.ImageName {
		return nil, fmt.Errorf("qemu: a recording records %s, not %s", workload.ImageName, r.path)
	}
	r.mu.Lock()
	appendLog := r.proc != nil
	if !appendLog {
		if err := r.startLocked(tool); err != nil {
			r.mu.Unlock()
			return nil, err
		}
	}
	p := r.proc
	r.mu.Unlock()
	size, err := headerSize(r.path)
	if err != nil {
		return nil, err
	}
	if _, err := p.Do("open -o " + logOpts(appendLog)); err != nil {
		return nil, fmt.Errorf("qemu: open through blklogwrites: %w", err)
	}
	return &recDisk{&Disk{tool: tool, proc: p, path: r.path, size: size, rec: r, removeScratch: func() {}}}, nil
}

// startLocked snapshots the directory, creates the empty log and starts
// qemu-io.
func (r *Recorder) startLocked(tool *qemutool.Tool) error {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("qemu: snapshot: %w", err)
	}
	r.files = map[string][]byte{}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == LogName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.dir, e.Name()))
		if err != nil {
			return fmt.Errorf("qemu: snapshot: %w", err)
		}
		r.files["/"+e.Name()] = b
	}
	if err := os.WriteFile(filepath.Join(r.dir, LogName), nil, 0o644); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	p, err := qemuio.Start(tool.Ctx(), tool.IOPath, r.dir)
	if err != nil {
		return err
	}
	r.proc, r.tool = p, tool
	return nil
}

// patternName is the pattern file (relative to the image's directory) a
// recording writes data through: named after its contents.
func patternName(p []byte) string {
	sum := sha256.Sum256(p)
	return path.Join(PatternDir, fmt.Sprintf("%x.bin", sum[:8]))
}

func (r *Recorder) writeAt(p []byte, off int64) (int, error) {
	name := patternName(p)
	r.mu.Lock()
	if !r.pats[name] {
		if err := os.MkdirAll(filepath.Join(r.dir, PatternDir), 0o755); err != nil {
			r.mu.Unlock()
			return 0, fmt.Errorf("qemu: pattern file: %w", err)
		}
		if err := os.WriteFile(filepath.Join(r.dir, name), p, 0o644); err != nil {
			r.mu.Unlock()
			return 0, fmt.Errorf("qemu: pattern file: %w", err)
		}
		r.pats[name] = true
	}
	p2 := r.proc
	r.mu.Unlock()
	if _, err := p2.Do(fmt.Sprintf("write -q -s %s %d %d", name, off, len(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// check runs the independent structural checker on QEMU's live file (it
// must be consistent: QEMU writes its metadata through, so between
// commands the file is a consistent image, NEED_CHECK set or not) and
// then `qemu-img check -U`. A recording does not repair.
func (r *Recorder) check(d *Disk, repair bool) (target.CheckResult, error) {
	if repair {
		return target.CheckResult{}, errors.New("qemu: a recording does not repair its image")
	}
	rep, err := checkFile(afero.NewOsFs(), r.path)
	if err != nil {
		return target.CheckResult{}, err
	}
	if !rep.IsConsistent() {
		return target.CheckResult{}, fmt.Errorf("live image inconsistent:\n%s", rep)
	}
	c, _, err := checkJSON(d.tool, r.path, "-U")
	return c, err
}

// issueGroup sends one aio_write per write of ws, without waiting for them
// (a byte pattern each: every Data must repeat one byte).
func (r *Recorder) issueGroup(ws []target.GroupWrite) error {
	p := r.Proc()
	for _, w := range ws {
		var cmd string
		if w.Zero {
			cmd = fmt.Sprintf("aio_write -q -z %d %d", w.Off, w.Len)
		} else {
			if int64(len(w.Data)) != w.Len || w.Len == 0 || bytes.Count(w.Data, w.Data[:1]) != len(w.Data) {
				return fmt.Errorf("qemu: aio_write takes a one-byte pattern; the group write at %#x is not one", w.Off)
			}
			cmd = fmt.Sprintf("aio_write -q -P %d %d %d", w.Data[0], w.Off, w.Len)
		}
		if _, err := p.Do(cmd); err != nil {
			return err
		}
	}
	return nil
}

// entries reads nr_entries from the log's super block.
func (r *Recorder) entries() (uint64, error) {
	f, err := os.Open(filepath.Join(r.dir, LogName))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 16); err != nil {
		return 0, nil // not written yet
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// recDisk is a Disk opened by a Recorder: a target.GroupWriter.
type recDisk struct{ *Disk }

var _ target.GroupWriter = recDisk{}

// WriteGroup implements target.GroupWriter: every write is issued with
// aio_write, then aio_flush waits for them all.
func (d recDisk) WriteGroup(ws []target.GroupWrite) error {
	if err := d.rec.issueGroup(ws); err != nil {
		return err
	}
	_, err := d.proc.Do("aio_flush")
	return err
}

// PatternOnly implements target.GroupWriter: aio_write takes a byte pattern.
func (recDisk) PatternOnly() bool { return true }
