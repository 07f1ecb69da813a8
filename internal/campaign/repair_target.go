package campaign

import (
	"context"
	"fmt"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/props/target"
)

// TargetRepairer is the repair path of an in-process implementation (a
// target.Target): with Open false its check with repair (a writable Open,
// Disk.Check(true), Close: "NAME check -r all"), with Open true its
// writable open and close alone ("NAME open"; the target contract makes a
// writable open of an image whose NEED_CHECK is set check and repair it
// first). It is an FSRepairer: it runs on any afero.Fs, so RepairCrashes
// records it on crashsim.
type TargetRepairer struct {
	T    target.Target
	Open bool
}

var _ FSRepairer = TargetRepairer{}

// Name implements Repairer.
func (r TargetRepairer) Name() string {
	if r.Open {
		return r.T.Name() + " open"
	}
	return r.T.Name() + " check -r all"
}

// Check implements Repairer.
func (r TargetRepairer) Check() bool { return !r.Open }

// InProcess implements Repairer.
func (TargetRepairer) InProcess() bool { return true }

// Repair implements Repairer on the real files.
func (r TargetRepairer) Repair(_ context.Context, path string) ([]string, error) {
	return r.repair(afero.NewOsFs(), path)
}

// RepairFS implements FSRepairer; what it left unrepaired is in the
// image's NEED_CHECK.
func (r TargetRepairer) RepairFS(fs afero.Fs, path string) error {
	_, err := r.repair(fs, path)
	return err
}

// ReadGuestFS implements FSRepairer: a read-only open of the target.
func (r TargetRepairer) ReadGuestFS(fs afero.Fs, path string) ([]byte, error) {
	return target.ReadGuest(r.T, fs, path, "qed")
}

func (r TargetRepairer) repair(fs afero.Fs, path string) ([]string, error) {
	d, err := r.T.Open(fs, path, target.OpenOptions{})
	if err != nil {
		return nil, err
	}
	var unrep []string
	if !r.Open {
		res, err := d.Check(true)
		if err != nil {
			d.Close()
			return nil, err
		}
		// Corruptions counts what the repair left (those it fixed are
		// CorruptionsFixed), as qemu-img check -r all reports it.
		if res.Corruptions > 0 || res.CheckErrors > 0 {
			unrep = append(unrep, fmt.Sprintf("%d corruptions and %d check errors left (%d fixed)", res.Corruptions, res.CheckErrors, res.CorruptionsFixed))
		}
	}
	return unrep, d.Close()
}

// TargetReader reads the guest through an in-process target, read-only.
type TargetReader struct{ T target.Target }

// Name implements GuestReader.
func (r TargetReader) Name() string { return r.T.Name() }

// ReadGuest implements GuestReader on the real files.
func (r TargetReader) ReadGuest(_ context.Context, path string) ([]byte, error) {
	return target.ReadGuest(r.T, afero.NewOsFs(), path, "qed")
}
