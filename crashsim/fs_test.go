package crashsim

import (
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/afero"
)

// TestDurability is the table of durability semantics: for each scenario,
// the set of contents a file may have after a crash, per model.
func TestDurability(t *testing.T) {
	z := func(n int) string { return strings.Repeat("\x00", n) }
	type want map[string]map[string]bool // model -> set of contents
	cases := []struct {
		name string
		opts Options
		run  func(t *testing.T, f *FS)
		file string
		want want
		// nsPending: a namespace change is not durable, so keeping every
		// data operation need not give the live view.
		nsPending bool
	}{
		{
			name: "write-sync-write-crash",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				syncDir(t, f, "/")
				mustWriteAt(t, h, "AAAA", 0)
				must(t, h.Sync())
				mustWriteAt(t, h, "BB", 0)
			},
			file: "/a",
			want: want{"drop": set("AAAA"), "prefix": set("AAAA", "BBAA"), "subset": set("AAAA", "BBAA"),
				"torn512": set("AAAA", "BBAA")},
		},
		{
			name: "two unsynced writes, missing flush between them",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				syncDir(t, f, "/")
				mustWriteAt(t, h, "....", 0)
				must(t, h.Sync())
				mustWriteAt(t, h, "D", 0) // data
				mustWriteAt(t, h, "M", 3) // metadata that points at it
			},
			file: "/a",
			want: want{"drop": set("...."), "prefix": set("....", "D...", "D..M"),
				"subset": set("....", "D...", "...M", "D..M")},
		},
		{
			name: "create without directory sync is lost",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/new")
				mustWriteAt(t, h, "data", 0)
				must(t, h.Sync())
			},
			file: "/new",
			want: want{"drop": set(absent), "subset": set(absent)},
		},
		{
			name: "create with directory sync survives",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/new")
				mustWriteAt(t, h, "data", 0)
				must(t, h.Sync())
				syncDir(t, f, "/")
			},
			file: "/new",
			want: want{"drop": set("data"), "subset": set("data")},
		},
		{
			name: "create, directory sync, unsynced data",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/new")
				syncDir(t, f, "/")
				mustWriteAt(t, h, "data", 0)
			},
			file: "/new",
			want: want{"drop": set(""), "subset": set("", "data"), "drop+size": set("", z(4))},
		},
		{
			name: "implicit directory sync",
			opts: Options{ImplicitDirSync: true},
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/new")
				mustWriteAt(t, h, "data", 0)
				must(t, h.Sync())
			},
			file: "/new",
			want: want{"drop": set("data")},
		},
		{
			name: "file in a directory whose own entry is not durable",
			run: func(t *testing.T, f *FS) {
				must(t, f.Mkdir("/d", 0o755))
				h := mustCreate(t, f, "/d/x")
				mustWriteAt(t, h, "x", 0)
				must(t, h.Sync())
				syncDir(t, f, "/d") // but not "/"
			},
			file: "/d/x",
			want: want{"drop": set(absent)},
		},
		{
			name:      "rename over without directory sync keeps the old file",
			nsPending: true,
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				mustWriteAt(t, h, "old", 0)
				must(t, h.Sync())
				syncDir(t, f, "/")
				n := mustCreate(t, f, "/a.tmp")
				mustWriteAt(t, n, "new", 0)
				must(t, n.Sync())
				must(t, f.Rename("/a.tmp", "/a"))
			},
			file: "/a",
			want: want{"drop": set("old"), "subset": set("old")},
		},
		{
			name: "rename over with directory sync",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				mustWriteAt(t, h, "old", 0)
				must(t, h.Sync())
				syncDir(t, f, "/")
				n := mustCreate(t, f, "/a.tmp")
				mustWriteAt(t, n, "new", 0)
				must(t, n.Sync())
				must(t, f.Rename("/a.tmp", "/a"))
				syncDir(t, f, "/")
			},
			file: "/a",
			want: want{"drop": set("new")},
		},
		{
			name: "rename without syncing the renamed file's data",
			run: func(t *testing.T, f *FS) {
				n := mustCreate(t, f, "/a.tmp")
				mustWriteAt(t, n, "new", 0)
				must(t, f.Rename("/a.tmp", "/a"))
				syncDir(t, f, "/")
			},
			file: "/a",
			want: want{"drop": set(""), "subset": set("", "new")},
		},
		{
			name:      "remove without directory sync",
			nsPending: true,
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				mustWriteAt(t, h, "keep", 0)
				must(t, h.Sync())
				syncDir(t, f, "/")
				must(t, f.Remove("/a"))
			},
			file: "/a",
			want: want{"drop": set("keep")},
		},
		{
			name: "remove with directory sync",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				must(t, h.Sync())
				syncDir(t, f, "/")
				must(t, f.Remove("/a"))
				syncDir(t, f, "/")
			},
			file: "/a",
			want: want{"drop": set(absent)},
		},
		{
			name: "truncate unsynced",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				mustWriteAt(t, h, "hello world", 0)
				must(t, h.Sync())
				syncDir(t, f, "/")
				must(t, h.Truncate(5))
			},
			file: "/a",
			want: want{"drop": set("hello world"), "subset": set("hello world", "hello")},
		},
		{
			name: "truncate shrink then extend reads zeros",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				mustWriteAt(t, h, "hello world", 0)
				must(t, h.Sync())
				syncDir(t, f, "/")
				must(t, h.Truncate(2))
				must(t, h.Truncate(6))
			},
			file: "/a",
			want: want{"drop": set("hello world"), "prefix": set("hello world", "he", "he"+z(4)),
				"subset": set("hello world", "he", "he"+z(4), "hello ")},
		},
		{
			name: "extending write and the size effect",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				mustWriteAt(t, h, "abc", 0)
				must(t, h.Sync())
				syncDir(t, f, "/")
				mustWriteAt(t, h, "XY", 10)
			},
			file: "/a",
			want: want{"drop": set("abc"), "subset": set("abc", "abc"+z(7)+"XY"),
				"subset+size": set("abc", "abc"+z(7)+"XY", "abc"+z(9)), "drop+size": set("abc", "abc"+z(9))},
		},
		{
			name: "a file's sync does not sync another file",
			run: func(t *testing.T, f *FS) {
				a, b := mustCreate(t, f, "/a"), mustCreate(t, f, "/b")
				syncDir(t, f, "/")
				mustWriteAt(t, a, "A", 0)
				mustWriteAt(t, b, "B", 0)
				must(t, a.Sync())
			},
			file: "/b",
			want: want{"drop": set(""), "subset": set("", "B")},
		},
		{
			name: "write through O_APPEND and O_TRUNC",
			run: func(t *testing.T, f *FS) {
				h := mustCreate(t, f, "/a")
				mustWriteAt(t, h, "xyz", 0)
				must(t, h.Sync())
				syncDir(t, f, "/")
				g, err := f.OpenFile("/a", os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0)
				must(t, err)
				_, err = g.Write([]byte("1"))
				must(t, err)
				_, err = g.Write([]byte("2"))
				must(t, err)
			},
			file: "/a",
			want: want{"drop": set("xyz"), "prefix": set("xyz", "", "1", "12")},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := New(c.opts)
			c.run(t, f)
			live := contentOf(t, f, c.file)
			p := f.Crash()
			for _, name := range slices.Sorted(maps.Keys(c.want)) {
				m, err := ParseModel(name)
				must(t, err)
				got := statesOf(t, p, m, c.file)
				if !maps.Equal(got, c.want[name]) {
					t.Errorf("%s: states of %s = %q, want %q", name, c.file, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(c.want[name])))
				}
			}
			// Keeping every operation gives the live contents whenever the
			// file's entry is durable.
			all, _ := p.Count(Model{Base: Prefix})
			s, err := p.State(StateID{K: p.K(), Model: Model{Base: Prefix}, Ordinal: all - 1})
			must(t, err)
			if got := contentOf(t, s, c.file); !c.nsPending && got != absent && got != live {
				t.Errorf("prefix-all state = %q, live was %q", got, live)
			}
		})
	}
}

