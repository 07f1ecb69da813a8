package campaign

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// An artifact directory holds one failing case, in one layout for every
// target:
//
//	meta.json           what replay needs: seeds, target, judge, signature,
//	                    faults, stage, state id, crash point, guest op,
//	                    oracle options, where the image is in the crash
//	                    state's filesystem, the campaign's enumeration
//	workload.txt        the minimized workload (workload script form, as
//	                    the target ran it: adapted)
//	workload.orig.txt   the workload as generated (before minimization)
//	seed                campaign seed, workload index and workload seed
//	crash.txt           the crash identity: state id, crash point, model,
//	                    guest op in progress, unsynced operations
//	image/              the crashed files (image.qed and its backing
//	                    chain), real files qemu-img can open
//	expected-vs-read.txt  the model's expectation vs what was read
//	verdict.txt         the judge's verdict
//	explain.txt         one paragraph saying what happened
//	repro.sh            replays the artifact in a scratch copy and checks
//	                    the result: exit 0 the failure reproduced, 1 it
//	                    did not, 2 replay could not run (reproScript)
//	trace.bin           the recorded filesystem trace (crashsim binary form)
//	trace.txt           the same, readable: one operation a line, the
//	                    guest op (0-based line of workload.txt) that issued
//	                    it, the sync barriers
//	base/               (drivers recording out of process: QEMU) the files
//	                    when the trace began: trace.bin replays on them
//	target/             the driver's evidence (Recording.Evidence; QEMU:
//	                    image.log, the blklogwrites log; repro.sh, the
//	                    qemu-io session, with the pattern files in pat/)
//	nested/D/           (a crash during recovery, the nested judge) for
//	                    each depth D from 2: trace.bin and trace.txt, the
//	                    recovery of the crash state of depth D-1 (image/
//	                    for D = 2) as recorded, and image/, the crash
//	                    state of depth D (meta.json's chain[D-2] in that
//	                    trace); the last one is the state that failed
//
// Replay rebuilds the crash state from base/ (empty when absent) and
// trace.bin without the target, and re-runs the workload when the target
// is available.
const (
	metaFile      = "meta.json"
	traceFile     = "trace.bin"
	traceTextFile = "trace.txt"
	imageDir      = "image"
	reproFile     = "repro.sh"
	baseDir       = "base"   // a driver's files when its trace began (out of process)
	targetDir     = "target" // a driver's evidence (Recording.Evidence)
)

// ArtifactVersion is the version of meta.json's layout: 2 added the
// judge, the signature, where the image is (dir, image,
// strict_dir_sync), base/, target/ and trace.txt. Replay reads both.
const ArtifactVersion = 2

