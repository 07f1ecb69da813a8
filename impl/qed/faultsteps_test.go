package qed

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/spf13/afero"
)

// The error returns of three steps a campaign's fault sweeps reach only
// at random (docs/campaigns.md, "Statement coverage": a commit's growth of
// its base and its emptying, a resize's hiding of a backing file's tail,
// the repair on open): each operation of the step failed with EIO in
// turn (faultfs.Sweep), each on a fresh copy of the same image. Whatever
// operation fails, the step returns its error or completes, never panics,
// and the image opened afterwards without faults (repairing what the
// failed step left) is consistent and reads what the format promises
// across a crash at that point.

// sweepStep fails each operation of run in turn on a fresh filesystem
// from setup, requires the failure of anything but a stat or a close
// (a loop check's stat, a read-only file's close) to surface as the
// run's error, and calls check with that error and the filesystem
// (without the fault layer); it returns how many operations there were.
func sweepStep(t *testing.T, setup func(t *testing.T) afero.Fs, run func(afero.Fs) error, check func(t *testing.T, fs afero.Fs, runErr error)) uint64 {
	t.Helper()
	rule, err := faultfs.Parse("*:eio")
	mustNil(t, err)
	n, err := faultfs.Sweep(rule[0], 1, func() (afero.Fs, error) { return setup(t), nil }, run,
		func(n uint64, fs *faultfs.FS, runErr error) error {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				if in := fs.Log(); runErr == nil && len(in) == 1 && in[0].Op != faultfs.OpStat && in[0].Op != faultfs.OpClose {
					t.Errorf("the step returned no error after %v (a failed stat or close may be ignored, nothing else)", in[0])
				}
				check(t, fs.Base(), runErr)
			})
			return nil
		})
	mustNil(t, err)
	return n
}

// guestView opens path without faults (writable: a repair runs when
// NEED_CHECK is set), requires a check without repair to find no
// corruption, and returns its size and guest bytes.
func guestView(t *testing.T, fs afero.Fs, path string) []byte {
	t.Helper()
	im, err := Open(fs, path, OpenOptions{})
	mustNil(t, err)
	defer im.Close()
	rep, err := im.Check(false)
	mustNil(t, err)
	if rep.Corruptions != 0 {
		t.Fatalf("%s after the failed step: %d corruptions", path, rep.Corruptions)
	}
	b := make([]byte, im.Size())
	_, err = im.ReadAt(b, 0)
	mustNil(t, err)
	return b
}

// TestCommitFailuresKeepTheImage: a commit into a raw base shorter than
// the image (grown first), which then empties the image: whatever
// operation fails, the image reads as before the commit, and the base
// has its old size or the image's.
func TestCommitFailuresKeepTheImage(t *testing.T) {
	const img, base = "/c/img.qed", "/c/base.raw"
	setup := func(t *testing.T) afero.Fs {
		fs := afero.NewMemMapFs()
		mustNil(t, fs.MkdirAll("/c", 0o755))
		mustNil(t, afero.WriteFile(fs, base, fill(2*cs4k, 3), 0o644))
		im := mustCreate(t, fs, img, CreateOptions{Size: 6 * cs4k, ClusterSize: cs4k, TableSize: 1, BackingFile: "base.raw", BackingFormat: "raw"}, OpenOptions{})
		_, err := im.WriteAt(fill(1024, 7), 512)
		mustNil(t, err)
		_, err = im.WriteAt(fill(2*cs4k, 8), 3*cs4k)
		mustNil(t, err)
		mustNil(t, im.Close())
		return fs
	}
	want := guestView(t, setup(t), img)
	n := sweepStep(t, setup, func(fs afero.Fs) error { return Commit(fs, img, CommitOptions{}) },
		func(t *testing.T, fs afero.Fs, runErr error) {
			if got := guestView(t, fs, img); !bytes.Equal(got, want) {
				t.Fatalf("the image reads differently after a commit that returned %v", runErr)
			}
			st, err := fs.Stat(base)
			mustNil(t, err)
			if st.Size() != 2*cs4k && st.Size() != 6*cs4k {
				t.Fatalf("base size %d, want %d or %d", st.Size(), 2*cs4k, 6*cs4k)
			}
		})
	if n < 20 {
		t.Fatalf("the commit made %d operations: the growth and the emptying not among them?", n)
	}
}

