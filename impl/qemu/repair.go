package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/workload"
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

var _ campaign.TraceRepairer = Repairer{}

// Reader implements campaign.TraceRepairer: qemu-img convert.
func (r Repairer) Reader() campaign.GuestReader { return GuestReader{Tool: r.Tool} }

// RecordRepair implements campaign.TraceRepairer: the path runs once on
// dir/image.qed opened through QEMU's blklogwrites driver (as a workload's
// run is recorded: every write and flush QEMU issues to the image file is
// logged, in order, in dir/image.log), and the log becomes the trace, on
// tracePath. The open is qemu-io's `open -o` with the driver's options,
// then `quit`; the check is qemu-img check -r all --image-opts with the
// same options.
func (r Repairer) RecordRepair(ctx context.Context, dir, tracePath string) (*crashsim.Trace, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, LogName)
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	defer os.Remove(logPath)
	t := r.Tool.WithContext(ctx)
	if r.Open {
		p, err := qemuio.Start(t.Ctx(), t.IOPath, dir)
		if err != nil {
			return nil, err
		}
		if _, err := p.Do("open -o " + logOpts(false)); err != nil {
			p.Kill()
			return nil, fmt.Errorf("qemu: open through blklogwrites: %w", err)
		}
		if err := p.Quit(); err != nil {
			return nil, err
		}
	} else {
		opts := "driver=qed,file.driver=blklogwrites,file.file.driver=file,file.file.filename=" + filepath.Join(dir, workload.ImageName) +
			",file.log.driver=file,file.log.filename=" + logPath + ",file.log-super-update-interval=1,file.log-sector-size=512"
		res, err := t.RunImg("check", "-r", "all", "--output=json", "--image-opts", opts)
		switch {
		case err != nil:
			return nil, err
		case res.ExitCode == 1:
			return nil, fmt.Errorf("qemu-img check -r all through blklogwrites failed (exit 1): %s", bytes.TrimSpace(res.Stderr))
		}
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if len(b) == 0 {
		return &crashsim.Trace{}, nil
	}
	tr, err := crashsim.ReadDMLog(bytes.NewReader(b), int64(len(b)), tracePath)
	if err != nil {
		return nil, fmt.Errorf("qemu: importing %s: %w", LogName, err)
	}
	return tr, nil
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