// ArtifactMeta is meta.json.
type ArtifactMeta struct {
	Version      int    `json:"version"`
	Target       string `json:"target"`
	CampaignSeed uint64 `json:"campaign_seed"`
	Workload     int    `json:"workload"`
	WorkloadSeed uint64 `json:"workload_seed"`
	Faults       string `json:"faults,omitempty"`
	// CreateFaults are the faults of the setup (RecordOptions.CreateFaults:
	// a fault sweep of the setup, faultsetup.go).
	CreateFaults string         `json:"create_faults,omitempty"`
	Stage        string         `json:"stage"`
	State        string         `json:"state,omitempty"`
	CrashPoint   int64          `json:"crash_point"`
	GuestOp      int            `json:"guest_op"`
	Message      string         `json:"message"`
	Oracle       oracle.Options `json:"oracle"`
	// The enumeration of the campaign, used when the implementation
	// changed since the artifact was written (see Replay).
	Models        []string `json:"models"`
	Bound         uint64   `json:"bound"`
	Samples       int      `json:"samples"`
	SampledPoints int      `json:"sampled_points"`
	// Judge is the Name of the judge that rejected the state (""
	// before version 2: the oracle judge); Signature the failure's
	// signature (Failure.Signature).
	Judge     string `json:"judge,omitempty"`
	Signature string `json:"signature,omitempty"`
	// Dir and Image are where the image's directory and the image are in
	// the crash state's filesystem ("": Dir and ImagePath, in process);
	// StrictDirSync: the trace replays with real directory semantics
	// (crashsim.Options without ImplicitDirSync: out-of-process drivers).
	Dir           string `json:"dir,omitempty"`
	Image         string `json:"image,omitempty"`
	StrictDirSync bool   `json:"strict_dir_sync,omitempty"`
	// Diff is the other side of a differential failure (stage diff).
	Diff string `json:"diff,omitempty"`
	// Marks are the recording's marks: [guest op (0-based workload line,
	// -1 the setup), trace index where its I/O began], for show.
	Marks [][2]int64 `json:"marks,omitempty"`
	// Chain are, for a crash during recovery (judge "nested"), the crash
	// states of depth 2, 3, ...: each in the trace of the recovery of the
	// state before it (State, then Chain[0], ...); nested/D/ holds them.
	Chain []string `json:"chain,omitempty"`
	// ChainMarks are, per recovery of the chain (nested/D/trace.bin, D =
	// 2, 3, ...), its marks: [recovery step, trace index where it began].
	// replay uses them to judge the recorded recovery when a re-recorded
	// one differs (an out-of-process recovery's I/O timing varies).
	ChainMarks [][][2]int64 `json:"chain_marks,omitempty"`
	// ChainJudge is the oracle's recoverer of the chain's crash states and
	// ChainRecorder who ran the recoveries ("" in process by ChainJudge;
	// else the driver, QEMU or a program): without the artifact's driver,
	// replay stands in with the reference only when the reference is
	// ChainJudge and ChainRecorder is "".
	ChainJudge    string `json:"chain_judge,omitempty"`
	ChainRecorder string `json:"chain_recorder,omitempty"`
	// Create: the workload's creation was recorded and judged (create.go),
	// from the trace index the setup ends at to CreateEnd.
	Create    bool  `json:"create,omitempty"`
	CreateEnd int64 `json:"create_end,omitempty"`
	// CreateOver: the creation was over an existing image (Recording.Over).
	CreateOver bool `json:"create_over,omitempty"`
}

// WriteArtifact writes f into a new directory under out (named after the
// seed, workload and stage; "-2", "-3", ... appended when an earlier run
// left one of that name) and returns its path.
//
// The artifact appears complete or not at all: it is built in a temporary
// directory next to its final name (atomicfile.MkdirTemp), every file in
// it is synced, and only then is it renamed into place and out synced
// (atomicfile.CommitDir). On any error (a full disk, a read-only out) the
// temporary is removed and the error names the artifact and the cause, so
// replay never meets a directory with a cut trace.bin or no workload.txt.
func WriteArtifact(out string, f *Failure, meta ArtifactMeta) (string, error) {
	name := fmt.Sprintf("failure-%d-w%d-%s", meta.CampaignSeed, f.Index, f.Stage)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("campaign: artifact directory %s: %w", out, unwrapPathErr(err))
	}
	dir := filepath.Join(out, name)
	for i := 2; ; i++ {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			break
		}
		dir = filepath.Join(out, fmt.Sprintf("%s-%d", name, i))
	}
	tmp, err := atomicfile.MkdirTemp(dir)
	if err != nil {
		return "", fmt.Errorf("campaign: artifact %w", err)
	}
	if err := fillArtifact(tmp, dir, f, meta); err != nil {
		_ = atomicfile.RemoveTemp(tmp)
		return "", fmt.Errorf("campaign: artifact %s: %w", dir, unwrapPathErr(err))
	}
	if err := atomicfile.CommitDir(tmp, dir); err != nil {
		return "", fmt.Errorf("campaign: artifact %w", err)
	}
	return dir, nil
}

