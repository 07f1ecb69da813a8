package campaign

import (
	"fmt"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
)

// targetByName is the tests' Resolver: impl/qed's adapter and its broken
// and seeded-defect wrappers by their Name (cmd/qedtorture/targets.go maps
// the command line's names; the engine itself knows none).
func targetByName(name string) (target.Target, error) {
	all := append([]target.Target{qedtarget.Target{}}, qedtarget.Broken()...)
	for _, t := range append(all, qedtarget.Defects()...) {
		if t.Name() == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("unknown target %q", name)
}
