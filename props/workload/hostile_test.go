package workload_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// hostileVariants is the number of "hostile V S" variants: every planted
// corruption, then the open and creation variants.
const hostileVariants = 16 + 12 + 6 + 7 + 9 + 4

// The variants that must succeed (hostileAccepted): the rename, then
// the absolute backing name, the paged tables without SEEK_DATA and the
// commit through a longer middle image.
const (
	hostileRename   = hostileVariants - 4
	hostileAbsolute = hostileVariants - 3
	hostilePaged    = hostileVariants - 2
	hostileCommitB  = hostileVariants - 1
)

func hostileScript(v, s int) string {
	return fmt.Sprintf("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0 0x1000 id=1\nhostile %d %d\nread 0 0x1000\n", v, s)
}

// TestHostileOp: impl/qed refuses, detects and repairs every hostile
// image of the op, with NEED_CHECK set and clear (odd and even seeds),
// and the workload around it is untouched.
func TestHostileOp(t *testing.T) {
	require.Len(t, check.Corruptions(), 16, "hostileVariants counts the corruptions")
	for v := range hostileVariants {
		for _, s := range []int{1, 2, 77, 1<<32 - 1} {
			require.NoError(t, runScript(t, qedtarget.Target{}, hostileScript(v, s)), "hostile %d %d", v, s)
		}
	}
	_, err := workload.Parse(strings.NewReader(hostileScript(hostileVariants, 1)))
	require.ErrorContains(t, err, "hostile variant")
}

// gullible accepts what impl/qed refuses: Create and Open never fail
// (an open that impl/qed refuses yields a disk over a fresh image), its
// image commands accept anything and do nothing, and its check finds
// nothing.
type gullible struct{ qedtarget.Target }

type gullibleDisk struct{ target.Disk }

func (gullibleDisk) RefusesHostile() {}

func (gullibleDisk) Check(bool) (target.CheckResult, error) { return target.CheckResult{}, nil }

func (gullible) Rebase(afero.Fs, string, string, string, bool) error { return nil }

func (gullible) Commit(afero.Fs, string, target.CommitOptions) error { return nil }

func (g gullible) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	if err := g.Target.Create(fs, path, o); err != nil {
		return g.Target.Create(fs, path, target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1})
	}
	return nil
}

func (g gullible) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := g.Target.Open(fs, path, o)
	if err != nil {
		if err := g.Target.Create(fs, "/gullible.qed", target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1}); err != nil {
			return nil, err
		}
		d, err = g.Target.Open(fs, "/gullible.qed", o)
	}
	if err != nil {
		return nil, err
	}
	return gullibleDisk{d}, nil
}

// TestHostileOpJudges: a target that accepts hostile images and finds no
// damage fails every variant, each with its own complaint.
func TestHostileOpJudges(t *testing.T) {
	for v := range hostileVariants {
		if v == hostileAbsolute || v == hostilePaged {
			// Valid images only read back: gullible passes them
			// (impl/qed mutants fail them: docs of hostileAccepted).
			require.NoError(t, runScript(t, gullible{}, hostileScript(v, 3)), "variant %d", v)
			continue
		}
		err := runScript(t, gullible{}, hostileScript(v, 3))
		require.Error(t, err, "variant %d", v)
		msg := err.Error()
		switch {
		case v == hostileRename:
			require.Contains(t, msg, "the header does not name it", "variant %d", v)
		case v == hostileCommitB:
			require.Contains(t, msg, "does not read what the image read", "variant %d", v)
		case v >= 16:
			require.Contains(t, msg, "was not refused", "variant %d", v)
		case v == int(check.CorruptLeak):
			require.Contains(t, msg, "found no leak", "variant %d", v)
		default:
			require.Regexp(t, "was not refused|found nothing", msg, "variant %d", v)
		}
	}
	// Without the capability the op does nothing.
	require.NoError(t, runScript(t, plainTarget{qedtarget.Target{}}, hostileScript(0, 1)))
}

// plainTarget hides the Disk's capabilities.
type plainTarget struct{ qedtarget.Target }

type plainDisk struct{ target.Disk }

func (p plainTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := p.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return plainDisk{d}, nil
}

// scribbler refuses every image command, but only after appending a byte
// to the image.
type scribbler struct{ qedtarget.Target }

func (scribbler) scribble(fs afero.Fs, path string) error {
	f, err := fs.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write([]byte{1})
	if err == nil {
		err = errors.New("refused, after writing")
	}
	return err
}

func (s scribbler) Rebase(fs afero.Fs, path, _, _ string, _ bool) error { return s.scribble(fs, path) }

func (s scribbler) Commit(fs afero.Fs, path string, _ target.CommitOptions) error {
	return s.scribble(fs, path)
}

// TestHostileCommandsUnchanged: a refused image command must leave the
// image's bytes as they were.
func TestHostileCommandsUnchanged(t *testing.T) {
	for v := 34; v < hostileVariants; v++ {
		if v == 41 || v == 42 || (v >= 47 && v <= 49) || v >= hostileRename {
			continue // hostileLate's open variants, hostileAccepted's
		}
		err := runScript(t, scribbler{}, hostileScript(v, 1))
		require.ErrorContains(t, err, "was refused but changed the image", "variant %d", v)
	}
}
