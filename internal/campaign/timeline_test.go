package campaign

import (
	"bytes"
	"context"
	"path"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestTimeline: an artifact's timeline has every operation of its trace
// once, in order, in epochs each ended by a sync or directory sync (the
// last by the trace's end), with the guest op that issued it; for the
// crash state, what the crash did to each: not issued from the crash
// point on, durable before its last sync, kept, lost or torn when
// unsynced; writes to the image labelled by the layout of the image at
// the end of the run (a header write by the fields it changes), others
// as a backing file's. Without a crash state, no status.
func TestTimeline(t *testing.T) {
	seed := testSeed(t)
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels[:2],
		Bound: 8, Samples: 2, Target: TargetOrDie(t, "broken:noflush"), Out: t.TempDir(), MinimizeCandidates: 20})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures)
	a, err := LoadArtifact(rep.Failures[0].Artifact)
	require.NoError(t, err)
	tl, err := a.Timeline("")
	require.NoError(t, err)
	id, err := crashsim.ParseStateID(a.Meta.State)
	require.NoError(t, err)
	require.True(t, tl.HasState)
	require.Equal(t, id, tl.State)
	require.Equal(t, a.GuestOpAt(id.K), tl.GuestOp)
	p, err := a.Run.Point(id.K)
	require.NoError(t, err)
	require.Equal(t, len(p.Unsynced()), tl.Unsynced)
	unsynced := map[int64]bool{}
	for _, o := range p.Unsynced() {
		unsynced[o.Index] = true
	}
	st, err := p.State(id)
	require.NoError(t, err)
	crashed, err := afero.ReadFile(st, a.Image)
	require.NoError(t, err)
	require.Equal(t, crashed, tl.Crashed)
	end, err := a.Run.Start.Replay(a.Run.Trace, int64(len(a.Run.Trace.Ops)), a.Run.Options)
	require.NoError(t, err)
	endImg, err := afero.ReadFile(end, a.Image)
	require.NoError(t, err)
	require.Equal(t, endImg, tl.End)
	lay := check.NewLayout(endImg)

	var i int64
	headers, created := 0, 0
	for ei, ep := range tl.Epochs {
		last := ei == len(tl.Epochs)-1
		for j, e := range ep.Entries {
			require.Equal(t, a.Run.Trace.Ops[i], e.Op)
			i++
			require.Equal(t, a.GuestOpAt(e.Op.Index), e.GuestOp)
			sync := e.Op.Kind == crashsim.OpSync || e.Op.Kind == crashsim.OpDirSync
			require.Equal(t, sync, j == len(ep.Entries)-1 && !last, "only a sync ends an epoch (op %d)", e.Op.Index)
			if sync {
				require.Equal(t, e.Op.Index, ep.Barrier)
			}
			switch {
			case e.Op.Index >= id.K:
				require.Equal(t, "not issued", e.Status)
			case unsynced[e.Op.Index]:
				require.Equal(t, keptLostTorn(st, e.Op), e.Status)
			default:
				require.Equal(t, "durable", e.Status)
			}
			switch {
			case e.Op.Kind != crashsim.OpWrite && e.Op.Kind != crashsim.OpDiscard:
				require.Empty(t, e.Label)
			case path.Clean(e.Op.Path) != path.Clean(a.Image):
				require.Equal(t, "backing file "+path.Base(e.Op.Path), e.Label)
			case e.Op.Kind == crashsim.OpWrite && e.Op.Off < headerFieldsSize && strings.HasPrefix(lay.Label(e.Op.Off, int64(len(e.Op.Data))), "header"):
				headers++
				if strings.HasPrefix(e.Label, "header, changes magic, ") {
					created++
				}
				require.True(t, strings.HasPrefix(e.Label, "header, changes ") || strings.HasPrefix(e.Label, "header, rewritten unchanged"), e.Label)
				if l := lay.Label(e.Op.Off, int64(len(e.Op.Data))); !strings.Contains(l, ") and ") {
					require.Equal(t, "header, "+headerChange(a.Run, a.Image, e.Op), e.Label, "a header write's label names no tables")
				}
			default:
				require.Equal(t, labelWrite(lay, e.Op), e.Label)
			}
		}
		if last {
			require.EqualValues(t, -1, ep.Barrier)
		}
	}
	require.EqualValues(t, len(a.Run.Trace.Ops), i, "every operation once")
	require.Positive(t, headers, "the image's creation writes its header")
	require.Positive(t, created, "the header written at the creation changes every field from nothing")

	// Without a crash state: no status.
	a.Meta.State = ""
	tl, err = a.Timeline("")
	require.NoError(t, err)
	require.False(t, tl.HasState)
	require.Nil(t, tl.Crashed)
	require.Equal(t, -2, tl.GuestOp)
	for _, ep := range tl.Epochs {
		for _, e := range ep.Entries {
			require.Empty(t, e.Status)
			require.Empty(t, e.Fate())
		}
	}
	_, err = a.Timeline("k=1/bogus/0")
	require.ErrorContains(t, err, `state "k=1/bogus/0"`)
	a.Run = nil
	_, err = a.Timeline("")
	require.ErrorIs(t, err, ErrArtifact)
}

