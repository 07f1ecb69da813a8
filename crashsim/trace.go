package crashsim

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// OpKind names a recorded filesystem operation.
type OpKind uint8

const (
	OpCreate   OpKind = iota + 1 // new empty file at Path with id File
	OpMkdir                      // new directory at Path with id File
	OpWrite                      // Data at Off in File
	OpTruncate                   // File's length set to Size
	OpDiscard                    // Size bytes at Off read as zeros (dm-log discard; length unchanged)
	OpSync                       // File's data and length made durable
	OpDirSync                    // the entries of directory Path made durable
	OpRemove                     // entry Path removed
	OpRename                     // entry Path renamed to NewPath
	opKindEnd
)

var opNames = [...]string{OpCreate: "create", OpMkdir: "mkdir", OpWrite: "write", OpTruncate: "truncate",
	OpDiscard: "discard", OpSync: "sync", OpDirSync: "dirsync", OpRemove: "remove", OpRename: "rename"}

func (k OpKind) String() string {
	if k > 0 && k < opKindEnd {
		return opNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// isData reports whether the kind changes a file's bytes or length (the
// operations a crash may lose individually).
func (k OpKind) isData() bool { return k == OpWrite || k == OpTruncate || k == OpDiscard }

// Op is one recorded operation. Index is its position in the trace: a
// crash "at k" happens just before operation k, so ops 0..k-1 were issued.
// File is the id of the file (inode) the operation applies to; 0 means
// "resolve Path at replay" (traces read from a dm-log-writes log).
// Data is owned by the trace and must not be modified.
type Op struct {
	Index   int64
	Kind    OpKind
	File    uint64
	Path    string
	NewPath string // OpRename
	Off     int64  // OpWrite, OpDiscard
	Size    int64  // OpTruncate: new length; OpDiscard: length
	Data    []byte // OpWrite
	// Extends is set by the filesystem when a write or truncate made the
	// file longer than it was when issued; the size effect applies to
	// extending writes only.
	Extends bool
}

func (o Op) String() string {
	switch o.Kind {
	case OpWrite:
		return fmt.Sprintf("#%d write %s@%d+%d", o.Index, o.Path, o.Off, len(o.Data))
	case OpTruncate:
		return fmt.Sprintf("#%d truncate %s to %d", o.Index, o.Path, o.Size)
	case OpDiscard:
		return fmt.Sprintf("#%d discard %s@%d+%d", o.Index, o.Path, o.Off, o.Size)
	case OpRename:
		return fmt.Sprintf("#%d rename %s -> %s", o.Index, o.Path, o.NewPath)
	}
	return fmt.Sprintf("#%d %s %s", o.Index, o.Kind, o.Path)
}

// end is the first byte past a write or discard.
func (o *Op) end() int64 {
	if o.Kind == OpWrite {
		return o.Off + int64(len(o.Data))
	}
	return o.Off + o.Size
}

// Trace is the ordered list of operations a filesystem performed, from
// the image it started from (FS.Start). Ops[i].Index == i always.
type Trace struct {
	Ops []Op
}

// SyncPoints returns the indices of every file and directory sync in the
// trace: crashing just before each is the interesting sweep for the
// subset and torn models, whose states at a sync include those of every
// earlier point of the same epoch.
func (t *Trace) SyncPoints() []int64 {
	var out []int64
	for _, o := range t.Ops {
		if o.Kind == OpSync || o.Kind == OpDirSync {
			out = append(out, o.Index)
		}
	}
	return out
}

// Serialized trace layout (all integers are unsigned LEB128 varints,
// strings and data are a varint length then the bytes):
//
//	magic   "CRASHTR1"
//	count   number of operations
//	per op: kind, flags (bit0 Extends), file, path, [newpath if rename],
//	        [off if write/discard], [size if truncate/discard], [data if write]
const traceMagic = "CRASHTR1"

// MarshalBinary encodes the trace in the compact binary form above.
func (t *Trace) MarshalBinary() ([]byte, error) {
	b := append([]byte(nil), traceMagic...)
	b = binary.AppendUvarint(b, uint64(len(t.Ops)))
	for i, o := range t.Ops {
		if o.Index != int64(i) || o.Kind == 0 || o.Kind >= opKindEnd || o.Off < 0 || o.Size < 0 {
			return nil, fmt.Errorf("crashsim: encode trace: op %d (%v) is invalid", i, o)
		}
		var flags uint64
		if o.Extends {
			flags = 1
		}
		b = binary.AppendUvarint(b, uint64(o.Kind))
		b = binary.AppendUvarint(b, flags)
		b = binary.AppendUvarint(b, o.File)
		b = appendBytes(b, []byte(o.Path))
		if o.Kind == OpRename {
			b = appendBytes(b, []byte(o.NewPath))
		}
		if o.Kind == OpWrite || o.Kind == OpDiscard {
			b = binary.AppendUvarint(b, uint64(o.Off))
		}
		if o.Kind == OpTruncate || o.Kind == OpDiscard {
			b = binary.AppendUvarint(b, uint64(o.Size))
		}
		if o.Kind == OpWrite {
			b = appendBytes(b, o.Data)
		}
	}
	return b, nil
}

func appendBytes(b, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// traceDecoder reads varints and byte strings, bounded by the input.
type traceDecoder struct {
	b     []byte
	off   int
	entry int64
}

func (d *traceDecoder) fail(field string, v uint64, msg string) error {
	return &FormatError{Source: "trace", Entry: d.entry, Offset: int64(d.off), Field: field, Value: v, Msg: msg}
}

func (d *traceDecoder) uvarint(field string, max uint64) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, d.fail(field, 0, "truncated or overlong varint")
	}
	if v > max {
		return 0, d.fail(field, v, fmt.Sprintf("exceeds %d", max))
	}
	d.off += n
	return v, nil
}

func (d *traceDecoder) bytes(field string) ([]byte, error) {
	start := d.off
	n, err := d.uvarint(field+" length", uint64(len(d.b)-d.off))
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.b)-d.off) {
		d.off = start
		return nil, d.fail(field+" length", n, "runs past the end of the input")
	}
	s := slices.Clone(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s, nil
}

