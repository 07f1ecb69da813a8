package campaign

import (
	"fmt"
	"slices"
	"strings"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/props"
	"github.com/spf13/afero"
)

// Deliberately broken targets: impl/qed behind a wrapper that breaks one
// durability promise. They show (and test) that a campaign catches the
// bug, minimizes it and writes a replayable artifact.
var targets = map[string]func() props.Target{
	"impl/qed": func() props.Target { return props.QEDTarget{} },
	// Every file sync is acknowledged and dropped.
	"broken:nosync": func() props.Target { return noSyncTarget{props.QEDTarget{}} },
	// A guest flush returns success without flushing anything.
	"broken:noflush": func() props.Target { return noFlushTarget{props.QEDTarget{}} },
}

// TargetNames lists the names TargetByName accepts.
func TargetNames() []string {
	var out []string
	for n := range targets {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// TargetByName returns the target named name (see TargetNames).
func TargetByName(name string) (props.Target, error) {
	mk, ok := targets[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown target %q (want one of %s)", ErrConfig, name, strings.Join(TargetNames(), ", "))
	}
	return mk(), nil
}

// oracleTuner is a target that is meant to be judged with its own oracle
// options (a seeded defect that stands for a lost mapping on an image
// above the full-read limit). A campaign applies them, and its artifacts
// record them for replay.
type oracleTuner interface {
	TuneOracle(props.OracleOptions) props.OracleOptions
}

type noSyncTarget struct{ inner props.Target }

func (noSyncTarget) Name() string { return "broken:nosync" }

func lostSyncs(fs afero.Fs) afero.Fs {
	ffs, err := faultfs.NewFromString(fs, 0, "sync:lost")
	if err != nil {
		panic(err) // a constant rule
	}
	return ffs
}

func (t noSyncTarget) Create(fs afero.Fs, path string, o props.CreateOptions) error {
	return t.inner.Create(lostSyncs(fs), path, o)
}

func (t noSyncTarget) Open(fs afero.Fs, path string, o props.OpenOptions) (props.Disk, error) {
	return t.inner.Open(lostSyncs(fs), path, o)
}

type noFlushTarget struct{ inner props.Target }

func (noFlushTarget) Name() string { return "broken:noflush" }

func (t noFlushTarget) Create(fs afero.Fs, path string, o props.CreateOptions) error {
	return t.inner.Create(fs, path, o)
}

func (t noFlushTarget) Open(fs afero.Fs, path string, o props.OpenOptions) (props.Disk, error) {
	d, err := t.inner.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return noFlushDisk{d}, nil
}

type noFlushDisk struct{ props.Disk }

func (noFlushDisk) Flush() error { return nil }
