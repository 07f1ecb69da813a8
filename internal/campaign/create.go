package campaign

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"sync/atomic"

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

// createJudge is the creation judge (see above).
type createJudge struct {
	t      target.Target
	oracle oracle.Options
	absent *atomic.Int64 // states with the image absent (may be nil)
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
	if err := j.geometry(st); err != nil {
		return &oracle.Verdict{Stage: StageCreation, Err: err}, nil
	}
	return oracle.Judge(j.t, st.FS, st.Image, st.Model, j.oracle), nil
}

// geometry checks that the image in st is a QED image with the geometry
// its workload asked for.
func (j *createJudge) geometry(st *State) error {
	b, err := afero.ReadFile(st.FS, st.Image)
	if err != nil {
		return fmt.Errorf("reading the image after a crash during its creation: %w", err)
	}
	rep := check.Structure(b)
	for _, k := range []check.ViolationKind{check.ViolBadMagic, check.ViolBadClusterSize, check.ViolBadTableSize, check.ViolBadHeaderSize, check.ViolShortFile} {
		if rep.Has(k) {
			return fmt.Errorf("a crash during the creation left a file of %d bytes under the image's name that is not an image (%s)", len(b), kindsText(rep))
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
		if end := uint64(h.BackingNameOffset) + uint64(h.BackingNameSize); end <= uint64(len(b)) {
			backing = string(b[h.BackingNameOffset:end])
		}
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
