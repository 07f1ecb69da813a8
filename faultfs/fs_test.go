package faultfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"
	"github.com/spf13/afero/mem"
)

// newFS wraps a fresh MemMapFs holding /d/img.qed (1 KiB of 0xAA) and /d/other.
func newFS(t testing.TB, seed int64, rules string) (*FS, afero.Fs) {
	t.Helper()
	base := afero.NewMemMapFs()
	if err := base.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := afero.WriteFile(base, "/d/img.qed", bytes.Repeat([]byte{0xAA}, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := afero.WriteFile(base, "/d/other", []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := NewFromString(base, seed, rules)
	if err != nil {
		t.Fatal(err)
	}
	return fs, base
}

func openRW(t testing.TB, fs afero.Fs, name string) afero.File {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readBase(t testing.TB, base afero.Fs, name string) []byte {
	t.Helper()
	b, err := afero.ReadFile(base, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestErrorFaults injects every errno fault into every operation and checks
// the error type, errors.Is, the log entry, and that the operation did not
// reach the wrapped Fs.
func TestErrorFaults(t *testing.T) {
	type action struct {
		op     Op
		path   string
		do     func(t *testing.T, fs *FS) error
		undone func(t *testing.T, base afero.Fs) // asserts the op was not performed
	}
	size := func(t *testing.T, base afero.Fs, name string, want int64) {
		fi, err := base.Stat(name)
		if err != nil || fi.Size() != want {
			t.Errorf("%s: size %v, %v; want %d", name, fi, err, want)
		}
	}
	exists := func(t *testing.T, base afero.Fs, name string, want bool) {
		if ok, _ := afero.Exists(base, name); ok != want {
			t.Errorf("%s exists = %v, want %v", name, ok, want)
		}
	}
	actions := []action{
		{OpOpen, "/d/img.qed", func(t *testing.T, fs *FS) error {
			f, err := fs.Open("/d/img.qed")
			if f != nil {
				t.Errorf("failed Open returned a non-nil File")
			}
			return err
		}, nil},
		{OpCreate, "/d/new", func(t *testing.T, fs *FS) error { _, err := fs.Create("/d/new"); return err },
			func(t *testing.T, base afero.Fs) { exists(t, base, "/d/new", false) }},
		{OpCreate, "/d/new", func(t *testing.T, fs *FS) error {
			_, err := fs.OpenFile("/d/new", os.O_RDWR|os.O_CREATE, 0o644)
			return err
		}, func(t *testing.T, base afero.Fs) { exists(t, base, "/d/new", false) }},
		{OpRead, "/d/img.qed", func(t *testing.T, fs *FS) error {
			b := make([]byte, 8)
			n, err := openRW(t, fs, "/d/img.qed").ReadAt(b, 0)
			if n != 0 || b[0] != 0 {
				t.Errorf("failed ReadAt returned n=%d b=%x", n, b)
			}
			return err
		}, nil},
		{OpRead, "/d/img.qed", func(t *testing.T, fs *FS) error {
			_, err := openRW(t, fs, "/d/img.qed").Read(make([]byte, 8))
			return err
		}, nil},
		{OpWrite, "/d/img.qed", func(t *testing.T, fs *FS) error {
			n, err := openRW(t, fs, "/d/img.qed").WriteAt([]byte("xx"), 0)
			if n != 0 {
				t.Errorf("failed WriteAt returned n=%d", n)
			}
			return err
		}, func(t *testing.T, base afero.Fs) {
			if b := readBase(t, base, "/d/img.qed"); b[0] != 0xAA {
				t.Errorf("failed write reached the file")
			}
		}},
		{OpWrite, "/d/img.qed", func(t *testing.T, fs *FS) error {
			_, err := openRW(t, fs, "/d/img.qed").WriteString("xx")
			return err
		}, func(t *testing.T, base afero.Fs) {
			if b := readBase(t, base, "/d/img.qed"); b[0] != 0xAA {
				t.Errorf("failed write reached the file")
			}
		}},
		{OpSync, "/d/img.qed", func(t *testing.T, fs *FS) error { return openRW(t, fs, "/d/img.qed").Sync() }, nil},
		{OpTruncate, "/d/img.qed", func(t *testing.T, fs *FS) error { return openRW(t, fs, "/d/img.qed").Truncate(10) },
			func(t *testing.T, base afero.Fs) { size(t, base, "/d/img.qed", 1024) }},
		{OpStat, "/d/img.qed", func(t *testing.T, fs *FS) error { _, err := fs.Stat("/d/img.qed"); return err }, nil},
		{OpStat, "/d/img.qed", func(t *testing.T, fs *FS) error { _, err := openRW(t, fs, "/d/img.qed").Stat(); return err }, nil},
		{OpRemove, "/d/other", func(t *testing.T, fs *FS) error { return fs.Remove("/d/other") },
			func(t *testing.T, base afero.Fs) { exists(t, base, "/d/other", true) }},
		{OpRemove, "/d", func(t *testing.T, fs *FS) error { return fs.RemoveAll("/d") },
			func(t *testing.T, base afero.Fs) { exists(t, base, "/d/other", true) }},
		{OpRename, "/d/other", func(t *testing.T, fs *FS) error { return fs.Rename("/d/other", "/d/moved") },
			func(t *testing.T, base afero.Fs) {
				exists(t, base, "/d/other", true)
				exists(t, base, "/d/moved", false)
			}},
		{OpMkdir, "/e", func(t *testing.T, fs *FS) error { return fs.Mkdir("/e", 0o755) },
			func(t *testing.T, base afero.Fs) { exists(t, base, "/e", false) }},
		{OpMkdir, "/e/f", func(t *testing.T, fs *FS) error { return fs.MkdirAll("/e/f", 0o755) },
			func(t *testing.T, base afero.Fs) { exists(t, base, "/e", false) }},
		{OpReaddir, "/d", func(t *testing.T, fs *FS) error {
			f, err := fs.Open("/d")
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Readdir(-1)
			return err
		}, nil},
		{OpReaddir, "/d", func(t *testing.T, fs *FS) error {
			f, err := fs.Open("/d")
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Readdirnames(-1)
			return err
		}, nil},
		{OpClose, "/d/img.qed", func(t *testing.T, fs *FS) error {
			f := openRW(t, fs, "/d/img.qed")
			err := f.Close()
			// The wrapped file is closed anyway.
			if _, rerr := f.(*File).Unwrap().ReadAt(make([]byte, 1), 0); !errors.Is(rerr, mem.ErrFileClosed) {
				t.Errorf("after failing Close, wrapped file still open: %v", rerr)
			}
			return err
		}, nil},
	}
	for _, fault := range []Fault{FaultEIO, FaultENOSPC, FaultEINTR} {
		for i, a := range actions {
			rule := a.op.String() + ":" + fault.String()
			t.Run(fmt.Sprintf("%s/%d", rule, i), func(t *testing.T) {
				fs, base := newFS(t, 1, rule)
				err := a.do(t, fs)
				if !errors.Is(err, errno(fault)) {
					t.Fatalf("error %v, want errors.Is %v", err, errno(fault))
				}
				var pe *os.PathError
				var le *os.LinkError
				if a.op == OpRename {
					if !errors.As(err, &le) || le.Old != "/d/other" || le.New != "/d/moved" {
						t.Errorf("rename error %#v, want *os.LinkError", err)
					}
				} else if !errors.As(err, &pe) || pe.Path != a.path {
					t.Errorf("error %#v, want *os.PathError on %s", err, a.path)
				}
				log := fs.Log()
				if len(log) != 1 {
					t.Fatalf("log has %d entries, want 1: %v", len(log), log)
				}
				in := log[0]
				if in.Op != a.op || in.Path != a.path || in.Fault != fault || in.Rule != 0 || in.RuleText != rule || in.Match != 1 {
					t.Errorf("log entry %v", in)
				}
				if in.Err != err || !errors.Is(fmt.Errorf("wrapped: %w", err), in.Err) {
					t.Errorf("log Err %v is not the returned error %v", in.Err, err)
				}
				if fs.Matches(0) != 1 || fs.Injected() != 1 {
					t.Errorf("matches %d injected %d, want 1, 1", fs.Matches(0), fs.Injected())
				}
				if a.undone != nil {
					a.undone(t, base)
				}
			})
		}
	}
}

func TestShortWrite(t *testing.T) {
	p := []byte("0123456789")
	for _, c := range []struct {
		rule string
		want int
	}{{"write:short", 5}, {"write:short=3", 3}, {"write:short=0", 0}, {"write:short=100", 9}} {
		fs, base := newFS(t, 1, c.rule)
		n, err := openRW(t, fs, "/d/img.qed").WriteAt(p, 100)
		if n != c.want || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s: WriteAt = %d, %v; want %d, ENOSPC", c.rule, n, err, c.want)
		}
		b := readBase(t, base, "/d/img.qed")
		if !bytes.Equal(b[100:100+c.want], p[:c.want]) || b[100+c.want] != 0xAA {
			t.Errorf("%s: stored %q, want prefix %q only", c.rule, b[100:110], p[:c.want])
		}
		if l := fs.Log(); len(l) != 1 || l[0].N != c.want || l[0].Detail != int64(c.want) || l[0].Err != err || l[0].Off != 100 || l[0].Len != 10 {
			t.Errorf("%s: log %v", c.rule, l)
		}
	}
	// Sequential Write: the position advances by what was stored.
	fs, base := newFS(t, 1, "write:short@nth=1")
	f := openRW(t, fs, "/d/img.qed")
	if n, err := f.Write(p); n != 5 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n, err := f.Write([]byte("ab")); n != 2 || err != nil {
		t.Fatalf("second Write = %d, %v", n, err)
	}
	if b := readBase(t, base, "/d/img.qed"); string(b[:7]) != "01234ab" || b[7] != 0xAA {
		t.Errorf("stored %q", b[:8])
	}
}

func TestLost(t *testing.T) {
	fs, base := newFS(t, 1, "write|sync|truncate:lost")
	f := openRW(t, fs, "/d/img.qed")
	if n, err := f.WriteAt([]byte("xyz"), 10); n != 3 || err != nil {
		t.Fatalf("lost WriteAt = %d, %v; want 3, nil", n, err)
	}
	if n, err := f.Write([]byte("abcd")); n != 4 || err != nil {
		t.Fatalf("lost Write = %d, %v", n, err)
	}
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != 4 {
		t.Errorf("position after lost Write = %d, want 4", pos)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("lost Sync = %v", err)
	}
	if err := f.Truncate(1); err != nil {
		t.Errorf("lost Truncate = %v", err)
	}
	if b := readBase(t, base, "/d/img.qed"); !bytes.Equal(b, bytes.Repeat([]byte{0xAA}, 1024)) {
		t.Errorf("lost operations changed the file")
	}
	l := fs.Log()
	if len(l) != 4 || l[0].Op != OpWrite || l[1].Op != OpWrite || l[1].Off != 0 || l[2].Op != OpSync || l[3].Op != OpTruncate || l[3].Off != 1 {
		t.Fatalf("log %v", l)
	}
	for _, in := range l {
		if in.Err != nil || in.Fault != FaultLost {
			t.Errorf("log entry %v", in)
		}
	}
}

func TestMisdirect(t *testing.T) {
	p := []byte("DATA")
	for _, c := range []struct {
		rule     string
		off, got int64
	}{
		{"write:misdirect=+512", 1024, 1536},
		{"write:misdirect=-512", 1024, 512},
		{"write:misdirect=-4k", 1024, 0},
		{"write:misdirect=+1", 0, 1},
		{"write:misdirect=+2048", 512, 2560},
	} {
		fs, base := newFS(t, 1, c.rule)
		if n, err := openRW(t, fs, "/d/img.qed").WriteAt(p, c.off); n != 4 || err != nil {
			t.Fatalf("%s: WriteAt = %d, %v", c.rule, n, err)
		}
		b := readBase(t, base, "/d/img.qed")
		if int64(len(b)) < c.got+4 || !bytes.Equal(b[c.got:c.got+4], p) {
			t.Errorf("%s: data not at %d", c.rule, c.got)
		}
		disjoint := c.off+4 <= c.got || c.got+4 <= c.off
		if disjoint && c.off+4 <= 1024 && !bytes.Equal(b[c.off:c.off+4], []byte{0xAA, 0xAA, 0xAA, 0xAA}) {
			t.Errorf("%s: intended offset %d was written", c.rule, c.off)
		}
		if l := fs.Log(); len(l) != 1 || l[0].Detail != c.got || l[0].Off != c.off || l[0].N != 4 {
			t.Errorf("%s: log %v", c.rule, l)
		}
	}
	// Sequential Write: stored displaced, position as if correct.
	fs, base := newFS(t, 1, "write:misdirect=+512@nth=1")
	f := openRW(t, fs, "/d/img.qed")
	if n, err := f.Write(p); n != 4 || err != nil {
		t.Fatal(n, err)
	}
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != 4 {
		t.Errorf("position %d, want 4", pos)
	}
	b := readBase(t, base, "/d/img.qed")
	if !bytes.Equal(b[512:516], p) || b[0] != 0xAA {
		t.Errorf("sequential misdirect stored wrong: %x %x", b[:4], b[512:516])
	}
}

func TestBitflip(t *testing.T) {
	read := func(fs *FS, off int64, n int) []byte {
		b := make([]byte, n)
		if _, err := openRW(t, fs, "/d/img.qed").ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		return b
	}
	diff := func(b []byte) (bits []int) {
		for i, x := range b {
			for j := 0; j < 8; j++ {
				if (x^0xAA)&(1<<j) != 0 {
					bits = append(bits, i*8+j)
				}
			}
		}
		return bits
	}
	// Fixed bit, whole buffer window.
	fs, _ := newFS(t, 1, "read:bitflip=13")
	if got := diff(read(fs, 0, 16)); !reflect.DeepEqual(got, []int{13}) {
		t.Errorf("bitflip=13 flipped %v", got)
	}
	// Fixed bit modulo the window (16 bytes = 128 bits).
	fs, _ = newFS(t, 1, "read:bitflip=130")
	if got := diff(read(fs, 0, 16)); !reflect.DeepEqual(got, []int{2}) {
		t.Errorf("bitflip=130 flipped %v", got)
	}
	// Window restricted by the byte range: read [100,200), range [150,160).
	fs, _ = newFS(t, 1, "read:bitflip=3@off=150-160")
	if got := diff(read(fs, 100, 100)); !reflect.DeepEqual(got, []int{50*8 + 3}) {
		t.Errorf("windowed bitflip flipped %v", got)
	}
	// Seeded bits stay inside the window, are deterministic, and vary.
	seen := map[int]bool{}
	for seed := int64(0); seed < 20; seed++ {
		fs, _ := newFS(t, seed, "read:bitflip@off=150-160")
		got := diff(read(fs, 100, 100))
		fs2, _ := newFS(t, seed, "read:bitflip@off=150-160")
		again := diff(read(fs2, 100, 100))
		if len(got) != 1 || got[0] < 50*8 || got[0] >= 60*8 || !reflect.DeepEqual(got, again) {
			t.Fatalf("seed %d: flipped %v then %v, want one bit in [400,480)", seed, got, again)
		}
		if l := fs.Log(); len(l) != 1 || l[0].Detail != int64(got[0]) || l[0].N != 100 {
			t.Errorf("seed %d: log %v", seed, l)
		}
		seen[got[0]] = true
	}
	if len(seen) < 5 {
		t.Errorf("20 seeds chose only %d distinct bits", len(seen))
	}
	// Sequential Read: the window uses the file position.
	fs, _ = newFS(t, 1, "read:bitflip=0@off=4-")
	f := openRW(t, fs, "/d/img.qed")
	b := make([]byte, 8)
	if _, err := f.Read(b); err != nil {
		t.Fatal(err)
	}
	if got := diff(b); !reflect.DeepEqual(got, []int{32}) {
		t.Errorf("sequential windowed bitflip flipped %v", got)
	}
	// Empty window (read at EOF): nothing flipped, Detail -1, EOF surfaces.
	fs, _ = newFS(t, 1, "read:bitflip")
	n, err := openRW(t, fs, "/d/img.qed").ReadAt(make([]byte, 4), 1024)
	if l := fs.Log(); n != 0 || err != io.EOF || len(l) != 1 || l[0].Detail != -1 || l[0].Err != io.EOF {
		t.Errorf("bitflip at EOF: n=%d err=%v log %v", n, err, l)
	}
}

// fired runs ops writes and returns the 1-based indices that failed.
func fired(t *testing.T, seed int64, rules string, ops int) []int {
	fs, _ := newFS(t, seed, rules)
	f := openRW(t, fs, "/d/img.qed")
	var got []int
	for i := 1; i <= ops; i++ {
		if _, err := f.WriteAt([]byte{1}, int64(i)); err != nil {
			got = append(got, i)
		}
	}
	if len(got) != fs.Injected() {
		t.Errorf("%s: %d errors but %d injections", rules, len(got), fs.Injected())
	}
	return got
}

func TestTriggers(t *testing.T) {
	cases := []struct {
		rule string
		want []int
	}{
		{"write:eio", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"write:eio@nth=3", []int{3}},
		{"write:eio@nth=11", nil},
		{"write:eio@every=3", []int{3, 6, 9}},
		{"write:eio@after=7", []int{8, 9, 10}},
		{"write:eio@after=0", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"write:eio@p=1", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"sync:eio", nil},
	}
	for _, c := range cases {
		if got := fired(t, 1, c.rule, 10); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s fired at %v, want %v", c.rule, got, c.want)
		}
	}
}

func TestProbability(t *testing.T) {
	const seed = 42
	t.Logf("seed %d", seed)
	a := fired(t, seed, "write:eio@p=0.25", 2000)
	b := fired(t, seed, "write:eio@p=0.25", 2000)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different firings")
	}
	if len(a) < 400 || len(a) > 600 {
		t.Errorf("p=0.25 fired %d of 2000", len(a))
	}
	if c := fired(t, seed+1, "write:eio@p=0.25", 2000); reflect.DeepEqual(a, c) {
		t.Errorf("different seeds, same firings")
	}
	// p with every: only multiples of 4, about half of them.
	e := fired(t, seed, "write:eio@every=4,p=0.5", 2000)
	for _, i := range e {
		if i%4 != 0 {
			t.Fatalf("every=4,p=0.5 fired at %d", i)
		}
	}
	if len(e) < 200 || len(e) > 300 {
		t.Errorf("every=4,p=0.5 fired %d of 500", len(e))
	}
	// A rule's decisions do not depend on other rules: with a rule on sync
	// before it and another write rule that never fires, same firings.
	if d := fired(t, seed, "sync:eio@p=0.3; write:enospc@nth=100000; write:eio@p=0.25", 2000); !reflect.DeepEqual(a, d) {
		t.Errorf("other rules changed a rule's decisions")
	}
}

func TestPrecedence(t *testing.T) {
	fs, _ := newFS(t, 1, "write:eio@nth=2; write:enospc@every=2; write:eintr@path=nomatch")
	f := openRW(t, fs, "/d/img.qed")
	var errs []error
	for i := 0; i < 6; i++ {
		_, err := f.WriteAt([]byte{1}, 0)
		errs = append(errs, err)
	}
	want := []error{nil, syscall.EIO, nil, syscall.ENOSPC, nil, syscall.ENOSPC}
	for i := range want {
		if (want[i] == nil) != (errs[i] == nil) || want[i] != nil && !errors.Is(errs[i], want[i]) {
			t.Errorf("write %d: %v, want %v", i+1, errs[i], want[i])
		}
	}
	// Every rule counted every matching op, shadowed or not.
	if fs.Matches(0) != 6 || fs.Matches(1) != 6 || fs.Matches(2) != 0 || fs.Matches(3) != 0 || fs.Matches(-1) != 0 {
		t.Errorf("matches %d %d %d", fs.Matches(0), fs.Matches(1), fs.Matches(2))
	}
	l := fs.Log()
	if len(l) != 3 || l[0].Rule != 0 || l[1].Rule != 1 || l[1].Match != 4 || l[2].Rule != 1 {
		t.Errorf("log %v", l)
	}
	// open + 6 writes.
	if fs.Ops() != 7 {
		t.Errorf("Ops = %d, want 7", fs.Ops())
	}
}

func TestPathMatching(t *testing.T) {
	cases := []struct {
		rule string
		op   func(fs *FS) error
		hit  bool
	}{
		{"open:eio@path=*.qed", func(fs *FS) error { _, err := fs.Open("/d/img.qed"); return err }, true},
		{"open:eio@path=*.qed", func(fs *FS) error { _, err := fs.Open("/d/other"); return err }, false},
		{"open:eio@path=img.*", func(fs *FS) error { _, err := fs.Open("d/../d/./img.qed"); return err }, true},
		{"open:eio@path=/d/*", func(fs *FS) error { _, err := fs.Open("/d//img.qed"); return err }, true},
		{"open:eio@path=/x/*", func(fs *FS) error { _, err := fs.Open("/d/img.qed"); return err }, false},
		{"open:eio@path=d", func(fs *FS) error { _, err := fs.Open("/d/img.qed"); return err }, false},
		{"rename:eio@path=*.qed", func(fs *FS) error { return fs.Rename("/d/other", "/d/new.qed") }, true},
		{"rename:eio@path=oth*", func(fs *FS) error { return fs.Rename("/d/other", "/d/new.qed") }, true},
		{"rename:eio@path=*.tmp", func(fs *FS) error { return fs.Rename("/d/other", "/d/new.qed") }, false},
		{"write:eio@path=*.qed", func(fs *FS) error { _, err := openRW(t, fs, "/d/img.qed").Write([]byte("x")); return err }, true},
		{"write:eio@path=*.qed", func(fs *FS) error { _, err := openRW(t, fs, "/d/other").Write([]byte("x")); return err }, false},
	}
	for _, c := range cases {
		fs, _ := newFS(t, 1, c.rule)
		err := c.op(fs)
		if c.hit != errors.Is(err, syscall.EIO) || c.hit != (fs.Injected() == 1) {
			t.Errorf("%s: err %v, injected %d, want hit=%v", c.rule, err, fs.Injected(), c.hit)
		}
	}
	fs, _ := newFS(t, 1, "rename:eio@path=*.qed")
	_ = fs.Rename("/d/other", "/d/new.qed")
	if l := fs.Log(); len(l) != 1 || l[0].Path != "/d/other" || l[0].NewPath != "/d/new.qed" {
		t.Errorf("rename log %v", l)
	}
}

func TestOffsetRange(t *testing.T) {
	cases := []struct {
		off int64
		n   int
		hit bool
	}{
		{0, 512, false}, {511, 1, false}, {511, 2, true}, {512, 0, true}, {1023, 1, true},
		{1024, 1, false}, {1024, 0, false}, {0, 2048, true}, {600, 10, true},
	}
	for _, c := range cases {
		fs, _ := newFS(t, 1, "write:eio@off=512-1024")
		_, err := openRW(t, fs, "/d/img.qed").WriteAt(make([]byte, c.n), c.off)
		if c.hit != (err != nil) {
			t.Errorf("write [%d,+%d) vs [512,1024): err %v, want hit=%v", c.off, c.n, err, c.hit)
		}
	}
	// Sequential Write at position 1000 hits; truncate matches on its size.
	fs, _ := newFS(t, 1, "write|truncate:eio@off=1000-")
	f := openRW(t, fs, "/d/img.qed")
	if _, err := f.Write(make([]byte, 10)); err != nil {
		t.Errorf("write at 0 failed: %v", err)
	}
	if _, err := f.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 10)); !errors.Is(err, syscall.EIO) {
		t.Errorf("write at 1000: %v", err)
	}
	if err := f.Truncate(999); err != nil {
		t.Errorf("truncate 999: %v", err)
	}
	if err := f.Truncate(5000); !errors.Is(err, syscall.EIO) {
		t.Errorf("truncate 5000: %v", err)
	}
	if l := fs.Log(); len(l) != 2 || l[0].Off != 1000 || l[0].Len != 10 || l[1].Off != 5000 {
		t.Errorf("log %v", l)
	}
	// An offset-bearing rule over read|stat: stat never matches it.
	fs, _ = newFS(t, 1, "read|stat:eio@off=0-")
	if _, err := fs.Stat("/d/img.qed"); err != nil || fs.Matches(0) != 0 {
		t.Errorf("stat matched an offset rule: %v, %d", err, fs.Matches(0))
	}
}

func TestOpenClassification(t *testing.T) {
	fs, _ := newFS(t, 1, "create:eio")
	if _, err := fs.OpenFile("/d/img.qed", os.O_RDWR, 0); err != nil {
		t.Errorf("OpenFile without O_CREATE hit a create rule: %v", err)
	}
	if _, err := fs.OpenFile("/d/img.qed", os.O_RDWR|os.O_CREATE, 0); !errors.Is(err, syscall.EIO) {
		t.Errorf("OpenFile with O_CREATE: %v", err)
	}
	var pe *os.PathError
	if _, err := fs.Create("/d/x"); !errors.As(err, &pe) || pe.Op != "open" {
		t.Errorf("Create error %v, want PathError with Op open (as os.Create)", err)
	}
}

func TestArmAndPassThrough(t *testing.T) {
	fs, base := newFS(t, 1, "*:eio")
	fs.Arm(false)
	f, err := fs.Create("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	if pos, err := f.Seek(1, io.SeekStart); pos != 1 || err != nil {
		t.Fatal(pos, err)
	}
	b := make([]byte, 4)
	if n, err := f.Read(b); n != 4 || err != nil || string(b) != "ello" {
		t.Fatalf("Read = %d %v %q", n, err, b)
	}
	if f.Name() != "/d/f" || fs.Name() != "faultfs(MemMapFS)" || fs.Base() != base || fs.Seed() != 1 {
		t.Errorf("names %q %q", f.Name(), fs.Name())
	}
	if err := fs.Chmod("/d/f", 0o600); err != nil {
		t.Error(err)
	}
	if err := f.Sync(); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
	// create, write, read, sync, close: Seek, Name, Chmod not counted.
	if fs.Ops() != 5 || fs.Matches(0) != 5 || fs.Injected() != 0 {
		t.Errorf("Ops %d matches %d injected %d", fs.Ops(), fs.Matches(0), fs.Injected())
	}
	fs.Arm(true)
	if _, err := fs.Stat("/d/f"); !errors.Is(err, syscall.EIO) {
		t.Errorf("re-armed Stat: %v", err)
	}
	if got := readBase(t, base, "/d/f"); string(got) != "hello" {
		t.Errorf("base holds %q", got)
	}
	if rs := fs.Rules(); len(rs) != 1 || rs.String() != "*:eio" {
		t.Errorf("Rules = %v", rs)
	}
}

// workload is deterministic: creates a file, writes 4 blocks with a sync
// after each pair, closes, and returns the first error.
func workload(fs afero.Fs) error {
	f, err := fs.Create("/w.qed")
	if err != nil {
		return err
	}
	for i := 0; i < 4; i++ {
		if _, err := f.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 512), int64(i)*512); err != nil {
			f.Close()
			return err
		}
		if i%2 == 1 {
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
		}
	}
	return f.Close()
}