// unwrapPathErr drops an *fs.PathError's path (a temporary's name) so that
// an error names the artifact once.
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fillArtifact writes the artifact's files into dir (a fresh directory).
// final is the artifact's name once committed (for the replay command it
// prints).
func fillArtifact(dir, final string, f *Failure, meta ArtifactMeta) error {
	if err := os.Mkdir(filepath.Join(dir, imageDir), 0o755); err != nil {
		return err
	}
	meta.Version = ArtifactVersion
	meta.Workload, meta.WorkloadSeed = f.Index, f.WorkloadSeed
	meta.Stage, meta.GuestOp, meta.Message = string(f.Stage), f.GuestOp, renumber(f.Message(), f.Rec)
	meta.Judge, meta.Signature = f.Judge, f.Signature(meta.Target)
	if f.Diff != nil {
		meta.Diff = f.Diff.Other
	}
	if f.Rec != nil {
		if f.Rec.dir() != Dir || f.Rec.Image != ImagePath {
			meta.Dir, meta.Image = f.Rec.dir(), f.Rec.Image
		}
		meta.StrictDirSync = !f.Rec.Options.ImplicitDirSync
		meta.Create, meta.CreateEnd = f.Rec.CreateEnd > 0, f.Rec.CreateEnd
		meta.CreateOver = f.Rec.Over != nil
		for _, mk := range f.Rec.Marks {
			meta.Marks = append(meta.Marks, [2]int64{int64(mk.Op), mk.K})
		}
	}
	if f.HasState() {
		meta.State, meta.CrashPoint = f.State.String(), f.State.K
	}
	nc := f.Nested()
	if nc != nil {
		meta.Chain = nil
		for _, id := range nc.Chain {
			meta.Chain = append(meta.Chain, id.String())
		}
		meta.ChainJudge, meta.ChainRecorder = nc.Judge, nc.Recorder
		meta.ChainMarks = nil
		for _, r := range nc.Recoveries {
			var ms [][2]int64
			for _, mk := range r.Marks {
				ms = append(ms, [2]int64{int64(mk.Op), mk.K})
			}
			meta.ChainMarks = append(meta.ChainMarks, ms)
		}
	}
	files := map[string][]byte{}
	mj, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	files[metaFile] = append(mj, '\n')
	files["workload.txt"] = []byte(f.W.String())
	orig := f.Original
	if orig == nil {
		orig = f.W
	}
	files["workload.orig.txt"] = []byte(orig.String())
	files["seed"] = fmt.Appendf(nil, "campaign_seed=%d\nworkload=%d\nworkload_seed=%d\n", meta.CampaignSeed, f.Index, f.WorkloadSeed)
	files["crash.txt"] = []byte(crashText(f))
	files["verdict.txt"] = []byte(verdictText(f, meta.Target) + "\n")
	files["expected-vs-read.txt"] = []byte(expectedVsRead(f) + "\n")
	files[reproFile] = []byte(reproScript(meta))
	files["explain.txt"] = []byte(Explain(f, meta.Target) + " " + replayText(f, meta.Target, final) + "\n")
	if f.Rec != nil {
		tb, err := f.Rec.Trace.MarshalBinary()
		if err != nil {
			return err
		}
		files[traceFile] = tb
		files[traceTextFile] = []byte(TraceText(f.Rec))
	}
	if nc != nil {
		for i, r := range nc.Recoveries {
			d := path.Join("nested", strconv.Itoa(i+2))
			tb, err := r.Trace.MarshalBinary()
			if err != nil {
				return err
			}
			files[path.Join(d, traceFile)] = tb
			files[path.Join(d, traceTextFile)] = []byte(TraceText(r))
		}
	}
	for name, b := range files {
		mode := os.FileMode(0o644)
		if name == reproFile {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			return fmt.Errorf("%s: %w", name, unwrapPathErr(err))
		}
	}
	if nc != nil {
		// Each crash state of the chain, as files.
		for i, r := range nc.Recoveries {
			if i >= len(nc.Chain) {
				break
			}
			p, err := r.Point(nc.Chain[i].K)
			if err != nil {
				return err
			}
			st, err := p.State(nc.Chain[i])
			if err != nil {
				return err
			}
			d := filepath.Join(dir, "nested", strconv.Itoa(i+2), imageDir)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			if err := copyDir(st, r.dir(), d); err != nil {
				return err
			}
		}
	}
	// The crashed files: rebuilt from the point (the state the oracle
	// judged was modified by the recovery), or the live files at the end
	// of a run that failed without a crash.
	var st *crashsim.FS
	switch {
	case f.Point != nil:
		st, err = f.Point.State(f.State)
	case f.Rec != nil:
		if err := f.Rec.complete(); err != nil {
			return err
		}
		p := f.Rec.End
		st, err = p.State(crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Prefix}, Ordinal: uint64(len(p.Unsynced()))})
	}
	if err != nil {
		return err
	}
	if st != nil {
		if err := copyDir(st, f.Rec.dir(), filepath.Join(dir, imageDir)); err != nil {
			return err
		}
	}
	return writeDriverFiles(dir, f.Rec)
}

