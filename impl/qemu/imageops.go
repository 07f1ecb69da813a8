package qemu

import (
	"fmt"
	"path/filepath"

	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

var _ target.ImageOps = Target{}

// Rebase implements target.ImageOps with `qemu-img rebase [-u] -b
// BACKING -F FORMAT` (qemu-img 7.2 needs -F: findings). On the image a
// recording records, qemu-img opens it through blklogwrites with
// --image-opts, appending to the recording's log (the qemu-io session has
// the image closed meanwhile), so that the header rewrite and a safe
// rebase's copies are in the trace the crash states are built from.
func (t Target) Rebase(fs afero.Fs, path, backing, format string, unsafe bool) error {
	real, err := RealPath(fs, path)
	if err != nil {
		return err
	}
	args := []string{"rebase", "-q"}
	if unsafe {
		args = append(args, "-u")
	}
	args = append(args, "-b", backing)
	if backing != "" && format != "" {
		args = append(args, "-F", format)
	}
	if !unsafe && backing != "" {
		return t.imgTraced(real, args) // json: cannot resolve a relative name (traced.go)
	}
	return t.img(real, args)
}

// Commit implements target.ImageOps with `qemu-img commit [-d] [-b
// BASE]` (BASE resolved by qemu-img as a backing name, relative to the
// image's directory, where it runs; o.Progress is not called: qemu-img's
// -p prints to a terminal). QEMU
// 7.2 cannot empty a QED image (findings Q4): without -d it leaves the
// image as it is, as with -d. On the image a recording records, the image
// is opened through blklogwrites (appending to the log) as for Rebase;
// the base's writes go to the base file directly: one blklogwrites log
// records one file, so the crash states of a QEMU recording hold the base
// as the setup left it (only the image's side of a commit is judged).
func (t Target) Commit(fs afero.Fs, path string, o target.CommitOptions) error {
	real, err := RealPath(fs, path)
	if err != nil {
		return err
	}
	args := []string{"commit", "-q"}
	if o.Drop {
		args = append(args, "-d")
	}
	if o.Base != "" {
		args = append(args, "-b", o.Base)
	}
	return t.imgTraced(real, args) // the base's writes too (traced.go)
}

// imgTraced runs qemu-img with args and then the image at real: on the
// image a recording records, as a plain qed file under strace, its
// system calls on every file of the directory a segment of the recording
// (traced.go); else as img does (strace missing: through blklogwrites).
func (t Target) imgTraced(real string, args []string) error {
	if t.Rec == nil || real != t.Rec.path || !straceFound() {
		return t.img(real, args)
	}
	tool := *t.Tool
	tool.Dir = filepath.Dir(real)
	return t.Rec.traced(&tool, args)
}

// img runs qemu-img with args and then the image at real: through
// blklogwrites when a recording records it, else as a qed file; from the
// image's directory (relative backing names).
func (t Target) img(real string, args []string) error {
	tool := *t.Tool
	tool.Dir = filepath.Dir(real)
	if t.Rec != nil && real == t.Rec.path {
		t.Rec.mu.Lock()
		started := t.Rec.proc != nil
		t.Rec.mu.Unlock()
		if !started {
			return fmt.Errorf("qemu: %s before the recording's first open", args[0])
		}
		args = append(args, "--image-opts", logOpts(true))
	} else {
		args = append(args, "-f", "qed", filepath.Base(real))
	}
	if _, err := tool.Img(args...); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

// ImageCommands implements campaign.ImageCommander: QEMU runs the image
// commands (with qemu-img), so campaigns on QEMU draw them.
func (*Driver) ImageCommands() bool { return true }
