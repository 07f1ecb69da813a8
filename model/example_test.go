package model_test

import (
	"fmt"

	"github.com/qedtorture/qedtorture/model"
)

// A write, a flush, then the checks a running disk and a crashed one must
// pass.
func Example() {
	d, _ := model.New(1<<40, nil) // 1 TiB costs nothing until written

	// The model hands out a pattern id; the caller makes the data with Fill
	// and writes it to the implementation under test.
	id, _ := d.Write(0x1000, 512)
	buf := make([]byte, 512)
	model.Fill(buf, id, 0x1000)
	d.Flush()

	id2, _ := d.Write(0x1000, 100) // not flushed
	newer := make([]byte, 100)
	model.Fill(newer, id2, 0x1000)

	fmt.Println("running disk shows the new write:", d.Verify(0x1000, append(newer, buf[100:]...)) == nil)
	fmt.Println("after a crash the old data is allowed:", d.VerifyCrash(0x1000, buf) == nil)
	fmt.Println("after a crash zeros are not:", d.VerifyCrash(0x1000, make([]byte, 512)) == nil)
	fmt.Println("ranges to read back after recovery:", d.Uncertain())
	// Output:
	// running disk shows the new write: true
	// after a crash the old data is allowed: true
	// after a crash zeros are not: false
	// ranges to read back after recovery: [{4096 100}]
}

// A mismatch names the bad bytes, the allowed values and where the bytes
// read came from: here the data of write 1 read at the place of write 2.
func ExampleMismatch() {
	d, _ := model.New(1<<20, nil)
	id1, _ := d.Write(0x3000, 0x1000)
	d.Write(0x1000, 0x1000)
	d.Flush()

	got := make([]byte, 0x200)
	model.Fill(got, id1, 0x3000) // misdirected: write 1's data read at 0x1000
	err := d.VerifyCrash(0x1000, got)
	fmt.Println(err)
	// Output:
	// model: crash check: bad data at 0x1000: run of 0x200 bytes (0x1fe bad in the read [0x1000,+0x200))
	//   rule broken (value): the byte at 0x1000 is neither its durable value nor any pending write's
	//   read:    a3057ec2f820336bacd0fe6f0d017a69eb19ac1267cef6e2171b985c69b38404
	//   looks like: pattern of write id 1 (op 1) [0x3000,+0x1000) for 0x200 bytes, generated for guest offset 0x3000 (misplaced by -0x2000)
	//   allowed (durable) write id 2 (op 2) [0x1000,+0x1000): ae4287f192b0e97b97d760addf8bcd3eb916013752460520408ff62b307d4f63
}

// After a crash and a successful recovery, the model takes what the disk
// reads back in the uncertain ranges as the new durable state.
func ExampleDisk_Recover() {
	d, _ := model.New(4096, nil)
	d.Write(0, 4096)
	d.Flush()
	d.WriteZeroes(512, 512) // lost in the crash below

	crashed := make([]byte, 4096)
	model.Fill(crashed, 1, 0)
	err := d.Recover(4096, func(p []byte, off int64) error {
		fmt.Printf("read back [%#x,+%#x)\n", off, len(p))
		copy(p, crashed[off:])
		return nil
	})
	fmt.Println(err, d.Uncertain(), d.VerifyCrash(0, crashed))
	// Output:
	// read back [0x200,+0x200)
	// <nil> [] <nil>
}
