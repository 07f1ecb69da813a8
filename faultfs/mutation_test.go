package faultfs

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/afero"
)

// Tests written for mutants that survived the rest of the suite (see
// docs/mutation.md).

// TestShortWriteNeverWhole: a short write stores at most len(p)-1 bytes,
// also when its argument is the length itself or one more.
func TestShortWriteNeverWhole(t *testing.T) {
	p := []byte("0123456789")
	for _, rule := range []string{"write:short=10", "write:short=11"} {
		fs, _ := newFS(t, 1, rule)
		if n, err := openRW(t, fs, "/d/img.qed").WriteAt(p, 0); n != 9 || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s: WriteAt of 10 bytes = %d, %v; want 9, ENOSPC", rule, n, err)
		}
	}
}

// TestOffsetRuleSkipsSyncAndClose: sync and close carry no offset, so a
// rule restricted to a byte range never matches them.
func TestOffsetRuleSkipsSyncAndClose(t *testing.T) {
	fs, _ := newFS(t, 1, "write|sync|close:eio@off=0-")
	f := openRW(t, fs, "/d/img.qed")
	if err := f.Sync(); err != nil {
		t.Errorf("sync matched an offset rule: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close matched an offset rule: %v", err)
	}
	if fs.Matches(0) != 0 {
		t.Errorf("%d matches of an offset rule by sync and close", fs.Matches(0))
	}
}

// TestOffsetRuleSkipsOpsWithoutOffset: stat, readdir, open, create,
// remove, mkdir and rename carry no offset either: a rule over a set that
// also holds read is restricted to reads by its byte range.
func TestOffsetRuleSkipsOpsWithoutOffset(t *testing.T) {
	fs, _ := newFS(t, 1, "*:eio@off=0-")
	f := openRW(t, fs, "/d/img.qed")
	if _, err := f.Stat(); err != nil {
		t.Errorf("file stat: %v", err)
	}
	d, err := fs.Open("/d")
	if err != nil {
		t.Fatalf("open of a directory: %v", err)
	}
	if _, err := d.Readdir(-1); err != nil {
		t.Errorf("readdir: %v", err)
	}
	if _, err := d.Readdirnames(-1); err != nil {
		t.Errorf("readdirnames: %v", err)
	}
	c, err := fs.Create("/d/new")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := fs.Mkdir("/d/sub", 0o755); err != nil {
		t.Errorf("mkdir: %v", err)
	}
	if err := fs.Rename("/d/new", "/d/new2"); err != nil {
		t.Errorf("rename: %v", err)
	}
	if err := fs.Remove("/d/sub"); err != nil {
		t.Errorf("remove: %v", err)
	}
	if _, err := fs.Stat("/d/img.qed"); err != nil {
		t.Errorf("stat: %v", err)
	}
	if fs.Matches(0) != 0 || len(fs.Log()) != 0 {
		t.Errorf("operations without an offset matched a byte-range rule %d times: %v", fs.Matches(0), fs.Log())
	}
	c.Close()
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, syscall.EIO) {
		t.Errorf("a read in the range did not match: %v", err)
	}
}

// TestNames: out-of-range operations and faults print as numbers; an
// injection's text names both paths of a rename.
func TestNames(t *testing.T) {
	if got := Op(numOps).String(); got != fmt.Sprintf("Op(%d)", numOps) {
		t.Errorf("Op(numOps).String() = %q", got)
	}
	if OpSet(1 << numOps).Has(numOps) {
		t.Error("an op past the last is in a set")
	}
	for _, f := range []Fault{0, numFaults} {
		if got := f.String(); got != fmt.Sprintf("Fault(%d)", f) {
			t.Errorf("Fault(%d).String() = %q", f, got)
		}
	}
	in := Injection{Op: OpRename, Path: "/a", NewPath: "/b"}
	if s := in.String(); !strings.Contains(s, "/a -> /b") {
		t.Errorf("rename injection: %q", s)
	}
	if s := (Injection{Op: OpWrite, Path: "/a"}).String(); strings.Contains(s, "->") {
		t.Errorf("write injection: %q", s)
	}
}

// TestRuleTextRoundTrip: a rule's text parses back to itself, arguments
// of 0 and probabilities with many digits included; numbers are plain
// decimal digits up to the largest int64.
func TestRuleTextRoundTrip(t *testing.T) {
	for _, text := range []string{"write:short=0", "write:misdirect=+4096", "write:misdirect=-512",
		"write:eio@p=0.125", "write:eio@p=0.0123456789", "write:eio@nth=9223372036854775807"} {
		r, err := ParseRule(text)
		if err != nil {
			t.Errorf("%s: %v", text, err)
			continue
		}
		if got := r.String(); got != text {
			t.Errorf("%s prints as %s", text, got)
		}
	}
	for _, bad := range []string{"write:eio@nth=+5", "write:eio@nth=5x", "write:eio@nth=9223372036854775808"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

// TestSweepStopsAtMaxFailures: a sweep stops at MaxFailures failing runs.
func TestSweepStopsAtMaxFailures(t *testing.T) {
	newBase := func() (afero.Fs, error) { return afero.NewMemMapFs(), nil }
	run := func(fs afero.Fs) error {
		f, err := fs.Create("/f")
		if err != nil {
			return err
		}
		defer f.Close()
		for i := range 4 {
			if _, err := f.WriteAt([]byte("data"), int64(i*4)); err != nil {
				return nil // swallowed: every run fails the check
			}
		}
		return nil
	}
	check := func(o Outcome) error {
		if o.Injection != nil && !errors.Is(o.Err, o.Injection.Err) {
			return errors.New("the fault did not surface")
		}
		return nil
	}
	for _, max := range []int{1, 2} {
		rep, err := SweepRules(MustParse("write:eio"), SweepOptions{MaxFailures: max}, newBase, run, check)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Failures) != max || !rep.Stopped {
			t.Errorf("MaxFailures %d: %d failures, stopped %v", max, len(rep.Failures), rep.Stopped)
		}
	}
}