func TestCountAndSweep(t *testing.T) {
	newBase := func() (afero.Fs, error) { return afero.NewMemMapFs(), nil }
	for _, c := range []struct {
		rule  string
		count uint64
	}{{"write:eio", 4}, {"sync:eio", 2}, {"*:eio", 8}, {"write:eio@off=1024-", 2}, {"write:eio@path=*.img", 0}} {
		r, err := ParseRule(c.rule)
		if err != nil {
			t.Fatal(err)
		}
		base, _ := newBase()
		n, err := Count(base, r, workload)
		if n != c.count || err != nil {
			t.Errorf("Count(%s) = %d, %v; want %d", c.rule, n, err, c.count)
		}
		var seen []uint64
		total, err := Sweep(r, 1, newBase, workload, func(n uint64, fs *FS, runErr error) error {
			seen = append(seen, n)
			l := fs.Log()
			if !errors.Is(runErr, syscall.EIO) || !errors.Is(runErr, l[0].Err) || l[0].Match != n {
				return fmt.Errorf("run error %v, log %v", runErr, l)
			}
			return nil
		})
		if err != nil || total != c.count || uint64(len(seen)) != c.count {
			t.Errorf("Sweep(%s) = %d, %v; checked %v", c.rule, total, err, seen)
		}
	}
	// A filter with no fault counts too.
	base, _ := newBase()
	if n, err := Count(base, Rule{Ops: Ops(OpSync, OpClose)}, workload); n != 3 || err != nil {
		t.Errorf("Count(sync|close) = %d, %v; want 3", n, err)
	}
	// check's error stops the sweep and is wrapped.
	errStop := errors.New("stop")
	r, _ := ParseRule("write:eio")
	if _, err := Sweep(r, 1, newBase, workload, func(n uint64, _ *FS, _ error) error {
		if n == 2 {
			return errStop
		}
		return nil
	}); !errors.Is(err, errStop) {
		t.Errorf("Sweep with failing check: %v", err)
	}
	// A workload doing fewer writes on later runs diverges.
	runs := 0
	shrinking := func(fs afero.Fs) error {
		runs++
		f, err := fs.Create("/x")
		if err != nil {
			return err
		}
		for i := 0; i < 4-runs; i++ {
			f.WriteAt([]byte{1}, 0)
		}
		return f.Close()
	}
	if _, err := Sweep(r, 1, newBase, shrinking, func(uint64, *FS, error) error { return nil }); !errors.Is(err, ErrSweepDiverged) {
		t.Errorf("diverging sweep: %v", err)
	}
}