func TestErrCrashedEverywhere(t *testing.T) {
	f := New(Options{})
	h := mustCreate(t, f, "/a")
	mustWriteAt(t, h, "abc", 0)
	must(t, h.Sync())
	d, err := f.Open("/")
	must(t, err)
	p := f.Crash()
	if f.Crash() != p || f.Crashed() != p {
		t.Fatal("Crash is not idempotent")
	}
	buf := make([]byte, 3)
	checks := map[string]error{}
	_, checks["WriteAt"] = h.WriteAt([]byte("x"), 0)
	_, checks["Write"] = h.Write([]byte("x"))
	_, checks["ReadAt"] = h.ReadAt(buf, 0)
	_, checks["Read"] = h.Read(buf)
	_, checks["Seek"] = h.Seek(0, io.SeekStart)
	checks["Truncate"] = h.Truncate(0)
	checks["Sync"] = h.Sync()
	_, checks["File.Stat"] = h.Stat()
	checks["Close"] = h.Close()
	checks["DirSync"] = d.Sync()
	_, checks["Readdir"] = d.Readdir(-1)
	_, checks["Create"] = f.Create("/b")
	_, checks["Open"] = f.Open("/a")
	_, checks["OpenFile"] = f.OpenFile("/a", os.O_RDWR, 0)
	_, checks["Stat"] = f.Stat("/a")
	checks["Mkdir"] = f.Mkdir("/d", 0o755)
	checks["MkdirAll"] = f.MkdirAll("/d/e", 0o755)
	checks["Remove"] = f.Remove("/a")
	checks["RemoveAll"] = f.RemoveAll("/")
	checks["Rename"] = f.Rename("/a", "/c")
	checks["Chmod"] = f.Chmod("/a", 0o600)
	checks["Apply"] = f.Apply(Op{Kind: OpSync, Path: "/a"})
	_, checks["Point"] = f.Point()
	for name, err := range checks {
		if !errors.Is(err, ErrCrashed) {
			t.Errorf("%s after crash: err = %v, want ErrCrashed", name, err)
		}
	}
	// Concurrent goroutines of the crashed instance cannot reach a state.
	s, err := p.State(StateID{K: p.K(), Model: Model{Base: Drop}})
	must(t, err)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.WriteAt([]byte("zz"), int64(i)); !errors.Is(err, ErrCrashed) {
				t.Errorf("goroutine write: %v", err)
			}
		}()
	}
	wg.Wait()
	if got := contentOf(t, s, "/a"); got != absent {
		t.Errorf("state has /a = %q, want absent (no directory sync)", got)
	}
}

