package crashsim

import (
	"bytes"
	"path/filepath"
	"testing"
)

// FuzzReadDMLog: no input panics or allocates past the log's size; a log
// that parses replays on an empty file without panicking.
func FuzzReadDMLog(f *testing.F) {
	f.Add(gunzip(f, filepath.Join("..", "testdata", "dmlog", "img.log.gz")))
	f.Add(dmLog(512, 2, dmEntry(512, 1, 1, DMLogFUA, make([]byte, 512)), dmEntry(512, 0, 0, DMLogFlush, nil)))
	f.Fuzz(func(t *testing.T, log []byte) {
		tr, err := ReadDMLog(bytes.NewReader(log), int64(len(log)), "/d")
		if err != nil {
			return
		}
		var total int
		for _, o := range tr.Ops {
			total += len(o.Data)
		}
		if total > len(log) {
			t.Fatalf("%d data bytes from a %d-byte log", total, len(log))
		}
	})
}

// FuzzTraceDecode: decoding never panics, and what decodes re-encodes to
// the same bytes.
func FuzzTraceDecode(f *testing.F) {
	b, err := recordAll(f).Trace().MarshalBinary()
	must(f, err)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		var tr Trace
		if tr.UnmarshalBinary(in) != nil {
			return
		}
		out, err := tr.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded trace does not encode: %v", err)
		}
		var again Trace
		if err := again.UnmarshalBinary(out); err != nil || len(again.Ops) != len(tr.Ops) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