// UnmarshalBinary decodes a trace written by MarshalBinary. Every length
// is checked against the remaining input before anything is allocated.
func (t *Trace) UnmarshalBinary(b []byte) error {
	d := &traceDecoder{b: b, entry: -1}
	if len(b) < len(traceMagic) || string(b[:len(traceMagic)]) != traceMagic {
		return d.fail("magic", 0, "not an encoded crashsim trace")
	}
	d.off = len(traceMagic)
	// Each op takes at least 4 bytes, which bounds the count.
	count, err := d.uvarint("count", uint64(len(b))/4)
	if err != nil {
		return err
	}
	ops := make([]Op, 0, count)
	for i := range int64(count) {
		d.entry = i
		o := Op{Index: i}
		k, err := d.uvarint("kind", uint64(opKindEnd-1))
		if err != nil {
			return err
		}
		if k == 0 {
			return d.fail("kind", k, "unknown operation kind")
		}
		o.Kind = OpKind(k)
		flags, err := d.uvarint("flags", 1)
		if err != nil {
			return err
		}
		o.Extends = flags&1 != 0
		if o.File, err = d.uvarint("file", 1<<63-1); err != nil {
			return err
		}
		p, err := d.bytes("path")
		if err != nil {
			return err
		}
		o.Path = string(p)
		if o.Kind == OpRename {
			if p, err = d.bytes("newpath"); err != nil {
				return err
			}
			o.NewPath = string(p)
		}
		if o.Kind == OpWrite || o.Kind == OpDiscard {
			v, err := d.uvarint("off", 1<<62)
			if err != nil {
				return err
			}
			o.Off = int64(v)
		}
		if o.Kind == OpTruncate || o.Kind == OpDiscard {
			v, err := d.uvarint("size", 1<<62)
			if err != nil {
				return err
			}
			o.Size = int64(v)
		}
		if o.Kind == OpWrite {
			if o.Data, err = d.bytes("data"); err != nil {
				return err
			}
		}
		ops = append(ops, o)
	}
	if d.off != len(b) {
		d.entry = -1
		return d.fail("trailing bytes", uint64(len(b)-d.off), "input continues after the last operation")
	}
	t.Ops = ops
	return nil
}

// DecodeTrace is UnmarshalBinary returning a new trace.
func DecodeTrace(b []byte) (*Trace, error) {
	t := &Trace{}
	if err := t.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return t, nil
}
