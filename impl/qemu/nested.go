package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

var _ campaign.RecoveryRecorder = (*Driver)(nil)

// RecordRecovery implements campaign.RecoveryRecorder: QEMU's own
// recovery of a crash state (issue 14.1), recorded through blklogwrites
// by the recorder of its workloads. The crash state's files are written
// into a scratch directory; one qemu-io opens the image through
// blklogwrites (QEMU's automatic check and repair when NEED_CHECK is set),
// reads back the model's uncertain ranges, writes one sector at guest
// offset 0, flushes and closes (campaign.RunRecovery). The log becomes the
// recording's trace over the snapshot taken at the open, each step's mark
// at the trace index its log entries begin, as for a workload.
func (d *Driver) RecordRecovery(ctx context.Context, st *campaign.State) (*campaign.Recording, error) {
	dir, remove, err := tempDir("qedtorture-qemu-r-")
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	defer remove()
	state, err := st.Point.State(st.ID)
	if err != nil {
		return nil, fmt.Errorf("qemu: recovery of %s: %w", st.ID, err)
	}
	src := "/"
	if st.Rec != nil && st.Rec.Dir != "" {
		src = st.Rec.Dir
	}
	infos, err := afero.ReadDir(state, src)
	if err != nil {
		return nil, fmt.Errorf("qemu: recovery of %s: %w", st.ID, err)
	}
	for _, fi := range infos {
		if fi.IsDir() {
			continue
		}
		b, err := afero.ReadFile(state, filepath.Join(src, fi.Name()))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, fi.Name()), b, 0o644); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, PatternDir), 0o755); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	path := filepath.Join(dir, workload.ImageName)
	r := NewRecorder(path)
	defer r.Kill()
	m := st.Model.Clone()
	var marks []campaign.Mark
	var entries []uint64
	tool := d.Tool.WithContext(ctx)
	opErr := campaign.RunRecovery(Target{Tool: tool, Rec: r}, afero.NewOsFs(), path, m, func(op int) {
		var n uint64
		if r.Proc() != nil { // before the open there is no log yet: 0
			var err error
			if n, err = r.entries(); err != nil && r.err == nil {
				r.err = err
			}
		}
		marks = append(marks, campaign.Mark{Op: op, Model: m.Clone()})
		entries = append(entries, n)
	})
	if p := r.Proc(); p != nil {
		_ = p.Quit()
	}
	if err := ctx.Err(); err != nil && opErr != nil {
		// qemu-io was killed with the context (the campaign's duration
		// ran out, or a signal): that proves nothing about QEMU.
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.Files() == nil {
		// The open never reached QEMU (nothing snapshotted): the
		// recovery failed before any I/O.
		files := map[string][]byte{}
		for _, fi := range infos {
			if !fi.IsDir() {
				files["/"+fi.Name()], _ = afero.ReadFile(state, filepath.Join(src, fi.Name()))
			}
		}
		r.files = files
	}
	base, err := crashsim.NewImage(r.Files())
	if err != nil {
		return nil, err
	}
	logBytes, _ := os.ReadFile(filepath.Join(dir, LogName))
	trace := &crashsim.Trace{}
	if len(logBytes) > 0 {
		if trace, err = crashsim.ReadDMLog(bytes.NewReader(logBytes), int64(len(logBytes)), imageInTree); err != nil {
			return nil, fmt.Errorf("qemu: importing the recovery's %s: %w", LogName, err)
		}
	}
	idx, err := entryOpIndex(logBytes)
	if err != nil {
		return nil, err
	}
	for i := range marks {
		marks[i].K = idx[min(entries[i], uint64(len(idx)-1))]
	}
	rec := &campaign.Recording{Dir: "/", Image: imageInTree, Base: base, Options: crashsim.Options{}, Trace: trace,
		Marks: marks, EndModel: m.Clone(), OpErr: opErr, Recovery: true,
		Recorder: "QEMU's blklogwrites driver (QEMU's own recovery: writable open, one write, flush, close)"}
	if st.Rec != nil {
		rec.W, rec.Seed = st.Rec.W, st.Rec.Seed
	}
	return rec, nil
}
