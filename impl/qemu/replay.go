package qemu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// ReplayResult is what ReplayArtifact found.
type ReplayResult struct {
	Signature string
	State     string // crash state id ("" for run and diff failures)
	// Rebuilt: the crash state was rebuilt from the artifact's snapshot and
	// log and equals crashed.qed bit for bit.
	Rebuilt bool
	// Raw is the structural checker's report on the rebuilt state.
	Raw *check.Report
	// Reproduced: running the artifact's workload through QEMU again gave
	// a failure with the same signature; Message is its explanation.
	Reproduced bool
	Message    string
}

// ErrArtifact reports an artifact directory this package cannot read.
var ErrArtifact = errors.New("qemu: bad artifact")

// ReplayArtifact re-checks an artifact written by Run: it rebuilds the
// crash state from snapshot/ and the log by its state id (deterministic,
// no QEMU involved) and compares it with crashed.qed, then runs the
// workload through QEMU again and checks that the same failure signature
// comes back (QEMU's I/O timing may move it to another crash state).
func ReplayArtifact(cfg Config, dir string) (*ReplayResult, error) {
	if atomicfile.IsTemp(filepath.Clean(dir)) {
		return nil, fmt.Errorf("%w: %s is the temporary of an artifact that was never completed; it cannot be replayed", ErrArtifact, dir)
	}
	expl, err := os.ReadFile(filepath.Join(dir, "explanation.txt"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArtifact, err)
	}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(expl))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok && !strings.Contains(k, " ") || k == "crash state" || k == "campaign seed" {
			if _, seen := fields[k]; !seen {
				fields[k] = v
			}
		}
	}
	wf, err := os.Open(filepath.Join(dir, "workload.txt"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArtifact, err)
	}
	w, err := workload.Parse(wf)
	wf.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: workload.txt: %v", ErrArtifact, err)
	}
	end, err := ParseEnd(fields["end"])
	if err != nil {
		return nil, fmt.Errorf("%w: end: %v", ErrArtifact, err)
	}
	res := &ReplayResult{Signature: fields["signature"]}
	if res.Signature == "" {
		return nil, fmt.Errorf("%w: explanation.txt names no signature", ErrArtifact)
	}
	f := &finding{sig: res.Signature, side: fields["side"], stage: fields["stage"], end: end, w: w}
	if ws := fields["workload"]; ws != "" {
		if _, s, ok := strings.Cut(ws, "(seed "); ok {
			f.wseed, _ = strconv.ParseUint(strings.TrimSuffix(s, ")"), 10, 64)
		}
	}
	switch {
	case f.side == "diff":
		f.diff = &Difference{}
	case f.stage == "run":
		f.runErr = errors.New("run failure")
	default:
		idText, _, _ := strings.Cut(fields["crash state"], " ")
		id, err := crashsim.ParseStateID(idText)
		if err != nil {
			return nil, fmt.Errorf("%w: crash state: %v", ErrArtifact, err)
		}
		res.State = id.String()
		f.state = &StateFailure{ID: id, Side: Side(f.side), Stage: f.stage}
		img, err := rebuildState(dir, id)
		if err != nil {
			return nil, err
		}
		want, err := os.ReadFile(filepath.Join(dir, "crashed.qed"))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrArtifact, err)
		}
		res.Rebuilt = bytes.Equal(img, want)
		res.Raw = check.Structure(img)
	}
	tmp, remove, err := tempDir("qedtorture-qemu-replay-")
	if err != nil {
		return nil, err
	}
	defer remove()
	if g := reproduce(cfg, f, w, tmp); g != nil {
		res.Reproduced, res.Message = true, g.msg
	}
	return res, nil
}

// rebuildState replays the artifact's log on its snapshot to crash state id.
func rebuildState(dir string, id crashsim.StateID) ([]byte, error) {
	files := map[string][]byte{}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshot", "*"))
	for _, p := range snaps {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files["/"+filepath.Base(p)] = b
	}
	if _, ok := files[imageInTree]; !ok {
		return nil, fmt.Errorf("%w: snapshot/%s missing", ErrArtifact, workload.ImageName)
	}
	logBytes, err := os.ReadFile(filepath.Join(dir, LogName))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArtifact, err)
	}
	trace := &crashsim.Trace{}
	if len(logBytes) > 0 {
		if trace, err = crashsim.ReadDMLog(bytes.NewReader(logBytes), int64(len(logBytes)), imageInTree); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrArtifact, err)
		}
	}
	base, err := crashsim.NewImage(files)
	if err != nil {
		return nil, err
	}
	fs, err := base.Replay(trace, id.K, crashsim.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArtifact, err)
	}
	pt, err := fs.Point()
	if err != nil {
		return nil, err
	}
	st, err := pt.State(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArtifact, err)
	}
	return afero.ReadFile(st, imageInTree)
}
