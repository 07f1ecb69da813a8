package campaign

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
)

// SideRaw is the side of a signature whose failure the raw crashed image
// shows before anyone recovers it (stage structure-before-recovery): the
// same failure whichever judge found it.
const SideRaw = "raw"

// Signature is f's failure signature, the same for every target: what
// failed, where, and which kinds of damage, without the workload or the
// state. Failures with one signature are one finding: the campaign
// minimizes and writes the first of each, counts the others
// (Report.Signatures), and --max-failures counts distinct signatures.
//
//	JUDGE/STAGE                 a crash state a judge rejected (JUDGE is
//	                            the judge's Name: who recovered it)
//	raw/structure-before-recovery/KINDS
//	                            the raw crashed image is inconsistent with
//	                            NEED_CHECK clear (KINDS: the checker's
//	                            violation kinds, joined by "+"), or absent
//	                            (KINDS: image-missing)
//	JUDGE/structure-after-recovery/KINDS
//	TARGET/workload[/data]      a guest op failed in the crash-free run (a
//	                            read that disagreed with the model: /data)
//	TARGET/setup                the setup failed
//	diff/KEY/SIDE               a differential run (Config.Diff) found a
//	                            difference of kind KEY (run, size, data,
//	                            model, check, structure) in which SIDE
//	                            (target, other, both, unknown) deviates
//	                            from the rule
//	depthD/SIGNATURE            a crash state reached by D-1 crashes
//	                            during recovery (the nested judge): the
//	                            signature of that state's failure, its
//	                            side the recoverer (or raw)
//	create/SIGNATURE            a crash during the creation of the image
//	                            or its backing chain (the creation judge):
//	                            the signature of the state's failure, its
//	                            side the target (or raw); stage creation:
//	                            a file that is not the requested image
//
// target is the driver's name (for failures without a judge).
func (f *Failure) Signature(target string) string {
	switch f.Stage {
	case StageSetup:
		return target + "/setup"
	case StageDiff:
		return diffSignature(f.Diff)
	case StageWorkload:
		if f.OpErr != nil && f.OpErr.Mismatch != nil {
			if f.OpErr.Mismatch.BackingForZeros() {
				// A read of a range the guest zeroed returned the backing
				// file's data: its own signature, so that a known bug of
				// this shape (QEMU's F2) does not stand for every wrong read.
				return target + "/workload/data/" + BackingForZeros
			}
			return target + "/workload/data"
		}
		return target + "/workload"
	}
	side := f.Judge
	if side == "" {
		side = target
	}
	prefix := ""
	if nc := f.Nested(); nc != nil {
		prefix = fmt.Sprintf("depth%d/", len(nc.Chain)+1)
		side = nc.Judge
	}
	if f.Judge == CreateJudgeName {
		prefix, side = "create/", target
	}
	var rep *check.Report
	switch f.Stage {
	case oracle.StageStructureBefore:
		side = SideRaw
		if f.Verdict != nil {
			rep = f.Verdict.Before
			if rep == nil && errors.Is(f.Verdict.Err, fs.ErrNotExist) {
				// No file to check: the crash lost the image's name.
				return prefix + side + "/" + string(f.Stage) + "/" + ImageMissing
			}
		}
	case oracle.StageStructureAfter:
		if f.Verdict != nil {
			rep = f.Verdict.After
		}
	}
	s := prefix + side + "/" + string(f.Stage)
	if ks := kindsText(rep); ks != "" {
		s += "/" + ks
	}
	if f.Stage == oracle.StageCommitBase && f.Verdict != nil {
		var se *oracle.CommitBaseStructureError
		switch {
		case errors.Is(f.Verdict.Err, oracle.ErrCommitBaseSize):
			s += "/size" // the base's size alone (findings F9); its data keeps the stage's name
		case errors.As(f.Verdict.Err, &se):
			s += "/" + kindsText(se.Report) // a QED base's structure, as the image's stages name it
		}
	}
	return s
}

// BackingForZeros ends the signature of a crash-free read that returned
// a backing layer's data where the guest had zeroed the range (or grown
// the disk over it): target/workload/data/backing-for-zeros
// (model.Mismatch.BackingForZeros).
const BackingForZeros = "backing-for-zeros"

// ImageMissing ends the signature of a crash state without the image
// (raw/structure-before-recovery/image-missing): its name was never made
// durable (a directory not synced after its creation).
const ImageMissing = "image-missing"

// kindsText is the violation kinds of rep joined by "+" ("" for none).
func kindsText(rep *check.Report) string {
	if rep == nil {
		return ""
	}
	var ks []string
	for _, k := range rep.Kinds() {
		ks = append(ks, k.String())
	}
	return strings.Join(ks, "+")
}
