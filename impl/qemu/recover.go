package qemu

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// Side names who judged a failing crash state.
type Side string

// The sides.
const (
	SideRaw  Side = "raw"      // the structural checker on the crashed bytes
	SideQEMU Side = "qemu"     // recovered and read back by QEMU
	SideQED  Side = "impl/qed" // recovered and read back by impl/qed
)

// CrashOptions bound CheckCrashes.
type CrashOptions struct {
	Models []crashsim.Model // nil = oracle.DefaultModels()
	// Enum bounds the states per crash point and model.
	Enum crashsim.EnumOptions
	// SamplePoints: crash points drawn at random trace indices besides
	// every sync point and the end of the trace.
	SamplePoints int
	Seed         uint64
	// QEMUBudget: at most this many distinct states are recovered and read
	// back with QEMU (2 qemu-img processes each); 0 = none, <0 = all.
	QEMUBudget int
	// Reference is the in-process implementation that recovers and reads
	// back every distinct state (side impl/qed: cmd/qedtorture passes
	// impl/qed's adapter; this package imports no other implementation).
	// Required unless SkipQED.
	Reference target.Target
	// SkipQED skips the Reference recovery (the raw structural check runs
	// on every state anyway).
	SkipQED bool
	Tool    *qemutool.Tool
	// WorkDir holds the files of the QEMU recoveries ("" = a temp dir).
	WorkDir string
}

// StateFailure is one crash state that failed an oracle.
type StateFailure struct {
	ID    crashsim.StateID
	Op    int    // workload op the crash falls in (len(ops) = the end)
	What  string // that op
	Side  Side
	Stage string
	Err   string
	Image []byte // the crashed image file
}

func (f *StateFailure) String() string {
	return fmt.Sprintf("%s (during op %d: %s): %s at %s: %s", f.ID, f.Op, f.What, f.Side, f.Stage, f.Err)
}

// CrashResult summarises CheckCrashes.
type CrashResult struct {
	Points      int            // crash points visited
	States      int            // states (choice vectors) built
	Distinct    int            // distinct (image bytes, phase) pairs
	QEDChecked  int            // states judged through impl/qed
	QEMUChecked int            // states judged through QEMU
	PerModel    map[string]int // states built per model
	Failures    []*StateFailure
}

type stateKey struct {
	sum   [32]byte
	phase int
}