// writeDriverFiles writes what a driver recording out of process hands
// over besides the trace: base/, the files when the trace began (the
// trace replays on them), and target/, the driver's evidence (QEMU's
// blklogwrites log, its qemu-io script and pattern files).
func writeDriverFiles(dir string, rec *Recording) error {
	if rec == nil {
		return nil
	}
	if rec.Base != nil {
		fs, err := rec.Base.Replay(rec.Trace, 0, rec.Options)
		if err != nil {
			return fmt.Errorf("%s: %w", baseDir, err)
		}
		if err := os.Mkdir(filepath.Join(dir, baseDir), 0o755); err != nil {
			return err
		}
		if err := copyDir(fs, rec.dir(), filepath.Join(dir, baseDir)); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rec.Evidence)) {
		p := filepath.Join(dir, targetDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, rec.Evidence[name], 0o644); err != nil {
			return fmt.Errorf("%s: %w", path.Join(targetDir, name), unwrapPathErr(err))
		}
	}
	return nil
}

// dir is the directory of the image and its backing chain in the
// recording's filesystems.
func (r *Recording) dir() string {
	if r == nil || r.Dir == "" {
		return Dir
	}
	return r.Dir
}

// copyDir copies the regular files of directory src of fs into dst.
func copyDir(fs afero.Fs, src, dst string) error {
	infos, err := afero.ReadDir(fs, src)
	if err != nil {
		return err
	}
	for _, fi := range infos {
		if fi.IsDir() {
			continue
		}
		b, err := afero.ReadFile(fs, filepath.Join(src, fi.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, fi.Name()), b, 0o644); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(imageDir, fi.Name()), unwrapPathErr(err))
		}
	}
	return nil
}

func crashText(f *Failure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stage: %s\n", f.Stage)
	if f.Diff != nil {
		fmt.Fprintf(&b, "no crash: the crash-free runs on the target and on %s disagree (verdict.txt)\n", f.Diff.Other)
		return b.String()
	}
	if !f.HasState() {
		fmt.Fprintf(&b, "no crash: the failure happened in the crash-free run, at guest op %d", f.GuestOp)
		if f.GuestOp >= 0 && f.GuestOp < len(f.W.Ops) {
			fmt.Fprintf(&b, " (%s)", f.W.Ops[f.GuestOp])
		}
		b.WriteString("\n")
		return b.String()
	}
	fmt.Fprintf(&b, "state: %s\n", f.State)
	fmt.Fprintf(&b, "crash point: k=%d (power loss just before filesystem operation %d)\n", f.State.K, f.State.K)
	fmt.Fprintf(&b, "model: %s\n", f.State.Model)
	fmt.Fprintf(&b, "guest op in progress: %s\n", guestOpText(f.W, f.GuestOp))
	if f.Point != nil {
		un := f.Point.Unsynced()
		fmt.Fprintf(&b, "unsynced operations at the crash point (%d):\n", len(un))
		for _, o := range un {
			fmt.Fprintf(&b, "  %s\n", o)
		}
	}
	if nc := f.Nested(); nc != nil {
		for i, id := range nc.Chain {
			r := nc.Recoveries[i]
			fmt.Fprintf(&b, "then a crash during the recovery (depth %d): state %s of nested/%d/trace.bin, during %s\n", i+2, id, i+2, recoveryStepText(r.MarkAt(id.K).Op))
			if p, err := r.Point(id.K); err == nil {
				un := p.Unsynced()
				fmt.Fprintf(&b, "  unsynced operations of the recovery at its crash point (%d):\n", len(un))
				for _, o := range un {
					fmt.Fprintf(&b, "    %s\n", o)
				}
			}
		}
	}
	return b.String()
}

func guestOpText(w *workload.Workload, i int) string {
	switch {
	case i < 0:
		return "none (right after the setup)"
	case len(w.Ops) == 0:
		return "none (the workload has no ops)"
	case i >= len(w.Ops):
		return fmt.Sprintf("none (the crash follows the last op, %d: %s)", len(w.Ops)-1, w.Ops[len(w.Ops)-1])
	}
	return fmt.Sprintf("%d (%s)", i, w.Ops[i])
}

func verdictText(f *Failure, target string) string {
	switch {
	case f.Diff != nil:
		return diffText(f, target)
	case f.Verdict != nil:
		return renumber(f.Verdict.String(), f.Rec)
	case f.OpErr != nil:
		return renumber(fmt.Sprintf("FAIL at %s: %v", f.Stage, f.OpErr), f.Rec)
	}
	return fmt.Sprintf("FAIL at %s: %v", f.Stage, f.Err)
}