// TestKeptLostTorn: an unsynced write is kept when every 512-byte sector
// of it is in the crashed file, lost when none is, torn otherwise (a
// sector past the file's end is not kept); one without data is unsynced.
func TestKeptLostTorn(t *testing.T) {
	fs := afero.NewMemMapFs()
	file := bytes.Repeat([]byte{1}, 1536)
	copy(file[512:], bytes.Repeat([]byte{2}, 512))
	require.NoError(t, afero.WriteFile(fs, "/f", file, 0o644))
	w := func(off int64, b ...byte) crashsim.Op {
		var d []byte
		for _, x := range b {
			d = append(d, bytes.Repeat([]byte{x}, 512)...)
		}
		return crashsim.Op{Kind: crashsim.OpWrite, Path: "/f", Off: off, Data: d}
	}
	require.Equal(t, "kept", keptLostTorn(fs, w(0, 1, 2)))
	require.Equal(t, "lost", keptLostTorn(fs, w(0, 3, 3)))
	require.Equal(t, "torn: 1 of 2 sectors kept", keptLostTorn(fs, w(512, 2, 3)))
	require.Equal(t, "torn: 1 of 2 sectors kept", keptLostTorn(fs, w(1024, 1, 1)), "the sector past the end")
	require.Equal(t, "torn: 2 of 3 sectors kept", keptLostTorn(fs, w(0, 1, 2, 9)))
	short := w(1024, 1)
	short.Data = short.Data[:100]
	require.Equal(t, "kept", keptLostTorn(fs, short), "a write shorter than a sector")
	short.Off = 1500
	require.Equal(t, "lost", keptLostTorn(fs, short), "a write past the end")
	require.Equal(t, "unsynced", keptLostTorn(fs, crashsim.Op{Kind: crashsim.OpTruncate, Path: "/f", Size: 10}))
	require.Equal(t, "unsynced", keptLostTorn(fs, crashsim.Op{Kind: crashsim.OpWrite, Path: "/f"}))
	absent := w(0, 1)
	absent.Path = "/g"
	require.Equal(t, "lost (file absent)", keptLostTorn(fs, absent))
}

// TestFate: the one-word fates of the statuses.
func TestFate(t *testing.T) {
	for status, fate := range map[string]string{"": "", "durable": "durable", "not issued": "not-issued", "kept": "kept",
		"lost": "lost", "lost (file absent)": "lost", "torn: 1 of 2 sectors kept": "torn", "unsynced": "unsynced"} {
		require.Equal(t, fate, TimelineEntry{Status: status}.Fate(), status)
	}
}