// CheckCrashes enumerates the crash states of rec and judges them (see
// the package doc). Failures are kept one per (side, stage, phase).
func CheckCrashes(rec *Recording, o CrashOptions) (*CrashResult, error) {
	if o.Reference == nil && !o.SkipQED {
		return nil, errors.New("qemu: CheckCrashes needs CrashOptions.Reference (the in-process implementation that recovers crash states) or SkipQED")
	}
	models := o.Models
	if models == nil {
		models = oracle.DefaultModels()
	}
	base, err := rec.Base()
	if err != nil {
		return nil, err
	}
	n := int64(len(rec.Trace.Ops))
	ks := append(rec.Trace.SyncPoints(), n)
	rng := rand.New(rand.NewPCG(o.Seed, 0x71656d75))
	for range o.SamplePoints {
		if n > 0 {
			ks = append(ks, rng.Int64N(n+1))
		}
	}
	slices.Sort(ks)
	ks = slices.Compact(ks)

	res := &CrashResult{PerModel: map[string]int{}}
	seen := map[stateKey]bool{}
	type cand struct {
		id    crashsim.StateID
		phase int
	}
	var distinct []cand
	points := map[int64]*crashsim.Point{}
	reported := map[string]bool{}
	addFail := func(f *StateFailure) {
		key := fmt.Sprintf("%s/%s/%d", f.Side, f.Stage, f.Op)
		if !reported[key] {
			reported[key] = true
			res.Failures = append(res.Failures, f)
		}
	}
	for _, k := range ks {
		fs, err := base.Replay(rec.Trace, k, crashsim.Options{})
		if err != nil {
			return nil, fmt.Errorf("qemu: replaying the log to %d: %w", k, err)
		}
		pt, err := fs.Point()
		if err != nil {
			return nil, err
		}
		points[k] = pt
		res.Points++
		phIdx := phaseIndex(rec, k)
		ph := &rec.Phases[phIdx]
		for _, m := range models {
			for id, st := range pt.States(m, o.Enum) {
				res.States++
				res.PerModel[m.String()]++
				img, err := afero.ReadFile(st, imageInTree)
				if err != nil {
					return nil, fmt.Errorf("qemu: state %s: %w", id, err)
				}
				key := stateKey{sha256.Sum256(img), phIdx}
				if seen[key] {
					continue
				}
				seen[key] = true
				distinct = append(distinct, cand{id, phIdx})
				res.Distinct++
				fail := func(side Side, stage, msg string) {
					addFail(&StateFailure{ID: id, Op: ph.Op, What: ph.What, Side: side, Stage: stage, Err: msg, Image: img})
				}
				raw := check.Structure(img)
				if !raw.NeedCheck() && !raw.IsConsistent() {
					fail(SideRaw, string(oracle.StageStructureBefore), "NEED_CHECK is clear but the image is inconsistent:\n"+raw.String())
				}
				if o.SkipQED {
					continue
				}
				res.QEDChecked++
				v := oracle.Judge(o.Reference, st, imageInTree, ph.Model.Clone(), oracle.Options{})
				if !v.OK() && v.Stage != oracle.StageStructureBefore {
					fail(SideQED, string(v.Stage), v.String())
				}
			}
		}
	}
	if o.QEMUBudget == 0 || len(distinct) == 0 {
		return res, nil
	}
	budget := o.QEMUBudget
	if budget < 0 || budget > len(distinct) {
		budget = len(distinct)
	}
	rng.Shuffle(len(distinct), func(i, j int) { distinct[i], distinct[j] = distinct[j], distinct[i] })
	work := o.WorkDir
	if work == "" {
		var remove func()
		if work, remove, err = tempDir("qedtorture-qemu-states-"); err != nil {
			return nil, err
		}
		defer remove()
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	for name, b := range rec.Files {
		if name != imageInTree {
			if err := os.WriteFile(filepath.Join(work, filepath.Base(name)), b, 0o644); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range distinct[:budget] {
		st, err := points[c.id.K].State(c.id)
		if err != nil {
			return nil, err
		}
		img, err := afero.ReadFile(st, imageInTree)
		if err != nil {
			return nil, err
		}
		ph := &rec.Phases[c.phase]
		res.QEMUChecked++
		stage, msg, err := QEMURecover(o.Tool, work, img, ph.Model)
		if err != nil {
			return nil, err
		}
		if stage != "" {
			addFail(&StateFailure{ID: c.id, Op: ph.Op, What: ph.What, Side: SideQEMU, Stage: stage, Err: msg, Image: img})
		}
	}
	return res, nil
}

func phaseIndex(rec *Recording, k int64) int {
	idx := 0
	for i := range rec.Phases {
		if rec.Phases[i].Start <= k {
			idx = i
		}
	}
	return idx
}

// QEMURecover writes img as image.qed into dir (which holds the backing
// files) and recovers it as a guest would: a writable open in qemu-io
// (QEMU checks and repairs only when NEED_CHECK is set) and a clean
// close. The result must be consistent with NEED_CHECK clear (structural
// checker); then the guest data is read back with `qemu-img convert -O
// raw` and judged against m (not modified). Last, liveness, as impl/qed's
// oracle runs it: QEMU writes a sector at offset 0 and closes cleanly (the
// image must again be consistent with NEED_CHECK clear) and a fresh
// read-only qemu-io reads the sector back. It returns the failing stage
// ("" when the state passed) and an explanation; err is for failures of
// the harness itself.
func QEMURecover(tool *qemutool.Tool, dir string, img []byte, m *model.Disk) (stage, msg string, err error) {
	p := filepath.Join(dir, workload.ImageName)
	if err := os.WriteFile(p, img, 0o644); err != nil {
		return "", "", err
	}
	if stage, msg, err := qemuIOStage(tool, oracle.StageRecovery, "writable open", "-f", "qed", "-c", "flush", p); stage != "" || err != nil {
		return stage, msg, err
	}
	if stage, msg, err := cleanAfter(p, "a writable open and close"); stage != "" || err != nil {
		return stage, msg, err
	}
	out := filepath.Join(dir, "readback.raw")
	defer os.Remove(out)
	res, err := tool.RunImg("convert", "-f", "qed", "-O", "raw", p, out)
	if err != nil {
		return "", "", err
	}
	if res.ExitCode != 0 {
		return string(oracle.StageData), fmt.Sprintf("qemu-img convert failed after recovery: %s", bytes.TrimSpace(res.Stderr)), nil
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return "", "", err
	}
	size := int64(len(data))
	if !slices.Contains(m.CrashSizes(), size) {
		return string(oracle.StageSize), fmt.Sprintf("recovered size %#x, model allows %#x", size, m.CrashSizes()), nil
	}
	if err := m.VerifyCrash(0, data); err != nil {
		return string(oracle.StageData), err.Error(), nil
	}
	if size == 0 {
		return "", "", nil // nothing to write
	}
	return qemuLiveness(tool, p, min(size, livenessLen))
}

// livenessLen and livenessPattern are QEMU's liveness write: one sector of
// a byte pattern at offset 0 (qemu-io write -P).
const (
	livenessLen     = 512
	livenessPattern = 0xa5
)

// qemuLiveness writes n bytes of livenessPattern at offset 0 of the
// recovered image at p with a flush and a clean exit of qemu-io, checks
// that the image is consistent with NEED_CHECK clear, and reads the bytes
// back in a new read-only qemu-io.
func qemuLiveness(tool *qemutool.Tool, p string, n int64) (stage, msg string, err error) {
	write := fmt.Sprintf("write -P %#x 0 %d", livenessPattern, n)
	if stage, msg, err := qemuIOStage(tool, oracle.StageLiveness, "write after recovery", "-f", "qed", "-c", write, "-c", "flush", p); stage != "" || err != nil {
		return stage, msg, err
	}
	if stage, msg, err := cleanAfter(p, "recovery, a write and a clean close"); stage != "" || err != nil {
		return stage, msg, err
	}
	read := fmt.Sprintf("read -P %#x 0 %d", livenessPattern, n)
	return qemuIOStage(tool, oracle.StageLiveness, "reading back the write after reopening", "-f", "qed", "-r", "-c", read, p)
}

// qemuIOStage runs qemu-io with args: a non-zero exit or a failed command
// is a failure at stage, explained by what was attempted.
func qemuIOStage(tool *qemutool.Tool, stage oracle.Stage, what string, args ...string) (string, string, error) {
	res, err := tool.RunIO(args...)
	if err != nil {
		return "", "", err
	}
	if res.ExitCode != 0 || qemuio.Failed(string(res.Stdout)+string(res.Stderr)) {
		return string(stage), fmt.Sprintf("%s in qemu-io failed (exit %d): %s", what, res.ExitCode,
			bytes.TrimSpace(append(res.Stdout, res.Stderr...))), nil
	}
	return "", "", nil
}

// cleanAfter requires the image at p to be consistent with NEED_CHECK
// clear after what QEMU just did to it (a structure-after-recovery
// failure otherwise).
func cleanAfter(p, what string) (string, string, error) {
	after, err := checkFile(afero.NewOsFs(), p)
	if err != nil {
		return "", "", err
	}
	if !after.IsConsistent() || after.NeedCheck() {
		return string(oracle.StageStructureAfter), fmt.Sprintf("after %s in qemu-io: consistent=%v need_check=%v\n%s", what, after.IsConsistent(), after.NeedCheck(), after), nil
	}
	return "", "", nil
}