func TestCrashAtKthOperation(t *testing.T) {
	for k := int64(0); k < 6; k++ {
		f := New(Options{ImplicitDirSync: true})
		f.CrashAt(k)
		var failedAt = int64(-1)
		steps := []func() error{
			func() error { _, err := f.Create("/a"); return err }, // op 0 (create; O_TRUNC on a new file is not an op)
			func() error { return writeFile(f, "/a", "one", 0) },  // op 1
			func() error { return syncFile(f, "/a") },             // op 2
			func() error { return writeFile(f, "/a", "two", 3) },  // op 3
			func() error { return syncFile(f, "/a") },             // op 4
			func() error { return writeFile(f, "/a", "3", 0) },    // op 5
		}
		for i, step := range steps {
			if err := step(); err != nil {
				if !errors.Is(err, ErrCrashed) {
					t.Fatalf("k=%d step %d: %v", k, i, err)
				}
				failedAt = int64(i)
				break
			}
		}
		if failedAt != k {
			t.Fatalf("k=%d: first failure at step %d", k, failedAt)
		}
		p := f.Crashed()
		if p == nil || p.K() != k {
			t.Fatalf("k=%d: Crashed() = %v", k, p)
		}
		wantDurable := map[int64]string{0: absent, 1: "", 2: "", 3: "one", 4: "one", 5: "onetwo"}[k]
		s, err := p.State(StateID{K: k, Model: Model{Base: Drop}})
		must(t, err)
		if got := contentOf(t, s, "/a"); got != wantDurable {
			t.Errorf("k=%d: drop state %q, want %q", k, got, wantDurable)
		}
	}
}

func writeFile(f *FS, name, s string, off int64) error {
	h, err := f.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	_, err = h.WriteAt([]byte(s), off)
	return err
}

func syncFile(f *FS, name string) error {
	h, err := f.Open(name)
	if err != nil {
		return err
	}
	return h.Sync()
}

