package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// Difference is one way QEMU and impl/qed disagreed on the same workload.
type Difference struct {
	What string // what differs
	QEMU string // QEMU's side
	QED  string // impl/qed's side
	// Rule is the spec's rule that decides it and Follows which side
	// follows it ("qemu", "impl/qed", "both" for allowed layout freedom,
	// "?" when no rule decides).
	Rule    string
	Follows string
}

func (d Difference) String() string {
	return fmt.Sprintf("%s: qemu=%s impl/qed=%s (rule: %s; follows it: %s)", d.What, d.QEMU, d.QED, d.Rule, d.Follows)
}

// DiffResult is the outcome of one differential run.
type DiffResult struct {
	W           *workload.Workload // as run (adapted)
	Adaptations []Adaptation
	Differences []Difference
	QEMUCheck   target.CheckResult
	QEDCheck    target.CheckResult
}

// side is one implementation's run of a workload.
type side struct {
	runErr error
	data   []byte
	check  target.CheckResult
	after  *check.Report
	model  error // the final data against the model
}

// Diff runs w (adapted) through QEMU (files in dir) and through ref, the
// in-process reference (impl/qed's adapter, in memory), with workload.Exec,
// which checks every read and concurrent group against the model on both
// sides, then compares what each side reports and the final guest data
// and check reports. The reference's side is named "impl/qed" in the
// differences.
func Diff(tool *qemutool.Tool, ref target.Target, w *workload.Workload, dir string) (*DiffResult, error) {
	if ref == nil {
		return nil, errors.New("qemu: Diff needs the in-process reference implementation")
	}
	w, ad := Adapt(w)
	res := &DiffResult{W: w, Adaptations: ad}
	q, err := runSide(Target{Tool: tool}, afero.NewOsFs(), dir, w, func(path string) ([]byte, error) {
		out := filepath.Join(dir, "final.raw")
		defer os.Remove(out)
		if _, err := tool.Img("convert", "-f", "qed", "-O", "raw", path, out); err != nil {
			return nil, err
		}
		return os.ReadFile(out)
	})
	if err != nil {
		return nil, err
	}
	d, err := runSide(ref, afero.NewMemMapFs(), "/diff", w, nil)
	if err != nil {
		return nil, err
	}
	res.QEMUCheck, res.QEDCheck = q.check, d.check
	add := func(what, qs, ds, rule, follows string) {
		res.Differences = append(res.Differences, Difference{What: what, QEMU: qs, QED: ds, Rule: rule, Follows: follows})
	}
	errText := func(e error) string {
		if e == nil {
			return "ok"
		}
		return e.Error()
	}
	if (q.runErr == nil) != (d.runErr == nil) || q.runErr != nil {
		follows := "impl/qed"
		if d.runErr != nil && q.runErr == nil {
			follows = "qemu"
		} else if d.runErr != nil {
			follows = "neither"
		}
		add("run (reads checked against the model)", errText(q.runErr), errText(d.runErr),
			"every read returns the last value written (docs/format.md: Tables, Backing files, Write-zeroes and resize)", follows)
	}
	if q.runErr == nil && d.runErr == nil {
		if len(q.data) != len(d.data) {
			add("guest size", fmt.Sprint(len(q.data)), fmt.Sprint(len(d.data)), "image_size is the guest-visible size", "?")
		} else if i := firstDiff(q.data, d.data); i >= 0 {
			follows := "?"
			switch {
			case q.model == nil && d.model != nil:
				follows = "qemu"
			case d.model == nil && q.model != nil:
				follows = "impl/qed"
			case q.model != nil && d.model != nil:
				follows = "neither"
			case overlappingGroup(w):
				// Each side's model adopted what its concurrent group left;
				// overlapping writes of one group may land in any order.
				follows = "both"
			}
			add("guest data", fmt.Sprintf("%x at %#x (model: %v)", q.data[i:min(i+16, len(q.data))], i, errText(q.model)),
				fmt.Sprintf("%x (model: %v)", d.data[i:min(i+16, len(d.data))], errText(d.model)),
				"every byte reads the last value written (model)", follows)
		} else if q.model != nil {
			add("guest data against the model", q.model.Error(), d.model.Error(), "every byte reads the last value written (model)", "neither")
		}
	}
	if q.check.Corruptions != 0 || d.check.Corruptions != 0 || q.check.CheckErrors != 0 || d.check.CheckErrors != 0 {
		add("check corruptions/check-errors after a clean close",
			fmt.Sprintf("%d/%d", q.check.Corruptions, q.check.CheckErrors), fmt.Sprintf("%d/%d", d.check.Corruptions, d.check.CheckErrors),
			"a cleanly closed image is consistent", followsZero(q.check.Corruptions+q.check.CheckErrors, d.check.Corruptions+d.check.CheckErrors))
	}
	if q.check.Leaks != d.check.Leaks {
		add("leaked clusters after a clean close", fmt.Sprint(q.check.Leaks), fmt.Sprint(d.check.Leaks),
			"leaks are allowed (allocation is append-only; layouts may differ)", "both")
	}
	for _, s := range []struct {
		name string
		r    *check.Report
	}{{"qemu", q.after}, {"impl/qed", d.after}} {
		if s.r != nil && (!s.r.IsConsistent() || s.r.NeedCheck()) {
			add("structure after a clean close ("+s.name+")", s.r.String(), "", "after close the image is consistent with NEED_CHECK clear", "not "+s.name)
		}
	}
	return res, nil
}

