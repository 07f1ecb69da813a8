package qedtarget

import (
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// Broken returns the deliberately broken targets: impl/qed behind a
// wrapper that breaks one durability promise. They show (and test) that a
// campaign catches the bug, minimizes it and writes a replayable artifact.
// Each one's Name is its --target name.
func Broken() []target.Target {
	return []target.Target{
		// Every file sync is acknowledged and dropped.
		noSyncTarget{Target{}},
		// A guest flush returns success without flushing anything.
		noFlushTarget{Target{}},
	}
}

type noSyncTarget struct{ inner target.Target }

func (noSyncTarget) Name() string { return "broken:nosync" }

func lostSyncs(fs afero.Fs) afero.Fs {
	ffs, err := faultfs.NewFromString(fs, 0, "sync:lost")
	if err != nil {
		panic(err) // a constant rule
	}
	return ffs
}

func (t noSyncTarget) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	return t.inner.Create(lostSyncs(fs), path, o)
}

func (t noSyncTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	return t.inner.Open(lostSyncs(fs), path, o)
}

type noFlushTarget struct{ inner target.Target }

func (noFlushTarget) Name() string { return "broken:noflush" }

func (t noFlushTarget) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	return t.inner.Create(fs, path, o)
}

func (t noFlushTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.inner.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return noFlushDisk{d}, nil
}

type noFlushDisk struct{ target.Disk }

func (noFlushDisk) Flush() error { return nil }

// The image commands (target.ImageOps) run as impl/qed's, through the
// same broken filesystem (nosync) or unchanged (noflush: only the guest's
// flush is broken).
var (
	_ target.ImageOps = noSyncTarget{}
	_ target.ImageOps = noFlushTarget{}
)

func (t noSyncTarget) Rebase(fs afero.Fs, path, backing, format string, unsafe bool) error {
	return Target{}.Rebase(lostSyncs(fs), path, backing, format, unsafe)
}

func (t noSyncTarget) Commit(fs afero.Fs, path string, o target.CommitOptions) error {
	return Target{}.Commit(lostSyncs(fs), path, o)
}

func (t noFlushTarget) Rebase(fs afero.Fs, path, backing, format string, unsafe bool) error {
	return Target{}.Rebase(fs, path, backing, format, unsafe)
}

func (t noFlushTarget) Commit(fs afero.Fs, path string, o target.CommitOptions) error {
	return Target{}.Commit(fs, path, o)
}
