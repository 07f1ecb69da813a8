package crashsim_test

import (
	"fmt"
	"io"
	"os"

	"github.com/qedtorture/qedtorture/crashsim"
)

func read(fs *crashsim.FS, name string) string {
	f, err := fs.Open(name)
	if err != nil {
		return "<absent>"
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// A write-sync-write sequence, then a crash: every state of the subset
// model, each rebuilt from its printed identity.
func Example() {
	fs := crashsim.New(crashsim.Options{})
	f, _ := fs.Create("/data")
	dir, _ := fs.Open("/")
	dir.Sync() // make the new entry durable

	f.WriteAt([]byte("AAAA"), 0)
	f.Sync()
	f.WriteAt([]byte("B"), 0) // unsynced
	f.WriteAt([]byte("C"), 3) // unsynced

	p := fs.Crash()
	_, err := f.WriteAt([]byte("late"), 0)
	fmt.Println("write after crash:", err)

	m, _ := crashsim.ParseModel("subset")
	n, _ := p.Count(m)
	fmt.Println("states:", n)
	for id := range p.IDs(m, crashsim.EnumOptions{}) {
		parsed, _ := crashsim.ParseStateID(id.String())
		state, _ := p.State(parsed)
		fmt.Println(id, read(state, "/data"))
	}
	// Output:
	// write after crash: write /data: crashsim: filesystem has crashed
	// states: 4
	// k=6/subset/0 AAAA
	// k=6/subset/1 BAAA
	// k=6/subset/2 AAAC
	// k=6/subset/3 BAAC
}

// Sweeping every sync point: the OnSync hook sees the crash point just
// before each sync, and could return true to crash there.
func ExampleFS_OnSync() {
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	fs.OnSync(func(p *crashsim.Point) bool {
		n, _ := p.Count(crashsim.Model{Base: crashsim.Subset})
		fmt.Printf("sync at k=%d: %d unsynced ops, %d subset states\n", p.K(), len(p.Unsynced()), n)
		return false
	})
	f, _ := fs.OpenFile("/log", os.O_RDWR|os.O_CREATE, 0o644)
	f.Write([]byte("one"))
	f.Write([]byte("two"))
	f.Sync()
	f.Write([]byte("three"))
	f.Sync()
	// Output:
	// sync at k=3: 2 unsynced ops, 4 subset states
	// sync at k=5: 1 unsynced ops, 2 subset states
}

// A file created without syncing its directory is gone after a crash.
func ExampleOptions() {
	for _, implicit := range []bool{false, true} {
		fs := crashsim.New(crashsim.Options{ImplicitDirSync: implicit})
		f, _ := fs.Create("/img")
		f.Write([]byte("header"))
		f.Sync()
		state, _ := fs.Crash().State(crashsim.StateID{Model: crashsim.Model{Base: crashsim.Drop}, K: 3})
		fmt.Printf("ImplicitDirSync=%v: %s\n", implicit, read(state, "/img"))
	}
	// Output:
	// ImplicitDirSync=false: <absent>
	// ImplicitDirSync=true: header
}

// Crash states of QEMU's own I/O: read a dm-log-writes log, replay it on
// the image as it was before the log started, and crash at a flush.
func ExampleReadDMLog() {
	// A log with one 512-byte write at sector 1 and a flush.
	log := make([]byte, 512*3+512)
	le := func(b []byte, v uint64) {
		for i := range 8 {
			b[i] = byte(v >> (8 * i))
		}
	}
	le(log[0:], crashsim.DMLogMagic)
	le(log[8:], crashsim.DMLogVersion)
	le(log[16:], 2)   // nr_entries
	le(log[24:], 512) // sector size (u32, upper bytes zero)
	le(log[512:], 1)  // entry 0: sector 1
	le(log[520:], 1)  //          nr_sectors 1
	copy(log[1024:], "new data")
	le(log[1536+16:], crashsim.DMLogFlush) // entry 1: flush
	tr, err := crashsim.ReadDMLog(readerAt(log), int64(len(log)), "/disk")
	if err != nil {
		panic(err)
	}
	for _, o := range tr.Ops {
		fmt.Println(o)
	}
	base, _ := crashsim.NewImage(map[string][]byte{"/disk": make([]byte, 2048)})
	fs, _ := base.Replay(tr, 1, crashsim.Options{}) // crash before the flush
	n, _ := fs.Crash().Count(crashsim.Model{Base: crashsim.Subset})
	fmt.Println("states before the flush:", n)
	// Output:
	// #0 write /disk@512+512
	// #1 sync /disk
	// states before the flush: 2
}

type readerAt []byte

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, io.EOF
	}
	n := copy(p, r[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