// TestDeterminism replays a mixed workload twice with the same seed and
// requires identical logs and results.
func TestDeterminism(t *testing.T) {
	const seed = 7
	t.Logf("seed %d", seed)
	rules := "write:short@p=0.1; write:misdirect=-512@p=0.05,off=512-; read:bitflip@p=0.1; sync:eio@p=0.2; write:lost@every=7"
	run := func() ([]string, []byte) {
		fs, base := newFS(t, seed, rules)
		f := openRW(t, fs, "/d/img.qed")
		var out []string
		buf := make([]byte, 64)
		for i := 0; i < 300; i++ {
			off := int64(i*37) % 4096
			n, err := f.WriteAt(bytes.Repeat([]byte{byte(i)}, 40), off)
			out = append(out, fmt.Sprint(n, err))
			n, err = f.ReadAt(buf, off/2)
			out = append(out, fmt.Sprint(n, err, buf[:n]))
			if i%10 == 0 {
				out = append(out, fmt.Sprint(f.Sync()))
			}
		}
		for _, in := range fs.Log() {
			out = append(out, in.String())
		}
		return out, readBase(t, base, "/d/img.qed")
	}
	a, da := run()
	b, db := run()
	if !reflect.DeepEqual(a, b) || !bytes.Equal(da, db) {
		t.Fatal("same seed produced different runs")
	}
	if len(a) < 700 {
		t.Fatalf("too few records: %d", len(a))
	}
}

