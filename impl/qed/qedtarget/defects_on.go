//go:build qeddefects

package qedtarget

import (
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// Defects returns one target "defect:NAME" per seeded defect of impl/qed
// (qed.DefectCatalogue, in its order): impl/qed with that defect switched
// on (a process-wide switch, so one campaign runs one defect at a time).
// Defect targets run with a one-table L2 cache, as props' defect test
// does: the small images of a campaign never evict a table otherwise, and
// eviction is where the cache defects live.
func Defects() []target.Target {
	out := make([]target.Target, 0, len(qed.DefectCatalogue))
	for _, info := range qed.DefectCatalogue {
		out = append(out, defectTarget{name: "defect:" + info.Name, d: info.Defect})
	}
	return out
}

type defectTarget struct {
	name string
	d    qed.Defect
}

var _ target.ReadLimiter = defectTarget{}

func (t defectTarget) Name() string { return t.name }

func (t defectTarget) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	qed.SetDefect(t.d)
	return Target{}.Create(fs, path, o)
}

func (t defectTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	qed.SetDefect(t.d)
	return Target{Options: qed.OpenOptions{L2CacheTables: 1}}.Open(fs, path, o)
}

// FullReadLimit implements target.ReadLimiter: the defect's full-read
// limit (qed.DefectReadLimit; 0 = the oracle's default).
func (t defectTarget) FullReadLimit() int64 { return qed.DefectReadLimit(t.d) }

var _ target.ImageOps = defectTarget{}

// Rebase implements target.ImageOps with the defect switched on.
func (t defectTarget) Rebase(fs afero.Fs, path, backing, format string, unsafe bool) error {
	qed.SetDefect(t.d)
	return Target{Options: qed.OpenOptions{L2CacheTables: 1}}.Rebase(fs, path, backing, format, unsafe)
}

// Commit implements target.ImageOps with the defect switched on.
func (t defectTarget) Commit(fs afero.Fs, path string, o target.CommitOptions) error {
	qed.SetDefect(t.d)
	return Target{Options: qed.OpenOptions{L2CacheTables: 1}}.Commit(fs, path, o)
}