// TestResizeFailuresHideTheTail: a grow of an image whose last cluster is
// partial and allocated, over a backing file longer than the image (its
// bytes past the old size copied into that cluster), and the same with
// the backing file dropped first (rebase -u ""), so the tail is found
// dirty by reading it: whatever operation fails, the image has its old
// size and reads as before, or its new size with the grown range zeros.
func TestResizeFailuresHideTheTail(t *testing.T) {
	const img = "/r/img.qed"
	const old, grown = 3*cs4k + cs4k/2, 6 * cs4k
	for _, dropBacking := range []bool{false, true} {
		t.Run(fmt.Sprintf("backing-dropped=%v", dropBacking), func(t *testing.T) {
			setup := func(t *testing.T) afero.Fs {
				fs := afero.NewMemMapFs()
				mustNil(t, fs.MkdirAll("/r", 0o755))
				mustNil(t, afero.WriteFile(fs, "/r/base.raw", fill(5*cs4k, 5), 0o644))
				im := mustCreate(t, fs, img, CreateOptions{Size: old, ClusterSize: cs4k, TableSize: 1, BackingFile: "base.raw", BackingFormat: "raw"}, OpenOptions{})
				_, err := im.WriteAt(fill(512, 9), 3*cs4k)
				mustNil(t, err)
				mustNil(t, im.Close())
				if dropBacking {
					mustNil(t, SetBacking(fs, img, "", "", OpenOptions{}))
				}
				return fs
			}
			want := guestView(t, setup(t), img)
			sweepStep(t, setup, func(fs afero.Fs) error {
				im, err := Open(fs, img, OpenOptions{})
				if err != nil {
					return err
				}
				rerr := im.Resize(grown)
				if cerr := im.Close(); rerr == nil {
					rerr = cerr
				}
				return rerr
			}, func(t *testing.T, fs afero.Fs, runErr error) {
				got := guestView(t, fs, img)
				switch len(got) {
				case old:
					if !bytes.Equal(got, want) {
						t.Fatalf("old size, but the image reads differently (resize returned %v)", runErr)
					}
				case grown:
					if !bytes.Equal(got[:old], want) || !bytes.Equal(got[old:], make([]byte, grown-old)) {
						t.Fatalf("grown, but not the old contents then zeros (resize returned %v)", runErr)
					}
				default:
					t.Fatalf("size %d, want %d or %d (resize returned %v)", len(got), old, grown, runErr)
				}
			})
		})
	}
}

// TestRepairOnOpenFailures: an image with NEED_CHECK set over invalid
// table entries (an L2 entry past the end of the file, an unaligned and a
// past-the-end L1 entry), opened writable, which repairs it: whatever
// operation fails, an open that returns an error leaves NEED_CHECK set or
// the image consistent, and the next open repairs it to what a repair
// without faults leaves.
func TestRepairOnOpenFailures(t *testing.T) {
	const path = "/p/img.qed"
	const l2Span = 512 * cs4k
	setup := func(t *testing.T) afero.Fs {
		fs := afero.NewMemMapFs()
		mustNil(t, fs.MkdirAll("/p", 0o755))
		im := mustCreate(t, fs, path, CreateOptions{Size: 4 * l2Span, ClusterSize: cs4k, TableSize: 1}, OpenOptions{})
		_, err := im.WriteAt(fill(2*cs4k, 7), 0)
		mustNil(t, err)
		_, err = im.WriteAt(fill(cs4k, 8), l2Span)
		mustNil(t, err)
		mustNil(t, im.Close())
		pokeL2(t, fs, path, cs4k, 1<<30)
		h, err := ReadHeader(fs, path)
		mustNil(t, err)
		setHeaderField(t, fs, path, int64(h.L1TableOffset)+8, 8, l1Entry(t, fs, path, 1)+8)
		setHeaderField(t, fs, path, int64(h.L1TableOffset)+16, 8, 1<<40)
		setHeaderField(t, fs, path, offFeatures, 8, FeatureNeedCheck)
		return fs
	}
	want := guestView(t, setup(t), path)
	sweepStep(t, setup, func(fs afero.Fs) error {
		im, err := Open(fs, path, OpenOptions{})
		if err != nil {
			return err
		}
		return im.Close()
	}, func(t *testing.T, fs afero.Fs, runErr error) {
		if runErr != nil {
			h, err := ReadHeader(fs, path)
			mustNil(t, err)
			if h.Features&FeatureNeedCheck == 0 {
				ro, err := Open(fs, path, OpenOptions{ReadOnly: true})
				mustNil(t, err)
				rep, err := ro.Check(false)
				ro.Close()
				if err != nil || rep.Corruptions != 0 {
					t.Fatalf("the open failed (%v) with NEED_CHECK clear over an inconsistent image (%d corruptions, %v)", runErr, rep.Corruptions, err)
				}
			}
		}
		if got := guestView(t, fs, path); !bytes.Equal(got, want) {
			t.Fatalf("after a failed repair (%v) and a clean one, the image reads differently from a clean repair alone", runErr)
		}
	})
}