func TestOnSyncSweep(t *testing.T) {
	f := New(Options{ImplicitDirSync: true})
	var seen []int64
	var counts []uint64
	f.OnSync(func(p *Point) bool {
		seen = append(seen, p.K())
		n, _ := p.Count(Model{Base: Subset})
		counts = append(counts, n)
		return false
	})
	h := mustCreate(t, f, "/a")
	mustWriteAt(t, h, "a", 0)
	mustWriteAt(t, h, "b", 1)
	must(t, h.Sync())
	mustWriteAt(t, h, "c", 2)
	must(t, h.Sync())
	must(t, h.Sync())
	if want := f.Trace().SyncPoints(); !slices.Equal(seen, want) {
		t.Fatalf("OnSync saw %v, trace sync points %v", seen, want)
	}
	if want := []uint64{4, 2, 1}; !slices.Equal(counts, want) {
		t.Fatalf("subset counts at syncs %v, want %v", counts, want)
	}
	// Crash at the second sync.
	g := New(Options{ImplicitDirSync: true})
	n := 0
	g.OnSync(func(*Point) bool { n++; return n == 2 })
	h = mustCreate(t, g, "/a")
	mustWriteAt(t, h, "a", 0)
	must(t, h.Sync())
	mustWriteAt(t, h, "b", 1)
	if err := h.Sync(); !errors.Is(err, ErrCrashed) {
		t.Fatalf("second sync: %v, want ErrCrashed", err)
	}
	if got := statesOf(t, g.Crashed(), Model{Base: Subset}, "/a"); !maps.Equal(got, set("a", "ab")) {
		t.Fatalf("states at second sync: %q", slices.Sorted(maps.Keys(got)))
	}
}

func TestRecoveryCanCrashAgain(t *testing.T) {
	f := New(Options{})
	h := mustCreate(t, f, "/a")
	syncDir(t, f, "/")
	mustWriteAt(t, h, "1111", 0)
	must(t, h.Sync())
	mustWriteAt(t, h, "22", 0)
	p := f.Crash()
	s, err := p.State(StateID{K: p.K(), Model: Model{Base: Subset}, Ordinal: 1})
	must(t, err)
	if got := contentOf(t, s, "/a"); got != "2211" {
		t.Fatalf("state = %q", got)
	}
	// Recovery writes on the state; the point's other states are unaffected.
	h2, err := s.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	mustWriteAt(t, h2, "3", 3)
	must(t, h2.Sync())
	mustWriteAt(t, h2, "4", 0)
	p2 := s.Crash()
	if got := statesOf(t, p2, Model{Base: Subset}, "/a"); !maps.Equal(got, set("2213", "4213")) {
		t.Fatalf("second crash states %q", slices.Sorted(maps.Keys(got)))
	}
	if got := statesOf(t, p, Model{Base: Subset}, "/a"); !maps.Equal(got, set("1111", "2211")) {
		t.Fatalf("first point changed: %q", slices.Sorted(maps.Keys(got)))
	}
	// The state's start image is the crash state itself.
	if b, _ := s.Start().ReadFile("/a"); string(b) != "2211" {
		t.Fatalf("state Start = %q", b)
	}
}

