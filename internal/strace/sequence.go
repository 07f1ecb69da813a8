package strace

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/qedtorture/qedtorture/crashsim"
)

// Sequence is the recording of programs run one after the other on one
// directory, as one trace over the directory's files as they were when
// the sequence began (Base). Each program's strace output is parsed with
// the files as the earlier ones left them (their lengths), and its
// operations are appended in order: the programs never overlap, so their
// traces concatenated are the order the files saw.
type Sequence struct {
	// Base is the directory's files when the sequence began, by relative
	// slash path ("/img.qed").
	Base  map[string][]byte
	Trace *crashsim.Trace
	// Starts holds, per appended program, the trace index its first
	// operation got; Prompts its prompts (Recording.Prompts, shifted).
	Starts  []int64
	Prompts [][]int64
	// IOUring is set when any program set up an io_uring.
	IOUring bool

	opts Options // for the next program: the files as the trace leaves them
}

// NewSequence snapshots dir and starts an empty sequence on it.
func NewSequence(dir string) (*Sequence, error) {
	base, opts, err := Snapshot(dir)
	if err != nil {
		return nil, err
	}
	return &Sequence{Base: base, Trace: &crashsim.Trace{}, opts: opts}, nil
}

// SequenceFrom starts an empty sequence on a snapshot Snapshot returned.
func SequenceFrom(base map[string][]byte, o Options) *Sequence {
	return &Sequence{Base: base, Trace: &crashsim.Trace{}, opts: o}
}

// Dir is the recorded directory (absolute).
func (s *Sequence) Dir() string { return s.opts.Dir }

// Append parses one program's strace output (run on the sequence's
// directory after every program appended before) and appends its
// operations to the trace.
func (s *Sequence) Append(r io.Reader) error {
	rec, err := Parse(r, s.opts)
	if err != nil {
		return err
	}
	off := int64(len(s.Trace.Ops))
	s.Starts = append(s.Starts, off)
	ps := make([]int64, len(rec.Prompts))
	for i, p := range rec.Prompts {
		ps[i] = off + p
	}
	s.Prompts = append(s.Prompts, ps)
	for _, op := range rec.Trace.Ops {
		op.Index = int64(len(s.Trace.Ops))
		s.Trace.Ops = append(s.Trace.Ops, op)
	}
	s.IOUring = s.IOUring || rec.IOUring
	s.opts.Files = rec.Files
	return nil
}

// AppendFile is Append of the strace output in file name.
func (s *Sequence) AppendFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("strace: %w", err)
	}
	defer f.Close()
	return s.Append(f)
}

// Output returns where the next program's strace output goes in scratch
// (a directory of the caller's, not the recorded one): Command's out,
// then AppendFile once the program has ended. The caller runs it (and
// owns its process group, timeout and cancellation).
func (s *Sequence) Output(scratch string) string {
	return filepath.Join(scratch, fmt.Sprintf("strace-seq%d.txt", len(s.Starts)))
}

// Verify checks that the trace replayed on Base gives the directory's
// files as they are now (Recording.Verify).
func (s *Sequence) Verify() error {
	return (&Recording{Trace: s.Trace, IOUring: s.IOUring}).Verify(s.Base, s.opts.Dir)
}

// Add appends operations made by someone the sequence does not trace (a
// harness writing a file between two programs), keeping the file lengths
// the next program is parsed with.
func (s *Sequence) Add(ops ...crashsim.Op) {
	for _, o := range ops {
		o.Index = int64(len(s.Trace.Ops))
		s.Trace.Ops = append(s.Trace.Ops, o)
		files := map[string]int64{}
		for f, n := range s.opts.Files {
			files[f] = n
		}
		switch o.Kind {
		case crashsim.OpWrite:
			files[o.Path] = max(files[o.Path], o.Off+int64(len(o.Data)))
		case crashsim.OpTruncate:
			files[o.Path] = o.Size
		case crashsim.OpCreate:
			files[o.Path] = 0
		case crashsim.OpRemove:
			delete(files, o.Path)
		}
		s.opts.Files = files
	}
}
