package campaign

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"path"
	"sync/atomic"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// Crashes during creation (issue 14.2).
//
// A share of the workloads (Config.CreateShare, drawn from the workload
// seed) records the creation of the image and of its backing chain, and
// the first open, with real directory semantics (crashsim without
// ImplicitDirSync: a new name is durable only once its directory is
// synced; the image's directory itself exists durably before). The crash
// states of that part (Recording.SetupEnd to CreateEnd) are judged by the
// creation judge instead of the oracle judge:
//
//   - the image is absent (its creation never became durable), or
//   - it is an image of the requested geometry (cluster size, table size,
//     size, backing file name and format; a crafted image, workload.Craft,
//     may also carry its crafted backing name and a probed raw backing
//     file) that passes the whole oracle
//     against the model right after the setup: structure, a writable open
//     (recovery), every guest byte the backing chain's or zero (no data),
//     liveness;
//   - never a file under the image's name that is not such an image: a
//     half-written header, whether the implementation refuses it or, worse,
//     accepts it.
//
// The states after CreateEnd are judged as in every workload, under the
// same real directory semantics.
//
// Half of those workloads (drawn from the workload seed: CreateOverChosen)
// create over an existing image, as a user's `create` over an old image
// does: the old image (OverImageFor: the workload's cluster and table
// sizes, another size, 4 KiB of data at guest offset 0, no backing file)
// is made durably, name included, before the creation is recorded.
// A crash during such a creation may then also leave:
//
//   - the old image, intact: it passes the whole oracle against its own
//     model (every byte of its data durable); the creation never reached
//     the disk, or only what the old header does not point at. An old
//     header over tables the creation already overwrote is not intact (its
//     data reads zeros): that fails;
//   - a file without the QED magic (empty, or its header not yet
//     written): no implementation opens it, so it is the image absent
//     under a durable name, and it is counted with the absent ones. A
//     creation in place (not a write to a new name renamed over the old)
//     cannot avoid some such state: the old bytes must be destroyed before
//     the new header is complete, and destroying the magic first (a synced
//     truncate) is what keeps every other state safe.
//
// Never the new header over the old tables (the new image reading the old
// one's data: stage data), nor a header with the magic and another
// geometry than the old or the new one, nor a half-written one (stage
// creation).

// CreateJudgeName is the name of the creation judge (a failure's Judge).
const CreateJudgeName = "create"

// StageCreation is the stage of a crash during creation that left a file
// under the image's name that is not the requested image.
const StageCreation oracle.Stage = "creation"

// DefaultCreateShare is the share of workloads whose creation is judged
// (cmd/qedtorture's --create-crashes).
const DefaultCreateShare = 0.25

// createChosen reports whether the workload of seed records its creation
// when a share of the workloads does.
func createChosen(seed uint64, share float64) bool {
	if share <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte("create"))
	return rand.New(rand.NewPCG(seed, h.Sum64())).Float64() < share
}

// CreateOverChosen reports whether the creation of the workload of seed
// (when chosen by the creation share) is over an existing image: half of
// them.
func CreateOverChosen(seed uint64) bool {
	h := fnv.New64a()
	h.Write([]byte("create-over"))
	return rand.New(rand.NewPCG(seed, h.Sum64())).IntN(2) == 0
}

// OverImage is the old image a creation over an existing image replaces
// (RecordOptions.CreateOver): a QED image without a backing file whose
// first DataLen guest bytes hold model.Fill's pattern of FillID, durable.
type OverImage struct {
	ClusterSize, TableSize uint32
	Size                   int64
	DataLen                int64

	model *model.Disk // built once by OverImageFor (judging clones it)
}

// OverFillID is the pattern of the old image's data (model.Fill), above
// any workload write's id (at most a few per op, at most 1,000 ops) and
// backing fill's, so that the old data never reads as one of theirs; and
// small, because a model keeps a slot per id up to the highest and is
// cloned for every crash state judged.
const OverFillID = 4093

// OverImageFor returns the old image replaced by a creation of geometry g:
// the same cluster and table sizes (so that the new header's L1 table is
// where the old one is, and a new header over the old tables reads the old
// data), another size (so that the two headers differ), small (4 KiB, its
// model cheap to clone for every crash state that keeps it), all of it
// data at guest offset 0 (one data cluster allocated).
func OverImageFor(g workload.Geometry) OverImage {
	size := int64(4096)
	if g.Size == size {
		size = 8192
	}
	o := OverImage{ClusterSize: g.ClusterSize, TableSize: g.TableSize, Size: size, DataLen: min(int64(g.ClusterSize), size)}
	o.model, _ = o.newModel() // nil on error: Model builds it (and says why)
	return o
}