func TestAferoSurface(t *testing.T) {
	f := New(Options{})
	must(t, f.MkdirAll("/x/y", 0o755))
	must(t, f.MkdirAll("/x/y", 0o755))
	h, err := f.Create("/x/y/z")
	must(t, err)
	_, err = h.WriteString("hello")
	must(t, err)
	if pos, err := h.Seek(1, io.SeekStart); err != nil || pos != 1 {
		t.Fatalf("seek = %d, %v", pos, err)
	}
	b := make([]byte, 10)
	n, err := h.Read(b)
	if n != 4 || string(b[:4]) != "ello" || (err != nil && err != io.EOF) {
		t.Fatalf("read = %d %q %v", n, b[:n], err)
	}
	if _, err := h.Read(b); err != io.EOF {
		t.Fatalf("read at end: %v", err)
	}
	fi, err := f.Stat("/x/y/z")
	must(t, err)
	if fi.Size() != 5 || fi.IsDir() || fi.Name() != "z" {
		t.Fatalf("stat = %v %v %v", fi.Size(), fi.IsDir(), fi.Name())
	}
	if _, err := f.OpenFile("/x/y/z", os.O_CREATE|os.O_EXCL|os.O_RDWR, 0); !errors.Is(err, os.ErrExist) {
		t.Fatalf("O_EXCL: %v", err)
	}
	if _, err := f.Open("/nope"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
	if _, err := f.Create("/nodir/f"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("create in missing dir: %v", err)
	}
	r, err := f.Open("/x/y/z")
	must(t, err)
	if _, err := r.Write([]byte("no")); err == nil {
		t.Fatal("write on read-only handle succeeded")
	}
	d, err := f.Open("/x")
	must(t, err)
	names, err := d.Readdirnames(-1)
	must(t, err)
	if !slices.Equal(names, []string{"y"}) {
		t.Fatalf("readdir = %v", names)
	}
	if err := f.Remove("/x"); err == nil {
		t.Fatal("removed a non-empty directory")
	}
	if err := f.Rename("/x", "/w"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("rename dir: %v", err)
	}
	must(t, f.RemoveAll("/x"))
	if _, err := f.Stat("/x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after RemoveAll: %v", err)
	}
	must(t, h.Close())
	if _, err := h.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestStatesOfAStateAreIndependent: states built on top of a state whose
// durable contents are still a lazy overlay do not share that overlay.
func TestStatesOfAStateAreIndependent(t *testing.T) {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(t, f, "/a")
	mustWriteAt(t, h, "......", 0)
	must(t, h.Sync())
	mustWriteAt(t, h, "1", 0)
	mustWriteAt(t, h, "2", 1)
	p := f.Crash()
	s, err := p.State(StateID{K: p.K(), Model: Model{Base: Subset}, Ordinal: 3})
	must(t, err)
	g, err := s.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	mustWriteAt(t, g, "x", 2)
	mustWriteAt(t, g, "y", 3)
	p2 := s.Crash()
	var got []string
	for ord := range uint64(4) {
		st, err := p2.State(StateID{K: p2.K(), Model: Model{Base: Subset}, Ordinal: ord})
		must(t, err)
		got = append(got, contentOf(t, st, "/a"))
	}
	if want := []string{"12....", "12x...", "12.y..", "12xy.."}; !slices.Equal(got, want) {
		t.Fatalf("states %q, want %q", got, want)
	}
}

func TestAferoHelpersWork(t *testing.T) {
	f := New(Options{})
	if err := afero.WriteFile(f, "/dir/x", []byte("x"), 0o644); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WriteFile into a missing directory: %v", err)
	}
	must(t, f.MkdirAll("/dir", 0o755))
	must(t, afero.WriteFile(f, "/dir/x", []byte("hello"), 0o644))
	b, err := afero.ReadFile(f, "/dir/x")
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	tmp, err := afero.TempFile(f, "/dir", "t*")
	must(t, err)
	must(t, tmp.Close())
	fis, err := afero.ReadDir(f, "/dir")
	if err != nil || len(fis) != 2 || fis[1].Name() != "x" {
		t.Fatalf("ReadDir = %v, %v", fis, err)
	}
	var walked []string
	must(t, afero.Walk(f, "/", func(p string, _ os.FileInfo, err error) error {
		walked = append(walked, p)
		return err
	}))
	if len(walked) != 4 {
		t.Fatalf("Walk visited %v", walked)
	}
}

// TestConcurrentStates builds states of one point from several goroutines
// (run with -race) and checks each against a serial build.
func TestConcurrentStates(t *testing.T) {
	p := countPoint(t, true)
	m := Model{Base: Torn, Sector: 512, Size: true}
	want := map[StateID]string{}
	for id, s := range p.States(m, EnumOptions{Bound: 64, Samples: 64, Seed: 1}) {
		want[id] = digest(t, s)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id, d := range want {
				s, err := p.State(id)
				if err != nil {
					t.Error(err)
					return
				}
				if digest(t, s) != d {
					t.Errorf("%s differs when built concurrently", id)
				}
				h, _ := s.OpenFile("/a", os.O_RDWR, 0)
				h.WriteAt([]byte("mutate"), 0) // must not leak into other states
			}
		}()
	}
	wg.Wait()
}