// TestConcurrent hammers one FS from several goroutines (run with -race):
// every injected error is reported to exactly one caller, and counters add up.
func TestConcurrent(t *testing.T) {
	const seed, workers, per = 3, 8, 200
	t.Logf("seed %d", seed)
	fs, _ := newFS(t, seed, "write:eio@p=0.1; read:bitflip@every=5; sync:enospc@every=3; stat:eintr@nth=7")
	var wg sync.WaitGroup
	var mu sync.Mutex
	errCount := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			f, err := fs.OpenFile("/d/img.qed", os.O_RDWR, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			local := 0
			b := make([]byte, 16)
			for i := 0; i < per; i++ {
				if _, err := f.WriteAt(b, int64(w*16)); err != nil {
					local++
				}
				if _, err := f.ReadAt(b, int64(w*16)); err != nil {
					local++
				}
				if err := f.Sync(); err != nil {
					local++
				}
				if _, err := f.Stat(); err != nil {
					local++
				}
			}
			mu.Lock()
			errCount += local
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	const n = workers * per
	if fs.Matches(0) != n || fs.Matches(1) != n || fs.Matches(2) != n || fs.Matches(3) != n {
		t.Errorf("matches %d %d %d %d, want %d each", fs.Matches(0), fs.Matches(1), fs.Matches(2), fs.Matches(3), n)
	}
	log := fs.Log()
	flips, errs := 0, 0
	for i, in := range log {
		if i > 0 && log[i-1].Seq >= in.Seq {
			t.Fatalf("log not in Seq order at %d", i)
		}
		if in.Fault == FaultBitflip {
			flips++
		} else {
			errs++
		}
	}
	if flips != n/5 || errs != errCount {
		t.Errorf("flips %d (want %d), injected errors %d vs %d seen by callers", flips, n/5, errs, errCount)
	}
	if fs.Ops() != workers*(4*per+2) {
		t.Errorf("Ops = %d, want %d", fs.Ops(), workers*(4*per+2))
	}
}

// TestOsFs runs the wrapper over the real file system.
func TestOsFs(t *testing.T) {
	dir := t.TempDir()
	fs, err := NewFromString(afero.NewOsFs(), 1, "sync:eio@nth=1; write:misdirect=+8@nth=2")
	if err != nil {
		t.Fatal(err)
	}
	name := dir + "/img.qed"
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("aaaa"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("bbbb"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("Sync: %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("second Sync: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil || string(got) != "aaaa\x00\x00\x00\x00bbbb" {
		t.Errorf("file holds %q, %v", got, err)
	}
	// Real errors pass through untouched.
	if _, err := fs.Open(dir + "/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open missing: %v", err)
	}
	if len(fs.Log()) != 2 {
		t.Errorf("log %v", fs.Log())
	}
}

func TestMustParse(t *testing.T) {
	if rs := MustParse("write:eio"); len(rs) != 1 {
		t.Errorf("MustParse = %v", rs)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParse of a bad rule did not panic")
		}
	}()
	MustParse("write:")
}

// TestDelay: a delay rule slows the operations it matches by its wait and
// then lets them proceed unchanged; its waits add up with other delay
// rules; it does not shadow a fault rule after it; each firing is logged
// with the wait and no error; and concurrent delayed operations wait in
// parallel (the wait is outside the wrapper's mutex).
func TestDelay(t *testing.T) {
	const d = 20 * time.Millisecond
	fs, base := newFS(t, 1, "read:delay=20ms@path=img.qed; read:delay=20ms@nth=2; read:eio@nth=3,path=img.qed")
	f := openRW(t, fs, "/d/img.qed")
	buf := make([]byte, 4)
	timed := func() (time.Duration, error) {
		start := time.Now()
		_, err := f.ReadAt(buf, 0)
		return time.Since(start), err
	}
	// Read 1: one delay, data intact.
	if el, err := timed(); err != nil || el < d || !bytes.Equal(buf, []byte{0xAA, 0xAA, 0xAA, 0xAA}) {
		t.Fatalf("read 1: %v after %v, %x", err, el, buf)
	}
	// Read 2: both delay rules fire: the waits add up.
	if el, err := timed(); err != nil || el < 2*d {
		t.Fatalf("read 2: %v after %v, want >= %v", err, el, 2*d)
	}
	// Read 3: delayed, then the eio rule still injects.
	if el, err := timed(); !errors.Is(err, syscall.EIO) || el < d {
		t.Fatalf("read 3: %v after %v, want EIO after >= %v", err, el, d)
	}
	// Another file: no delay rule matches.
	g := openRW(t, fs, "/d/other")
	start := time.Now()
	if _, err := g.ReadAt(buf[:1], 0); err != nil || time.Since(start) >= d {
		t.Fatalf("other file: %v after %v", err, time.Since(start))
	}
	// Writes pass untouched.
	if _, err := f.WriteAt([]byte{1}, 0); err != nil || readBase(t, base, "/d/img.qed")[0] != 1 {
		t.Fatalf("write: %v", err)
	}
	l := fs.Log()
	var delays, faults int
	for _, in := range l {
		switch in.Fault {
		case FaultDelay:
			delays++
			if in.Err != nil || in.Detail != int64(d) || in.Op != OpRead {
				t.Errorf("delay entry %v", in)
			}
		case FaultEIO:
			faults++
			if in.Rule != 2 || in.Match != 3 {
				t.Errorf("eio entry %v", in)
			}
		}
	}
	if delays != 4 || faults != 1 {
		t.Errorf("log has %d delays and %d faults, want 4 and 1: %v", delays, faults, l)
	}
	// Concurrent reads wait in parallel: 8 reads of 20 ms take far less
	// than 160 ms. The base is an OS file: afero's in-memory file is not
	// safe for concurrent ReadAt (it seeks), an OS file is.
	osBase := afero.NewBasePathFs(afero.NewOsFs(), t.TempDir())
	if err := afero.WriteFile(osBase, "/img.qed", bytes.Repeat([]byte{0xAA}, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	fs2, err := NewFromString(osBase, 1, "read:delay=20ms")
	if err != nil {
		t.Fatal(err)
	}
	h := openRW(t, fs2, "/img.qed")
	defer h.Close()
	var wg sync.WaitGroup
	start = time.Now()
	for range 8 {
		wg.Go(func() {
			b := make([]byte, 4)
			if _, err := h.ReadAt(b, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if el := time.Since(start); el < d || el >= 6*d {
		t.Errorf("8 concurrent delayed reads took %v, want [%v, %v)", el, d, 6*d)
	}
}

// TestPositionalIOSafe: a File is as safe for concurrent positional I/O as
// the file it wraps.
func TestPositionalIOSafe(t *testing.T) {
	fs, err := NewFromString(afero.NewOsFs(), 1, "read:delay=1ms")
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(t.TempDir() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.(*File).PositionalIOSafe() {
		t.Error("over an *os.File: not PositionalIOSafe")
	}
	mfs, _ := newFS(t, 1, "read:delay=1ms")
	if openRW(t, mfs, "/d/img.qed").(*File).PositionalIOSafe() {
		t.Error("over a mem.File: PositionalIOSafe")
	}
}
