package faultfs

import (
	"errors"
	"syscall"
	"testing"
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