// TestGuestOpAt: the guest op of a trace index, from meta.json's marks:
// the setup before the first mark, the last mark at or before it, -2
// without marks.
func TestGuestOpAt(t *testing.T) {
	a := &Artifact{Meta: ArtifactMeta{Marks: [][2]int64{{-1, 4}, {0, 6}, {1, 9}}}}
	for k, op := range map[int64]int{0: -1, 3: -1, 4: -1, 5: -1, 6: 0, 8: 0, 9: 1, 100: 1} {
		require.Equal(t, op, a.GuestOpAt(k), "k=%d", k)
	}
	require.Equal(t, -2, (&Artifact{}).GuestOpAt(3))
}

// TestLabelWriteZeroFill: a write of zeros into a data cluster is a zero
// fill; a write of data, a discard or an empty write is not.
func TestLabelWriteZeroFill(t *testing.T) {
	mem := afero.NewMemMapFs()
	require.NoError(t, qed.Create(mem, "/i.qed", qed.CreateOptions{Size: 1 << 20, ClusterSize: 4096}))
	q, err := qed.Open(mem, "/i.qed", qed.OpenOptions{})
	require.NoError(t, err)
	_, err = q.WriteAt(bytes.Repeat([]byte{7}, 4096), 0)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	img, err := afero.ReadFile(mem, "/i.qed")
	require.NoError(t, err)
	lay := check.NewLayout(img)
	data := int64(-1)
	for off := int64(0); off < int64(len(img)) && data < 0; off += 4096 {
		if strings.HasPrefix(lay.Label(off, 512), "data") {
			data = off // the one data cluster
		}
	}
	require.GreaterOrEqual(t, data, int64(0))
	w := func(b []byte) crashsim.Op { return crashsim.Op{Kind: crashsim.OpWrite, Off: data, Data: b} }
	require.Equal(t, lay.Label(data, 512)+", zero fill", labelWrite(lay, w(make([]byte, 512))))
	require.Equal(t, lay.Label(data, 512), labelWrite(lay, w(bytes.Repeat([]byte{1}, 512))))
	require.Equal(t, lay.Label(data, 0), labelWrite(lay, w(nil)))
	require.Equal(t, lay.Label(data, 512), labelWrite(lay, crashsim.Op{Kind: crashsim.OpDiscard, Off: data, Size: 512}))
}

// TestTimelineWithoutSync: a trace without a sync is one epoch, ended by
// the trace's end.
func TestTimelineWithoutSync(t *testing.T) {
	tr := &crashsim.Trace{Ops: []crashsim.Op{{Index: 0, Kind: crashsim.OpMkdir, Path: Dir}, {Index: 1, Kind: crashsim.OpCreate, Path: ImagePath}}}
	a := &Artifact{Run: &crashsim.Run{Start: crashsim.EmptyImage(), Options: fsOptions, Trace: tr}, Image: ImagePath}
	tl, err := a.Timeline("")
	require.NoError(t, err)
	require.Len(t, tl.Epochs, 1)
	require.EqualValues(t, -1, tl.Epochs[0].Barrier)
	require.Len(t, tl.Epochs[0].Entries, 2)
}

// TestHeaderChangeIntoEmptyFile: a header written into a file shorter than
// the write (an implementation that writes its header first into the
// created, empty file) is compared against the file extended to the
// write's end: every field it sets is named, none is "rewritten
// unchanged".
func TestHeaderChangeIntoEmptyFile(t *testing.T) {
	fs := afero.NewMemMapFs()
	require.NoError(t, qed.Create(fs, "/img", qed.CreateOptions{Size: 1 << 20}))
	hdr, err := afero.ReadFile(fs, "/img")
	require.NoError(t, err)
	hdr = hdr[:64]
	write := crashsim.Op{Index: 2, Kind: crashsim.OpWrite, Path: ImagePath, Off: 0, Data: hdr}
	tr := &crashsim.Trace{Ops: []crashsim.Op{{Index: 0, Kind: crashsim.OpMkdir, Path: Dir}, {Index: 1, Kind: crashsim.OpCreate, Path: ImagePath}, write}}
	run := &crashsim.Run{Start: crashsim.EmptyImage(), Options: fsOptions, Trace: tr}
	got := headerChange(run, ImagePath, write)
	require.True(t, strings.HasPrefix(got, "changes magic, cluster_size"), "a header written into an empty file: %q", got)
}