func expectedVsRead(f *Failure) string {
	var mm *model.Mismatch
	switch {
	case f.Verdict != nil && f.Verdict.Mismatch != nil:
		mm = f.Verdict.Mismatch
	case f.OpErr != nil && f.OpErr.Mismatch != nil:
		mm = f.OpErr.Mismatch
	}
	if mm == nil {
		return "no data mismatch: the failure is structural or an error (see verdict.txt)"
	}
	return renumber(mm.Error(), f.Rec) + "\n\n" + renumber(sideBySide(mm), f.Rec)
}

// sideBySide is the mismatch's excerpt as a hexdump, expected (each
// allowed candidate) beside what was read, 16 bytes a row, with the
// differing bytes marked and the first differing offset named.
func sideBySide(mm *model.Mismatch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "first differing guest offset: %#x (sector %d, byte %d in it); bad run %#x bytes from there; %#x bad bytes in the read [%#x,+%#x)\n",
		mm.Off, mm.Off/512, mm.Off%512, mm.Len, mm.Bad, mm.ReadOff, mm.ReadLen)
	if mm.Off > mm.ReadOff {
		fmt.Fprintf(&b, "(the %#x bytes read before it, from %#x, were allowed)\n", mm.Off-mm.ReadOff, mm.ReadOff)
	}
	for _, c := range mm.Candidates {
		state := "pending"
		if c.Durable {
			state = "durable"
		}
		if !mm.Crash {
			state = "current"
		}
		fmt.Fprintf(&b, "\nexpected: %s %s   |   read   (^^ differs)\n", state, c.Source)
		n := min(len(c.Want), len(mm.Got))
		for r := 0; r < n; r += 16 {
			e := min(r+16, n)
			fmt.Fprintf(&b, "  %08x  %-47s | %-47s\n", mm.Off+int64(r), fmt.Sprintf("% x", c.Want[r:e]), fmt.Sprintf("% x", mm.Got[r:e]))
			var mark strings.Builder
			diff := false
			for i := r; i < e; i++ {
				if c.Want[i] != mm.Got[i] {
					mark.WriteString("^^ ")
					diff = true
				} else {
					mark.WriteString("   ")
				}
			}
			if diff {
				fmt.Fprintf(&b, "  %8s  %-47s | %s\n", "", "", strings.TrimRight(mark.String(), " "))
			}
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// modelOpRef is how the model names the operation that wrote a range:
// "(op N" with N its own count of operations on that disk, then " in
// backing layer L" for a backing file's.
var modelOpRef = regexp.MustCompile(`\(op (\d+)( in backing layer \d+)?\)`)

// renumber rewrites the model's operation numbers in text into the one
// numbering of artifacts: the 0-based line of workload.txt (a backing
// layer's operations are the setup's).
func renumber(text string, rec *Recording) string {
	if rec == nil || len(rec.Marks) == 0 {
		return text
	}
	return modelOpRef.ReplaceAllStringFunc(text, func(m string) string {
		sub := modelOpRef.FindStringSubmatch(m)
		if sub[2] != "" {
			return "(written by the setup" + sub[2] + ")"
		}
		n, err := strconv.Atoi(sub[1])
		if err != nil {
			return m
		}
		return "(" + lineOfModelOp(rec, n) + ")"
	})
}

// lineOfModelOp names the workload line whose model update was the
// model's n-th operation: the first mark whose model had done n
// operations (a mark's model holds its op's effects).
func lineOfModelOp(rec *Recording, n int) string {
	for _, mk := range rec.Marks {
		if mk.Model != nil && mk.Model.Ops() >= n {
			if mk.Op < 0 {
				return "written by the setup"
			}
			return fmt.Sprintf("workload line %d", mk.Op)
		}
	}
	if rec.EndModel != nil && len(rec.W.Ops) > 0 {
		return fmt.Sprintf("workload line %d", len(rec.W.Ops)-1)
	}
	return fmt.Sprintf("model op %d", n)
}

var stageHints = map[oracle.Stage]string{
	oracle.StageStructureBefore: "The raw crashed image has NEED_CHECK clear, so it promises to be consistent without a check, yet its tables are not: a metadata update reached the disk before what it depends on, or NEED_CHECK was cleared too early.",
	oracle.StageRecovery:        "Opening the crashed image writable (which checks and repairs it) failed.",
	oracle.StageSize:            "The recovered image size is neither the size at the last flush nor one a pending resize set.",
	oracle.StageData:            "A guest sector read after recovery is not its value at the last completed guest flush with some of the writes issued since applied in order: flushed data was lost, data came from the wrong place, or a write was torn inside a sector (expected-vs-read.txt names the rule broken, the candidates and what was read).",
	oracle.StageDataAfterReopen: "The data read after recovery was right, but after the liveness write, a clean close and a reopen a guest byte changed: the close after recovery damaged data (a stale table written back, a misdirected write-back).",
	oracle.StageStructureAfter:  "After recovery, a write and a clean close, the image is still inconsistent or keeps NEED_CHECK set: the repair left damage behind.",
	oracle.StageLiveness:        "The recovered image did not accept a write, a flush, a clean close and a clean reopen.",
	StageWorkload:               "No crash was involved: a guest operation of the workload failed on the running image (a read disagreed with the model, a check found corruption, or an I/O error nothing injected).",
	StageDiff:                   "No crash was involved: the same workload, run on the target and on the other side of the differential run, left different guest data, check results or structure after a clean close (verdict.txt names each difference, the rule that decides it and the side that deviates).",
	StageSetup:                  "Building the backing chain, creating or opening the image failed before the workload started.",
}

// Explain returns the one-paragraph explanation of a failure.
func Explain(f *Failure, target string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Workload %d (seed %d", f.Index, f.WorkloadSeed)
	if f.Original != nil && len(f.Original.Ops) != len(f.W.Ops) {
		fmt.Fprintf(&b, "; minimized from %d to %d ops", len(f.Original.Ops), len(f.W.Ops))
	} else {
		fmt.Fprintf(&b, "; %d ops", len(f.W.Ops))
	}
	how := "over crashsim's recording filesystem"
	if f.Rec != nil && f.Rec.Recorder != "" {
		how = "recorded by " + f.Rec.Recorder
	}
	on := target + ", " + how
	if f.Diff != nil {
		on = target + " and on " + f.Diff.Other + " without crashes"
	}
	fmt.Fprintf(&b, ", %d-byte clusters, %d-cluster tables, %d-byte image, %d backing file(s)) ran on %s.",
		f.W.Geometry.ClusterSize, f.W.Geometry.TableSize, f.W.Geometry.Size, len(f.W.Geometry.Backing), on)
	if f.Diff != nil {
		fd := f.Diff.Failing()
		fmt.Fprintf(&b, " They disagree: %s.", fd[0].Text(target, f.Diff.Other))
	} else if f.HasState() {
		fmt.Fprintf(&b, " A power loss just before filesystem operation %d, while guest op %s was in progress, left the files in image/ under the %s crash model (state %s).",
			f.State.K, guestOpText(f.W, f.GuestOp), f.State.Model, f.State)
		fmt.Fprintf(&b, " The oracle then failed at stage %s: %v.", f.Stage, firstLine(f.Verdict.Err))
	} else {
		fmt.Fprintf(&b, " It failed at stage %s: %v.", f.Stage, firstLine(errOf(f)))
	}
	if h := hint(f); h != "" {
		b.WriteString(" " + h)
	}
	return b.String()
}

// hint explains f's stage from the evidence: the verdict's own reports
// where they say more than the stage (an empty or truncated image is not
// a NEED_CHECK promise broken), else the stage's general meaning.
func hint(f *Failure) string {
	if f.Verdict != nil && f.Stage == oracle.StageStructureBefore && f.Verdict.Before == nil && errors.Is(f.Verdict.Err, fs.ErrNotExist) {
		return "The crash lost the image itself: its name was never made durable (the directory holding it was not synced after its creation), so the data flushed into it is gone with it."
	}
	if f.Verdict != nil && f.Stage == oracle.StageStructureBefore && f.Verdict.Before != nil {
		for _, k := range f.Verdict.Before.Kinds() {
			switch k {
			case check.ViolShortFile, check.ViolBadMagic:
				return fmt.Sprintf("The raw crashed image is not a QED image at all (%s): its header never reached the disk, or was lost — the writes that created it were not made durable before the crash.", k)
			case check.ViolBadClusterSize, check.ViolBadTableSize, check.ViolBadHeaderSize, check.ViolBadImageSize, check.ViolUnknownFeatures, check.ViolBadBackingName:
				return fmt.Sprintf("The raw crashed image's header is invalid (%s): a header write was torn or lost.", k)
			}
		}
		if ks := kindsText(f.Verdict.Before); ks != "" {
			return stageHints[f.Stage] + " The checker found: " + ks + " (verdict.txt lists each)."
		}
	}
	return stageHints[f.Stage]
}

// replayText says how to replay the artifact at dir and what that needs.
func replayText(f *Failure, target, dir string) string {
	s := "Replay with: qedtorture replay " + dir
	switch {
	case strings.HasPrefix(target, "defect:"):
		s += " (in a binary built with -tags qeddefects; qedtorture replay --target impl/qed " + dir + " judges the recorded state on impl/qed)"
	case f.Rec != nil && f.Rec.Base != nil:
		s += " (re-running the workload needs " + target + "; without it the recorded crash state is judged from base/ and trace.bin)"
	}
	return s + "."
}

func errOf(f *Failure) error {
	if f.OpErr != nil {
		return f.OpErr
	}
	return f.Err
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// WriteText writes the human form of a replay (or run) verdict.
func WriteText(w io.Writer, f *Failure, target string) {
	fmt.Fprintln(w, verdictText(f, target))
	fmt.Fprintln(w, expectedVsRead(f))
	fmt.Fprintln(w, Explain(f, target))
}

// reproScript is an artifact's repro.sh: it copies the artifact to a
// scratch directory (the artifact itself is never written), runs
// qedtorture replay on the copy ($QEDTORTURE, default qedtorture on the
// PATH; extra arguments go to replay, e.g. --target impl/qed) and checks
// the result: exit 0 when the failure reproduced, 1 when the case passes
// now, 2 when replay could not run (an error, a missing build tag or tool:
// its message says which).
func reproScript(meta ArtifactMeta) string {
	return fmt.Sprintf(`#!/bin/sh
# Reproduces this failure: %s
# (target %s, campaign seed %d, workload %d, state %s).
# Replays a scratch copy of this artifact with qedtorture replay ($QEDTORTURE,
# default: qedtorture on the PATH; arguments are passed to replay, e.g.
# --target impl/qed). Exit 0: the failure reproduced; 1: the case passes now;
# 2: replay could not run (its message says what it needs).
set -u
here=$(cd "$(dirname "$0")" && pwd) || exit 2
scratch=$(mktemp -d) || exit 2
trap 'rm -rf "$scratch"' EXIT
cp -R "$here/." "$scratch/" || exit 2
out=$("${QEDTORTURE:-qedtorture}" replay "$@" "$scratch" 2>&1)
rc=$?
printf '%%s\n' "$out"
if [ "$rc" -eq 0 ]; then
	echo "repro: NOT reproduced: the case passes now"
	exit 1
fi
if [ "$rc" -eq 1 ] && printf '%%s\n' "$out" | grep -q "the case still fails"; then
	echo "repro: reproduced"
	exit 0
fi
echo "repro: replay could not run (exit $rc)"
exit 2
`, meta.Signature, meta.Target, meta.CampaignSeed, meta.Workload, orNoCrash(meta.State))
}

func orNoCrash(s string) string {
	if s == "" {
		return "none (no crash)"
	}
	return s
}

// CreationNote says what the creation judge allows for a crash state at
// trace index k of the artifact ("" when k is not during a recorded
// creation): `show` and the HTML page print it.
func (m *ArtifactMeta) CreationNote(k int64) string {
	if !m.Create || k >= m.CreateEnd {
		return ""
	}
	s := fmt.Sprintf("a crash during the creation of the image and its backing chain (trace operations before %d, real directory semantics)", m.CreateEnd)
	if m.CreateOver {
		return s + ", over an existing image: the creation judge wants the image absent (or a file without the QED magic, which no implementation opens), the old image intact, or a valid image of the requested geometry with no data of its own; never a half-written header, nor the new header over the old image's tables"
	}
	return s + ": the creation judge wants the image absent, or a valid image of the requested geometry with no data of its own; never a half-written one"
}