// A final state reads like the state it came from, takes writes and syncs
// without touching the crash point's durable pages (other states built
// later still see them, also after the final states were released and
// their pages recycled), and refuses to crash.
func TestFinalState(t *testing.T) {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(t, f, "/a")
	mustWriteAt(t, h, strings.Repeat(".", 2*PageSize)+strings.Repeat("3", PageSize), 0) // page 2: never written again
	must(t, h.Sync())
	mustWriteAt(t, h, "1", 0)
	mustWriteAt(t, h, "2", PageSize)
	p := f.Crash()
	for ord := range uint64(4) {
		id := StateID{K: p.K(), Model: Model{Base: Subset}, Ordinal: ord}
		want, err := p.State(id)
		must(t, err)
		s, err := p.FinalState(id)
		must(t, err)
		if got, w := contentOf(t, s, "/a"), contentOf(t, want, "/a"); got != w {
			t.Fatalf("%s: final state differs from State", id)
		}
		g, err := s.OpenFile("/a", os.O_RDWR, 0)
		must(t, err)
		mustWriteAt(t, g, "x", 1)
		must(t, g.Sync())
		mustWriteAt(t, g, "y", PageSize+1)
		must(t, g.Sync())
		mustWriteAt(t, g, "z", 2)
		got := contentOf(t, s, "/a")
		if got[1:3] != "xz" || got[PageSize+1] != 'y' || got[2*PageSize:] != strings.Repeat("3", PageSize) {
			t.Fatalf("%s: writes to the final state: got %q...", id, got[:4])
		}
		if _, err := s.Point(); !errors.Is(err, ErrFinal) {
			t.Fatalf("Point on a final state: %v, want ErrFinal", err)
		}
		if n := len(s.Trace().Ops); n != 0 {
			t.Fatalf("final state kept %d trace ops", n)
		}
		// Released, its pages go to the next states (built over the
		// same point's pages, which must survive).
		s.Release()
		if _, err := g.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrCrashed) {
			t.Fatalf("read after Release: %v, want ErrCrashed", err)
		}
		if _, err := s.Open("/a"); !errors.Is(err, ErrCrashed) {
			t.Fatalf("open after Release: %v, want ErrCrashed", err)
		}
	}
	// The writes above must not have reached the point's pages.
	again := statesOf(t, p, Model{Base: Subset}, "/a")
	dots, threes := strings.Repeat(".", PageSize-1), strings.Repeat("3", PageSize)
	want := set("."+dots+"."+dots+threes, "1"+dots+"."+dots+threes, "."+dots+"2"+dots+threes, "1"+dots+"2"+dots+threes)
	if !maps.Equal(again, want) {
		t.Fatalf("states after writing to final states changed: %d states", len(again))
	}
	s, err := p.FinalState(StateID{K: p.K(), Model: Model{Base: Subset}})
	must(t, err)
	for name, fn := range map[string]func(){"Crash": func() { s.Crash() }, "CrashAt": func() { s.CrashAt(1) },
		"OnSync": func() { s.OnSync(func(*Point) bool { return true }) }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s on a final filesystem did not panic", name)
				}
			}()
			fn()
		}()
	}
}

// Namespace changes in one crash state (create, rename, remove, directory
// sync) stay in it: the point's image and the next state built from it
// keep the durable names.
func TestStateNamespaceIsPrivate(t *testing.T) {
	f := New(Options{})
	h := mustCreate(t, f, "/a")
	mustWriteAt(t, h, "a", 0)
	must(t, h.Sync())
	syncDir(t, f, "/")
	p := f.Crash()
	for i := range 2 {
		s, err := p.State(StateID{K: p.K(), Model: Model{Base: Prefix}})
		must(t, err)
		if got := contentOf(t, s, "/b"); got != absent {
			t.Fatalf("state %d sees /b from an earlier state", i)
		}
		if got := contentOf(t, s, "/a"); got != "a" {
			t.Fatalf("state %d: /a = %q", i, got)
		}
		mustCreate(t, s, "/b").Close()
		syncDir(t, s, "/")
		must(t, s.Rename("/a", "/c"))
		syncDir(t, s, "/")
		must(t, s.Remove("/b"))
	}
	if got := p.Durable().Paths(); !slices.Equal(got, []string{"/a"}) {
		t.Fatalf("the point's image changed: %q", got)
	}
}