// Data returns the old image's data (at guest offset 0).
func (o OverImage) Data() []byte {
	b := make([]byte, o.DataLen)
	model.Fill(b, OverFillID, 0)
	return b
}

// Model returns the old image's model: its data durable (a clone of the
// one OverImageFor built: writing a cluster's pattern into a model costs
// more than judging a small image, and every crash state with the old
// image needs one).
func (o OverImage) Model() (*model.Disk, error) {
	if o.model != nil {
		return o.model.Clone(), nil
	}
	return o.newModel()
}

func (o OverImage) newModel() (*model.Disk, error) {
	m, err := model.New(o.Size, nil)
	if err != nil {
		return nil, err
	}
	if err := m.WriteID(0, o.DataLen, OverFillID); err != nil {
		return nil, err
	}
	m.Flush()
	return m, nil
}

// Make creates the old image at p with t, writes its data, closes it and
// syncs p's directory: afterwards it is durable, name included.
func (o OverImage) Make(t target.Target, fs afero.Fs, p string) error {
	if err := t.Create(fs, p, target.CreateOptions{Size: o.Size, ClusterSize: o.ClusterSize, TableSize: o.TableSize}); err != nil {
		return fmt.Errorf("the old image to create over: %w", err)
	}
	d, err := t.Open(fs, p, target.OpenOptions{})
	if err != nil {
		return fmt.Errorf("the old image to create over: %w", err)
	}
	if _, err := d.WriteAt(o.Data(), 0); err != nil {
		d.Close()
		return fmt.Errorf("the old image to create over: %w", err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("the old image to create over: %w", err)
	}
	dir, err := fs.Open(path.Dir(p))
	if err != nil {
		return fmt.Errorf("the old image to create over: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("the old image to create over: sync %s: %w", path.Dir(p), err)
	}
	return nil
}

// createJudge is the creation judge (see above).
type createJudge struct {
	t      target.Target
	oracle oracle.Options
	absent *atomic.Int64 // states with the image absent (may be nil)
	old    *atomic.Int64 // states with the old image (may be nil)
}

func (j *createJudge) Name() string { return CreateJudgeName }

func (j *createJudge) Budget() int { return -1 }

func (j *createJudge) Judge(_ context.Context, st *State) (*oracle.Verdict, error) {
	if _, err := st.FS.Stat(st.Image); errors.Is(err, fs.ErrNotExist) {
		if j.absent != nil {
			j.absent.Add(1)
		}
		return &oracle.Verdict{}, nil
	}
	var over *OverImage
	if st.Rec != nil {
		over = st.Rec.Over
	}
	if over != nil {
		b := make([]byte, 4)
		f, err := st.FS.Open(st.Image)
		if err != nil {
			return nil, err
		}
		n, _ := io.ReadFull(f, b)
		f.Close()
		if n < 4 || binary.LittleEndian.Uint32(b) != qedMagic {
			// No magic: no implementation opens it (see above).
			if j.absent != nil {
				j.absent.Add(1)
			}
			return &oracle.Verdict{}, nil
		}
		if j.isOver(st, over) {
			if j.old != nil {
				j.old.Add(1)
			}
			m, err := over.Model()
			if err != nil {
				return nil, err
			}
			return oracle.Judge(j.t, st.FS, st.Image, m, j.oracle), nil
		}
	}
	if err := j.geometry(st); err != nil {
		return &oracle.Verdict{Stage: StageCreation, Err: err}, nil
	}
	return oracle.Judge(j.t, st.FS, st.Image, st.Model, j.oracle), nil
}

// isOver reports whether the image in st has the old image's header
// fields (its geometry, no backing file): it is judged as the old image.
func (j *createJudge) isOver(st *State, over *OverImage) bool {
	f, err := st.FS.Open(st.Image)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [64]byte
	if n, _ := io.ReadFull(f, h[:]); n < len(h) {
		return false
	}
	le := binary.LittleEndian
	return le.Uint32(h[4:]) == over.ClusterSize && le.Uint32(h[8:]) == over.TableSize &&
		le.Uint64(h[48:]) == uint64(over.Size) && le.Uint64(h[16:])&check.FeatureBacking == 0
}

// geometry checks that the image in st is a QED image with the geometry
// its workload asked for.
func (j *createJudge) geometry(st *State) error {
	rep, size, name, err := createdImage(st.FS, st.Image)
	if err != nil {
		return fmt.Errorf("reading the image after a crash during its creation: %w", err)
	}
	for _, k := range []check.ViolationKind{check.ViolBadMagic, check.ViolBadClusterSize, check.ViolBadTableSize, check.ViolBadHeaderSize, check.ViolShortFile} {
		if rep.Has(k) {
			return fmt.Errorf("a crash during the creation left a file of %d bytes under the image's name that is not an image (%s)", size, kindsText(rep))
		}
	}
	h := rep.Header
	g := st.Rec.W.Geometry
	var diffs []string
	if h.ClusterSize != g.ClusterSize {
		diffs = append(diffs, fmt.Sprintf("cluster_size %d, want %d", h.ClusterSize, g.ClusterSize))
	}
	if h.TableSize != g.TableSize {
		diffs = append(diffs, fmt.Sprintf("table_size %d, want %d", h.TableSize, g.TableSize))
	}
	if h.ImageSize != uint64(g.Size) {
		diffs = append(diffs, fmt.Sprintf("image_size %d, want %d", h.ImageSize, g.Size))
	}
	wantBacking, wantNoProbe := "", false
	if len(g.Backing) > 0 {
		wantBacking, wantNoProbe = workload.BackingName(0, g.Backing[0].Format), g.Backing[0].Format == "raw"
	}
	backing := ""
	if h.Features&check.FeatureBacking != 0 {
		backing = name
	}
	// A crafted image (workload.Craft) may be left as created or as
	// crafted: the craft's name and a probed raw backing file are its own.
	if crafted := workload.CraftedBackingName(g); crafted != "" && backing == crafted {
		wantBacking = crafted
	}
	if backing != wantBacking {
		diffs = append(diffs, fmt.Sprintf("backing file %q, want %q", backing, wantBacking))
	}
	if noProbe := h.Features&check.FeatureNoProbe != 0; backing != "" && noProbe != wantNoProbe && !g.Craft.Probe {
		diffs = append(diffs, fmt.Sprintf("NO_PROBE %v, want %v", noProbe, wantNoProbe))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("a crash during the creation left an image of another geometry than requested: %v", diffs)
	}
	return nil
}

// createdImage returns the independent checker's report of the file at
// path, its size, and the backing file name its header points at ("" when
// the name does not lie wholly in the file; read whatever the features
// say). It checks the open file (check.File: holes skipped, perf: a
// crash state of a creation of 64 MiB tables read and scanned hundreds of
// megabytes of zeros) and reads the name's bytes only; when that fails it
// reads the whole file and checks the bytes, as it always did (the
// checker's report is the same either way).
func createdImage(fsys afero.Fs, path string) (*check.Report, int64, string, error) {
	if f, err := fsys.Open(path); err == nil {
		defer f.Close()
		fi, serr := f.Stat()
		rep, cerr := check.File(f)
		if serr == nil && cerr == nil {
			if name, ok := backingNameIn(f, rep.Header, fi.Size()); ok {
				return rep, fi.Size(), name, nil
			}
		}
	}
	b, err := afero.ReadFile(fsys, path)
	if err != nil {
		return nil, 0, "", err
	}
	rep := check.Structure(b)
	name, _ := backingNameIn(bytes.NewReader(b), rep.Header, int64(len(b)))
	return rep, int64(len(b)), name, nil
}

// backingNameIn reads the backing file name h points at from r, a file
// of size bytes: "" when the name does not lie wholly in the file; false
// when reading it failed.
func backingNameIn(r io.ReaderAt, h check.Header, size int64) (string, bool) {
	end := uint64(h.BackingNameOffset) + uint64(h.BackingNameSize)
	if end > uint64(size) || h.BackingNameSize == 0 {
		return "", true
	}
	name := make([]byte, h.BackingNameSize)
	if n, err := r.ReadAt(name, int64(h.BackingNameOffset)); n != len(name) || err != nil && !errors.Is(err, io.EOF) {
		return "", false
	}
	return string(name), true
}

// qedMagic is the header's magic, "QED\0" little-endian.
const qedMagic = 0x00444551