func followsZero(q, d int64) string {
	switch {
	case q == 0:
		return "qemu"
	case d == 0:
		return "impl/qed"
	}
	return "neither"
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// runSide runs w on t and gathers the final guest data (readAll, or the
// target's own reads when nil), its check report and the structural
// checker's report, after a clean close.
func runSide(t target.Target, fs afero.Fs, dir string, w *workload.Workload, readAll func(path string) ([]byte, error)) (*side, error) {
	e, err := workload.NewExec(t, fs, dir, w)
	if err != nil {
		return nil, fmt.Errorf("qemu: diff: %s setup: %w", t.Name(), err)
	}
	s := &side{runErr: e.RunAll()}
	if e.Disk != nil {
		if err := e.Disk.Close(); err != nil && s.runErr == nil {
			s.runErr = fmt.Errorf("close: %w", err)
		}
	}
	if s.runErr != nil {
		return s, nil
	}
	path := e.ImagePath()
	if s.after, err = checkFile(fs, path); err != nil {
		return nil, err
	}
	d, err := t.Open(fs, path, target.OpenOptions{ReadOnly: true})
	if err != nil {
		s.runErr = fmt.Errorf("reopen: %w", err)
		return s, nil
	}
	defer d.Close()
	if s.check, err = d.Check(false); err != nil {
		s.runErr = fmt.Errorf("check: %w", err)
		return s, nil
	}
	if readAll != nil {
		s.data, err = readAll(path)
	} else {
		s.data = make([]byte, d.Size())
		_, err = d.ReadAt(s.data, 0)
	}
	if err != nil {
		s.runErr = fmt.Errorf("read back: %w", err)
		return s, nil
	}
	if int64(len(s.data)) != e.Model.Size() {
		s.model = fmt.Errorf("size %#x, model %#x", len(s.data), e.Model.Size())
	} else {
		s.model = e.Model.Verify(0, s.data)
	}
	return s, nil
}

// overlappingGroup reports whether a concurrent group of w has two
// overlapping writes (whose order is not defined).
func overlappingGroup(w *workload.Workload) bool {
	for _, op := range w.Ops {
		for i, a := range op.Group {
			for _, b := range op.Group[i+1:] {
				if a.Off < b.Off+b.Len && b.Off < a.Off+a.Len {
					return true
				}
			}
		}
	}
	return false
}
