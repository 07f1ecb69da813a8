package blackbox

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemuio"
)

// The program's repair path (campaign.RepairDriver, for qedtorture
// repair): its writable open and close, the one repair a program speaking
// qemu-io's commands has (a writable open of an image whose NEED_CHECK is
// set must check and repair it first). It has no guest reader: every open
// of the program is writable, and reading a repaired image through it
// could repair it again.

var _ campaign.RepairDriver = (*Driver)(nil)

// Repairers implements campaign.RepairDriver: the program's writable open.
func (d *Driver) Repairers() []campaign.Repairer { return []campaign.Repairer{openRepairer{d}} }

// GuestReader implements campaign.RepairDriver: none (see above).
func (*Driver) GuestReader() campaign.GuestReader { return nil }

// openRepairer starts the program on the image (no strace: nothing is
// recorded), waits for its first prompt and quits: open, close.
type openRepairer struct{ d *Driver }

func (r openRepairer) Name() string  { return r.d.Name() + " open" }
func (openRepairer) Check() bool     { return false }
func (openRepairer) InProcess() bool { return false }
func (r openRepairer) Repair(ctx context.Context, path string) ([]string, error) {
	argv := append(append([]string(nil), r.d.argv...), path)
	p, err := qemuio.StartCommand(ctx, argv, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s did not open the image: %w", r.d.command, err)
	}
	return nil, p.Quit()
}
