package qemu

import (
	"context"
	"fmt"
	"os"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
)

// QEMU's repair paths (campaign.RepairDriver, for qedtorture repair):
// its writable open and close (qemu-io, which runs QED's automatic check
// with repair on an image whose NEED_CHECK is set) and qemu-img check -r
// all, as processes with qemutool's timeouts and process groups; its guest
// reader is qemu-img convert to raw.

var _ campaign.RepairDriver = (*Driver)(nil)

// Repairers implements campaign.RepairDriver: qemu-img check -r all, then
// QEMU's writable open.
func (d *Driver) Repairers() []campaign.Repairer {
	return []campaign.Repairer{Repairer{Tool: d.Tool}, Repairer{Tool: d.Tool, Open: true}}
}

// GuestReader implements campaign.RepairDriver.
func (d *Driver) GuestReader() campaign.GuestReader { return GuestReader{Tool: d.Tool} }

// Repairer is QEMU's writable open and close (Open) or qemu-img check -r
// all, on real files.
type Repairer struct {
	Tool *qemutool.Tool
	Open bool
}

// Name implements campaign.Repairer.
func (r Repairer) Name() string {
	if r.Open {
		return "qemu open"
	}
	return "qemu-img check -r all"
}

// Check implements campaign.Repairer.
func (r Repairer) Check() bool { return !r.Open }

// InProcess implements campaign.Repairer: QEMU runs as a process.
func (Repairer) InProcess() bool { return false }

// Repair implements campaign.Repairer: a refusal (an open or a check that
// failed) is the error; the corruptions qemu-img check -r all reports left
// (exit 2) are what it left unrepaired.
func (r Repairer) Repair(ctx context.Context, path string) ([]string, error) {
	t := r.Tool.WithContext(ctx)
	if r.Open {
		_, err := t.IOBatch(path, "qed", "flush")
		return nil, err
	}
	c, code, err := t.Check(path, "all")
	switch {
	case err != nil:
		return nil, err
	case code == 1:
		return nil, fmt.Errorf("qemu-img check -r all failed (exit 1, check-errors %d)", c.CheckErrors)
	case code == 2:
		return []string{fmt.Sprintf("%d corruptions left", c.Corruptions)}, nil
	}
	return nil, nil
}

// GuestReader reads the guest through QEMU: qemu-img convert to raw, which
// opens the image read-only.
type GuestReader struct{ Tool *qemutool.Tool }

// Name implements campaign.GuestReader.
func (GuestReader) Name() string { return "qemu" }

// ReadGuest implements campaign.GuestReader.
func (r GuestReader) ReadGuest(ctx context.Context, path string) ([]byte, error) {
	raw := path + ".raw"
	defer os.Remove(raw)
	if _, err := r.Tool.WithContext(ctx).Img("convert", "-f", "qed", "-O", "raw", path, raw); err != nil {
		return nil, err
	}
	return os.ReadFile(raw)
}
