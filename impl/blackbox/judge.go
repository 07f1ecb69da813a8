package blackbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// DefaultJudgeBudget is how many distinct crash states of a workload the
// program's own recovery judges (a process start and the whole image read
// through `read -v` each).
const DefaultJudgeBudget = 8

// programJudge is the program as an extra recovery judge, as QEMU is for
// --target qemu: the crashed files are copied to a real directory, and the
// oracle (props/oracle.Judge: structure before, recovery, every guest byte
// against the model, structure after, liveness) runs with the program as
// the implementation: its writable open of the crashed image is the
// recovery, its reads (`read -v`) what the guest sees, its writes the
// liveness check. No strace: nothing of the judge's run is recorded.
type programJudge struct {
	d      *Driver
	budget int
}

func (j *programJudge) Name() string { return "exec" }
func (j *programJudge) Budget() int  { return j.budget }

func (j *programJudge) Judge(ctx context.Context, st *campaign.State) (*oracle.Verdict, error) {
	r, remove, err := stateRun(j.d, st, "exec judge")
	if err != nil {
		return nil, err
	}
	defer remove()
	fs := afero.NewBasePathFs(afero.NewOsFs(), r.dir)
	t := &judgeTarget{r: r, ctx: ctx}
	v := oracle.Judge(t, fs, "/"+path.Base(st.Image), st.Model, oracle.Options{})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return v, nil
}

// stateRun returns a run whose directory holds the files of st's crash
// state (the image's directory), and the function that removes it.
func stateRun(d *Driver, st *campaign.State, what string) (*run, func(), error) {
	top, err := os.MkdirTemp("", "qedtorture-exec-state-")
	if err != nil {
		return nil, nil, err
	}
	remove := func() { os.RemoveAll(top) }
	r := &run{d: d, dir: filepath.Join(top, "w"), scratch: filepath.Join(top, "s")}
	for _, p := range []string{r.dir, r.scratch} {
		if err := os.Mkdir(p, 0o755); err != nil {
			remove()
			return nil, nil, err
		}
	}
	fs := st.FS
	if fs == nil { // a state of a recovery's trace (nested judge)
		if fs, err = st.Point.State(st.ID); err != nil {
			remove()
			return nil, nil, fmt.Errorf("%s: crash state %s: %w", what, st.ID, err)
		}
	}
	dir := path.Dir(st.Image)
	ents, err := afero.ReadDir(fs, dir)
	if err != nil {
		remove()
		return nil, nil, fmt.Errorf("%s: crash state: %w", what, err)
	}
	for _, e := range ents {
		if !e.Mode().IsRegular() {
			continue
		}
		b, err := afero.ReadFile(fs, path.Join(dir, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(r.dir, e.Name()), b, 0o644)
		}
		if err != nil {
			remove()
			return nil, nil, fmt.Errorf("%s: crash state: %w", what, err)
		}
	}
	return r, remove, nil
}

// judgeTarget opens an image by starting the program on it (no strace).
type judgeTarget struct {
	r   *run
	ctx context.Context
}

func (t *judgeTarget) Name() string { return t.r.d.Name() }

func (t *judgeTarget) Create(afero.Fs, string, target.CreateOptions) error {
	return errors.New("exec judge: creates nothing")
}

func (t *judgeTarget) Open(_ afero.Fs, p string, _ target.OpenOptions) (target.Disk, error) {
	img := filepath.Join(t.r.dir, filepath.FromSlash(path.Base(p)))
	argv := append(append([]string(nil), t.r.d.argv...), img)
	proc, err := qemuio.StartCommand(t.ctx, argv, t.r.dir)
	if err != nil {
		return nil, fmt.Errorf("%s did not open the crashed image: %w", t.r.d.command, err)
	}
	d := &disk{r: t.r, proc: proc, path: img}
	if d.size, err = imageSize(img); err != nil {
		proc.Kill()
		return nil, err
	}
	return d, nil
}
