package faultfs_test

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/spf13/afero"
)

// A rule set given as a string makes the third write fail with ENOSPC; the
// log says which operation got which fault.
func Example() {
	fs, err := faultfs.NewFromString(afero.NewMemMapFs(), 1, "write:enospc@nth=3,path=*.qed")
	if err != nil {
		panic(err)
	}
	f, _ := fs.Create("/img.qed")
	for i := 0; i < 4; i++ {
		_, err := f.WriteAt([]byte("block"), int64(i)*512)
		fmt.Printf("write %d: ENOSPC=%v\n", i+1, errors.Is(err, syscall.ENOSPC))
	}
	for _, in := range fs.Log() {
		fmt.Printf("op #%d %s %s off=%d len=%d: %s (rule %q, match %d)\n",
			in.Seq, in.Op, in.Path, in.Off, in.Len, in.Fault, in.RuleText, in.Match)
	}
	// Output:
	// write 1: ENOSPC=false
	// write 2: ENOSPC=false
	// write 3: ENOSPC=true
	// write 4: ENOSPC=false
	// op #4 write /img.qed off=1024 len=5: enospc (rule "write:enospc@nth=3,path=*.qed", match 3)
}

// Parse errors name the column, the offending token and what was expected.
func ExampleParse() {
	_, err := faultfs.Parse("write:enospc@nht=17")
	fmt.Println(err)
	var pe *faultfs.ParseError
	if errors.As(err, &pe) {
		fmt.Println(pe.Column(), pe.Token, errors.Is(err, faultfs.ErrSyntax))
	}
	rs, _ := faultfs.Parse("sync|write:lost@every=2 ;read:bitflip@off=0-64k")
	fmt.Println(rs)
	// Output:
	// faultfs: rule "write:enospc@nht=17", column 14: expected a condition (nth, every, after, p, path, off), got "nht"
	// 14 nht true
	// write|sync:lost@every=2; read:bitflip@off=0-65536
}

// Sweep fails the n-th write for every n of a workload (an I/O error loop)
// and lets the test check each outcome.
func ExampleSweep() {
	workload := func(fs afero.Fs) error {
		f, err := fs.Create("/data")
		if err != nil {
			return err
		}
		defer f.Close()
		for i := 0; i < 3; i++ {
			if _, err := f.Write([]byte("record\n")); err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
		}
		return f.Sync()
	}
	rule, _ := faultfs.ParseRule("write:eio")
	newBase := func() (afero.Fs, error) { return afero.NewMemMapFs(), nil }
	count, err := faultfs.Sweep(rule, 1, newBase, workload, func(n uint64, fs *faultfs.FS, runErr error) error {
		fmt.Printf("n=%d: %v\n", n, runErr)
		if !errors.Is(runErr, fs.Log()[0].Err) {
			return errors.New("injected error did not surface")
		}
		return nil
	})
	fmt.Println(count, err)
	// Output:
	// n=1: record 0: write /data: input/output error
	// n=2: record 1: write /data: input/output error
	// n=3: record 2: write /data: input/output error
	// 3 <nil>
}

// A misdirected write is acknowledged but lands elsewhere; a bit flip
// corrupts what a read returns, not what is stored.
func ExampleRule_String() {
	r := faultfs.Rule{Ops: faultfs.Ops(faultfs.OpWrite), Fault: faultfs.FaultMisdirect, Arg: -512,
		Trigger: faultfs.Every, N: 4, Path: "*.qed"}
	fmt.Println(r.String(), r.Validate())
	back, err := faultfs.ParseRule(r.String())
	fmt.Println(back == r, err)
	// Output:
	// write:misdirect=-512@every=4,path=*.qed <nil>
	// true <nil>
}
