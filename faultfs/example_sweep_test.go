package faultfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"path"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
)

// save is an "atomic save": write a temporary file, fsync it, rename it
// over the old one, sync the directory. checkSync false is the classic
// bug of ignoring fsync's error.
func save(fs afero.Fs, name string, data []byte, checkSync bool) error {
	tmp := name + ".tmp"
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil && checkSync {
		f.Close()
		return err
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
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// SweepRules fails each create, write, sync and rename of a save in turn.
// The check asks what the save promises: the fault surfaced as the save's
// error, and a power loss right after it leaves the file with its old or
// its new contents, whole (every crash state of the crashsim base under
// the subset model). Ignoring the error of the fsync breaks both: the save
// reports success, and a crash can leave an empty file.
func ExampleSweepRules() {
	oldData, newData := []byte("version 1\n"), []byte("version 2\n")
	newBase := func() (afero.Fs, error) {
		img, err := crashsim.NewImage(map[string][]byte{"/app/config": oldData})
		if err != nil {
			return nil, err
		}
		return img.NewFS(crashsim.Options{}), nil
	}
	check := func(o faultfs.Outcome) error {
		var errs []error
		if o.Injection != nil && !errors.Is(o.Err, o.Injection.Err) {
			errs = append(errs, fmt.Errorf("%s on %s did not surface: the save returned %v", o.Injection.Fault, o.Injection.Op, o.Err))
		}
		p := o.FS.Base().(*crashsim.FS).Crash()
		for id := range p.IDs(crashsim.Model{Base: crashsim.Subset}, crashsim.EnumOptions{}) {
			st, _ := p.State(id)
			got, err := afero.ReadFile(st, "/app/config")
			if err != nil || !bytes.Equal(got, oldData) && !bytes.Equal(got, newData) {
				errs = append(errs, fmt.Errorf("crash state %s: /app/config holds %q", id, got))
			}
		}
		return errors.Join(errs...)
	}
	rules := faultfs.MustParse("create|write|sync|rename:eio")
	for _, checkSync := range []bool{true, false} {
		run := func(fs afero.Fs) error { return save(fs, "/app/config", newData, checkSync) }
		rep, err := faultfs.SweepRules(rules, faultfs.SweepOptions{Seed: 1, MaxFailures: -1}, newBase, run, check)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("fsync error checked %v: %d runs, %d failing\n", checkSync, rep.Runs, len(rep.Failures))
		for _, f := range rep.Failures {
			fmt.Println(" ", f)
		}
	}
	// Output:
	// fsync error checked true: 5 runs, 0 failing
	// fsync error checked false: 5 runs, 1 failing
	//   fault create|write|sync|rename:eio@nth=3: eio on sync did not surface: the save returned <nil>
	// crash state k=4/subset/0: /app/config holds ""
}
