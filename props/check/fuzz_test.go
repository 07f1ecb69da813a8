package check

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzCheckStructure feeds arbitrary bytes to the checker: it must never
// panic, the []byte and io.ReaderAt paths must agree exactly, and the
// report must be self-consistent.
func FuzzCheckStructure(f *testing.F) {
	// Seeds stay small (the fuzzer slows down on large inputs): a 4-cluster
	// image with table_size 1, the fixture and its corruptions.
	tiny := newTestImage(f, 4096, 1, 1, 1<<20)
	tiny.write(3, 1)
	f.Add(tiny.buf)
	f.Add(smallImage(f).buf)
	f.Add(newTestImage(f, 8192, 16, 3, 0).buf)
	for _, tc := range corruptions() {
		im := smallImage(f)
		tc.poke(im)
		f.Add(im.buf)
	}
	f.Add([]byte("QED\x00"))
	var c Checker
	f.Fuzz(func(t *testing.T, img []byte) {
		rep := c.Check(img)
		rep2, err := ReaderAt(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatalf("ReaderAt path failed: %v", err)
		}
		if !reflect.DeepEqual(rep, rep2) {
			t.Fatalf("paths disagree:\n%s\nvs\n%s", rep, rep2)
		}
		errs := 0
		for _, v := range rep.Violations {
			if v.Severity == SeverityError {
				errs++
			}
			if v.Msg == "" || v.Kind == ViolNone || v.At.Kind == LocNone {
				t.Fatalf("incomplete violation %+v", v)
			}
		}
		if rep.IsConsistent() != (errs == 0) {
			t.Fatalf("IsConsistent %v with %d errors:\n%s", rep.IsConsistent(), errs, rep)
		}
		if rep.Walked && (rep.Leaks > rep.FileClusters || rep.FileClusters != uint64(len(img))/uint64(rep.Header.ClusterSize)) {
			t.Fatalf("impossible counts:\n%s", rep)
		}
		if !rep.IsConsistent() && rep.Header.Magic == qedMagic && !rep.NeedCheck() && !rep.Has(ViolNeedCheckClearButInconsistent) {
			t.Fatalf("crash invariant not reported:\n%s", rep)
		}
		_ = rep.String()
	})
}
