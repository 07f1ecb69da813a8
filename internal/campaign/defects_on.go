//go:build qeddefects

package campaign

import (
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props"
	"github.com/spf13/afero"
)

// In builds with the qeddefects tag, every seeded defect of impl/qed is a
// target "defect:NAME": impl/qed with that defect switched on (a process-
// wide switch, so one campaign runs one defect at a time). Defect targets
// run with a one-table L2 cache, as props' defect test does: the small
// images of a campaign never evict a table otherwise, and eviction is where
// the cache defects live.
func init() {
	for _, info := range qed.DefectCatalogue {
		d, name := info.Defect, "defect:"+info.Name
		targets[name] = func() props.Target { return defectTarget{name: name, d: d} }
	}
}

type defectTarget struct {
	name string
	d    qed.Defect
}

func (t defectTarget) Name() string { return t.name }

func (t defectTarget) Create(fs afero.Fs, path string, o props.CreateOptions) error {
	qed.SetDefect(t.d)
	return props.QEDTarget{}.Create(fs, path, o)
}

func (t defectTarget) Open(fs afero.Fs, path string, o props.OpenOptions) (props.Disk, error) {
	qed.SetDefect(t.d)
	return props.QEDTarget{Options: qed.OpenOptions{L2CacheTables: 1}}.Open(fs, path, o)
}

// TuneOracle applies the defect's full-read limit (qed.DefectReadLimit).
func (t defectTarget) TuneOracle(o props.OracleOptions) props.OracleOptions {
	if l := qed.DefectReadLimit(t.d); l > 0 {
		o.FullReadLimit = l
	}
	return o
}
