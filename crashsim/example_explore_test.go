package crashsim_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
)

// saveAtomic is the code under test: the classic "atomic save". It writes
// the new contents to a temporary file, renames it over the old one and
// syncs the directory, so that after a crash the file holds either its old
// or its new contents, never a mix or nothing. That needs the temporary
// file's data to be durable before the rename is: syncFile is the fsync
// that ensures it, and the bug is to forget it.
func saveAtomic(fs afero.Fs, name string, data []byte, syncFile bool) error {
	tmp := name + ".tmp"
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if syncFile {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	d, err := fs.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// exploreSave crash-tests saveAtomic: the file exists (durably) with its
// old contents, the workload saves new ones, and the check says what any
// crash may leave: the old contents or the new ones, whole.
func exploreSave(syncFile bool) {
	oldData, newData := []byte("version 1\n"), []byte("version 2, longer\n")
	start, _ := crashsim.NewImage(map[string][]byte{"/app/config": oldData})
	opts := crashsim.ExploreOptions{Start: start, MaxFailures: -1}
	workload := func(fs *crashsim.FS) error {
		return saveAtomic(fs, "/app/config", newData, syncFile)
	}
	check := func(s crashsim.State) error {
		got, err := afero.ReadFile(s.FS, "/app/config")
		if err != nil {
			return err
		}
		if !bytes.Equal(got, oldData) && !bytes.Equal(got, newData) {
			return fmt.Errorf("/app/config holds %q", got)
		}
		return nil
	}
	rep, err := crashsim.Explore(workload, opts, check)
	if err != nil {
		fmt.Println("exploration failed:", err)
		return
	}
	fmt.Printf("fsync before rename %v: %d crash points, %d states, %d failing\n",
		syncFile, rep.Points, rep.States, len(rep.Failures))
	for _, f := range rep.Failures {
		fmt.Println(" ", f)
	}
	if len(rep.Failures) > 0 {
		// An ID rebuilds its state: inspect it, or run the recovery on it.
		id, _ := crashsim.ParseStateID(rep.Failures[0].ID.String())
		st, _ := crashsim.Replay(id, workload, opts)
		got, _ := afero.ReadFile(st, "/app/config")
		fmt.Printf("  replayed %s: /app/config holds %q\n", id, got)
	}
}

// Crash-testing an "atomic save" (write a temporary file, rename it over
// the old one, sync the directory). Without an fsync of the temporary file
// before the rename, a crash after the save can leave an empty file: the
// rename is durable (the directory was synced), the data is not. The bug
// shows only after the last sync, at the end point Explore always judges.
// With the fsync, every crash state holds the old or the new contents.
func ExampleExplore() {
	exploreSave(false)
	exploreSave(true)
	// Output:
	// fsync before rename false: 2 crash points, 9 states, 4 failing
	//   crash state k=4/subset+size/0: /app/config holds ""
	//   crash state k=4/subset+size/2: /app/config holds "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	//   crash state k=4/torn512+size/0: /app/config holds ""
	//   crash state k=4/torn512+size/1: /app/config holds "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	//   replayed k=4/subset+size/0: /app/config holds ""
	// fsync before rename true: 3 crash points, 6 states, 0 failing
}

// A write-ahead log: each record is appended as length, CRC-32 and
// payload, and synced before the append is acknowledged. Recovery reads
// records up to the first incomplete or corrupt one (a torn tail) and
// truncates there.
type wal struct{ f afero.File }

func (w *wal) append(payload []byte) error {
	rec := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	rec = binary.LittleEndian.AppendUint32(rec, crc32.ChecksumIEEE(payload))
	if _, err := w.f.Write(append(rec, payload...)); err != nil {
		return err
	}
	return w.f.Sync() // acknowledged only once durable
}

// recoverWAL returns the intact records of the log at name.
func recoverWAL(fs afero.Fs, name string) ([]string, error) {
	b, err := afero.ReadFile(fs, name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // never created durably: an empty log
	}
	if err != nil {
		return nil, err
	}
	var recs []string
	for len(b) >= 8 {
		n := binary.LittleEndian.Uint32(b)
		if n == 0 || uint64(n) > uint64(len(b)-8) || crc32.ChecksumIEEE(b[8:8+n]) != binary.LittleEndian.Uint32(b[4:]) {
			break // the torn tail of an unacknowledged append
		}
		recs = append(recs, string(b[8:8+n]))
		b = b[8+n:]
	}
	return recs, nil
}

// Crash-testing a write-ahead log: at every crash point, recovery must
// return every acknowledged record and nothing but records that were
// written, in order. The workload notes, for each record, the operation
// index at which its append was acknowledged (FS.Ops after the sync): a
// crash state of point K must hold the records acknowledged at or before K.
func ExampleExplore_writeAheadLog() {
	records := []string{"begin", "put a=1", "put b=2", "commit"}
	var ackedAt []int64 // ackedAt[i]: index after record i's sync
	workload := func(fs *crashsim.FS) error {
		ackedAt = ackedAt[:0]
		f, err := fs.OpenFile("/wal", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		d, err := fs.Open("/")
		if err != nil {
			return err
		}
		if err := d.Sync(); err != nil { // the log's name is durable
			return err
		}
		w := &wal{f}
		for _, r := range records {
			if err := w.append([]byte(r)); err != nil {
				return err
			}
			ackedAt = append(ackedAt, fs.Ops())
		}
		return nil
	}
	check := func(s crashsim.State) error {
		got, err := recoverWAL(s.FS, "/wal")
		if err != nil {
			return err
		}
		acked := 0
		for acked < len(ackedAt) && ackedAt[acked] <= s.ID.K {
			acked++
		}
		if len(got) < acked || len(got) > len(records) {
			return fmt.Errorf("recovered %d records, %d were acknowledged", len(got), acked)
		}
		for i, r := range got {
			if r != records[i] {
				return fmt.Errorf("record %d is %q, want %q", i, r, records[i])
			}
		}
		return nil
	}
	rep, err := crashsim.Explore(workload, crashsim.ExploreOptions{Seed: 1, SampledPoints: 4}, check)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d crash points, %d states, per model %v: %v\n", rep.Points, rep.States, rep.PerModel, rep.Err())
	// Output:
	// 8 crash points, 36 states, per model [16 20]: <nil>
}
