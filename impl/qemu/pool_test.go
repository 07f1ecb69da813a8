package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// recoveryCase is a crash state for QEMU's recovery: its files (the image
// under workload.ImageName) and the model it is judged against.
type recoveryCase struct {
	name  string
	files map[string][]byte
	m     *model.Disk
}

// recoveryCases are states that pass and fail QEMU's recovery at each
// stage: a sound image, a bad L2 entry NEED_CHECK does not announce, the
// same announced (QEMU repairs it), no QED header, an empty file, data the
// model does not allow, a size it does not allow, an image over a backing
// file, the same image over a changed backing file, writes pending at
// the crash that did not land, and a sector of one holding neither
// value.
func recoveryCases(t testing.TB) []recoveryCase {
	img, m := liveImage(t)
	one := func(b []byte) map[string][]byte { return map[string][]byte{workload.ImageName: b} }
	h, err := qed.ReadHeader(aferoFile(t, img), "/i.qed")
	if err != nil {
		t.Fatal(err)
	}
	badL2 := append([]byte(nil), img...)
	l2 := binary.LittleEndian.Uint64(badL2[h.L1TableOffset:])
	binary.LittleEndian.PutUint64(badL2[l2+16*8:], uint64(len(badL2))+1<<20)
	announced := append([]byte(nil), badL2...)
	binary.LittleEndian.PutUint64(announced[24:], binary.LittleEndian.Uint64(announced[24:])|qed.FeatureNeedCheck)
	magic := append([]byte(nil), img...)
	copy(magic, "XXXX")
	other, err := model.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	small, err := model.New(1<<19, nil)
	if err != nil {
		t.Fatal(err)
	}

	// An image over a raw backing file, one cluster of it overwritten.
	fs := afero.NewMemMapFs()
	bk, err := model.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := bk.Write(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	bk.Flush()
	back := make([]byte, 1<<20)
	model.Fill(back, id, 0)
	if err := afero.WriteFile(fs, "/b.raw", back, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := qed.Create(fs, "/"+workload.ImageName, qed.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 4, BackingFile: "b.raw", BackingFormat: "raw"}); err != nil {
		t.Fatal(err)
	}
	bm, err := model.New(1<<20, bk)
	if err != nil {
		t.Fatal(err)
	}
	im, err := qed.Open(fs, "/"+workload.ImageName, qed.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wid, err := bm.Write(8192, 4096)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	model.Fill(p, wid, 8192)
	if _, err := im.WriteAt(p, 8192); err != nil {
		t.Fatal(err)
	}
	bm.Flush()
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	bimg, err := afero.ReadFile(fs, "/"+workload.ImageName)
	if err != nil {
		t.Fatal(err)
	}
	changed := append([]byte(nil), back...)
	changed[100000] ^= 0xff

	// A write pending at the crash over the cluster at 64 KiB and one
	// into unallocated space at 512 KiB: the crashed image holds neither
	// (legal: they did not land), or a sector at 64 KiB holds bytes of
	// neither value (a data failure); QEMU confirms the guess of the
	// uncertain bytes (what the image maps there) or reads them back.
	pending := m.Clone()
	if err := pending.WriteBytes(64<<10, bytes.Repeat([]byte{0x77}, 4096)); err != nil {
		t.Fatal(err)
	}
	if _, err := pending.Write(512<<10, 8192); err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(img, func() []byte { b := make([]byte, 4096); model.Fill(b, 1, 64<<10); return b }())
	if at < 0 {
		t.Fatal("the cluster at 64 KiB is not in the image")
	}
	torn := append([]byte(nil), img...)
	copy(torn[at+512:at+1024], bytes.Repeat([]byte{0x33}, 512))
	return []recoveryCase{
		{"sound", one(img), m},
		{"bad L2 entry, NEED_CHECK clear", one(badL2), m},
		{"bad L2 entry, NEED_CHECK set", one(announced), m},
		{"no QED header", one(magic), m},
		{"empty file", one(nil), m},
		{"data the model does not allow", one(img), other},
		{"size the model does not allow", one(img), small},
		{"over a backing file", map[string][]byte{workload.ImageName: bimg, "b.raw": back}, bm},
		// The same image over a backing file of other bytes, right after
		// the one above: a recoverer that kept the former file would
		// pass it.
		{"over a changed backing file", map[string][]byte{workload.ImageName: bimg, "b.raw": changed}, bm},
		{"writes pending, not landed", one(img), pending},
		{"a write pending, a sector of neither value", one(torn), pending},
	}
}

// TestPooledRecoveryAgrees: QEMU's recovery in one long-lived qemu-io
// (opens and closes, the campaign's judge) reaches the same verdict, stage
// for stage, as the four fresh QEMU processes of JudgeRecovery, on states
// failing at every stage and on passing ones, one recoverer serving them
// all in turn (twice, so that each state follows another).
func TestPooledRecoveryAgrees(t *testing.T) {
	tool := qemutool.Require(t)
	cases := recoveryCases(t)
	var pool recoverPool
	defer pool.close()
	stages := map[string]bool{}
	for round := range 2 {
		for _, c := range cases {
			want := judgeFiles(t, tool, nil, c)
			trips := pool.trips()
			got := judgeFiles(t, tool, &pool, c)
			// A state whose certain bytes QEMU vouches for costs two
			// batches of commands (the recovery with the comparison,
			// the uncertain ranges' read-back with the liveness).
			if trips := pool.trips() - trips; got.OK() && trips > 2 {
				t.Errorf("round %d, %s: %d round trips to qemu-io, want 2", round, c.name, trips)
			}
			if want.Stage != got.Stage {
				t.Errorf("round %d, %s: fresh processes %q (%v), pooled %q (%v)", round, c.name, want.Stage, want.Err, got.Stage, got.Err)
			}
			stages[string(got.Stage)] = true
			t.Logf("%s: %q", c.name, got.Stage)
		}
	}
	for _, st := range []oracle.Stage{"", oracle.StageRecovery, oracle.StageStructureAfter, oracle.StageData, oracle.StageSize} {
		if !stages[string(st)] {
			t.Errorf("no case ends at stage %q: %v", st, stages)
		}
	}
	pool.mu.Lock()
	idle := len(pool.idle)
	pool.mu.Unlock()
	if idle != 1 {
		t.Fatalf("one recoverer served every state in turn: %d idle", idle)
	}
	// QEMU compared the bytes outside the uncertain ranges itself
	// (the quorum driver) on the states that got that far, and the data failures
	// among them were judged from the bytes read back.
	r := pool.idle[0]
	t.Logf("quorum: %d verified, %d differed, %d uncertain ranges guessed", r.verified, r.differed, r.guessed)
	if r.verified == 0 || r.differed == 0 || r.guessed == 0 {
		t.Errorf("quorum: %d states verified, %d differed, %d uncertain ranges guessed: want each", r.verified, r.differed, r.guessed)
	}
}

// trips is the round trips to qemu-io of the pool's idle recoverers.
func (pl *recoverPool) trips() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n := 0
	for _, r := range pl.idle {
		n += r.trips
	}
	return n
}

// judgeFiles judges c with QEMU's recovery: in the pool's qemu-io, or with
// fresh processes (JudgeRecovery) when pool is nil.
func judgeFiles(t testing.TB, tool *qemutool.Tool, pool *recoverPool, c recoveryCase) *oracle.Verdict {
	t.Helper()
	fs := afero.NewMemMapFs()
	for n, b := range c.files {
		if err := afero.WriteFile(fs, path.Join("/s", n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j := &RecoveryJudge{Tool: tool, States: -1, pool: pool}
	v, err := j.Judge(context.Background(), &campaign.State{FS: fs, Image: "/s/" + workload.ImageName, Model: c.m.Clone()})
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return v
}

// bothJudge judges each state it gets with both of QEMU's recovery paths
// and records any disagreement.
type bothJudge struct {
	tool *qemutool.Tool
	pool *recoverPool
	mu   sync.Mutex
	n    int
	diff []string
}

func (*bothJudge) Name() string { return "both" }
func (*bothJudge) Budget() int  { return 6 }

func (j *bothJudge) Judge(ctx context.Context, st *campaign.State) (*oracle.Verdict, error) {
	files, err := stateFiles(st.FS, path.Dir(st.Image), st.Image)
	if err != nil {
		return nil, err
	}
	fresh := &RecoveryJudge{Tool: j.tool}
	pooled := &RecoveryJudge{Tool: j.tool, pool: j.pool}
	var vs [2]*oracle.Verdict
	for i, rj := range []*RecoveryJudge{fresh, pooled} {
		fs := afero.NewMemMapFs()
		for n, b := range files {
			if err := afero.WriteFile(fs, "/"+n, b, 0o644); err != nil {
				return nil, err
			}
		}
		if vs[i], err = rj.Judge(ctx, &campaign.State{FS: fs, Image: "/" + workload.ImageName, Model: st.Model.Clone()}); err != nil {
			return nil, err
		}
	}
	j.mu.Lock()
	j.n++
	if vs[0].Stage != vs[1].Stage {
		j.diff = append(j.diff, st.ID.String()+": fresh "+string(vs[0].Stage)+", pooled "+string(vs[1].Stage))
	}
	j.mu.Unlock()
	return vs[1], nil
}

// TestPooledRecoveryAgreesInCampaign: over the crash states of recorded
// QEMU workloads (with and without backing chains, two workers), both
// recovery paths give the same verdicts.
func TestPooledRecoveryAgreesInCampaign(t *testing.T) {
	tool := qemutool.Require(t)
	seed := uint64(11)
	t.Logf("seed %d", seed)
	gen := GenConfig()
	gen.Ops, gen.MaxClusters, gen.BackingChance = 8, 16, 0.5
	j := &bothJudge{tool: tool, pool: &recoverPool{}}
	defer j.pool.close()
	known := knownQEMU(t)
	_, err := campaign.Run(context.Background(), campaign.Config{
		Driver: &Driver{Tool: tool, QEMUStates: 0}, Reference: qedtarget.Target{}, Judges: []campaign.Judge{j},
		Seed: seed, Iterations: 4, Workers: 2, Gen: gen, Bound: 8, Samples: 4, Known: known, MinimizeCandidates: -1,
		Models: []crashsim.Model{{Base: crashsim.Prefix}, {Base: crashsim.Subset}, {Base: crashsim.Torn, Sector: 4096}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if j.n < 4 {
		t.Errorf("only %d states judged by both", j.n)
	}
	for _, d := range j.diff {
		t.Error(d)
	}
	j.pool.mu.Lock()
	var verified, differed, guessed int
	for _, r := range j.pool.idle {
		verified, differed, guessed = verified+r.verified, differed+r.differed, guessed+r.guessed
	}
	j.pool.mu.Unlock()
	t.Logf("%d states, %d disagreements; quorum: %d verified, %d differed, %d uncertain ranges guessed", j.n, len(j.diff), verified, differed, guessed)
}

// BenchmarkQEMURecovery: one sound crash state (the common case: every
// stage, liveness included) recovered by QEMU, with fresh processes and
// in the pool's long-lived qemu-io; states/s is the rate of one worker.
func BenchmarkQEMURecovery(b *testing.B) {
	tool := qemutool.Require(b)
	c := recoveryCases(b)[0]
	for _, pooled := range []bool{false, true} {
		name := "processes"
		var pool *recoverPool
		if pooled {
			name, pool = "pool", &recoverPool{}
		}
		b.Run(name, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				if v := judgeFiles(b, tool, pool, c); !v.OK() {
					b.Fatal(v)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "states/s")
		})
		if pool != nil {
			pool.close()
		}
	}
}

// knownQEMU reads QEMU 7.2's known findings (testdata/known/qemu-7.2.txt).
func knownQEMU(t testing.TB) *campaign.Known {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "known", "qemu-7.2.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k, err := campaign.ParseKnown(f, "qemu-7.2.txt")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestDriverCloseEndsRecoverers: a campaign's QEMU recovery judge keeps
// its qemu-io processes between states, and the campaign's end
// (Driver.Close) ends them and removes their scratch directories.
func TestDriverCloseEndsRecoverers(t *testing.T) {
	tool := qemutool.Require(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	d := &Driver{Tool: tool, Ends: []End{EndClose}, QEMUStates: 3}
	gen := GenConfig()
	gen.Ops, gen.MaxClusters, gen.BackingChance = 5, 8, 0
	rep, err := campaign.Run(context.Background(), campaign.Config{Driver: d, Reference: qedtarget.Target{}, Seed: 3, Iterations: 2,
		Gen: gen, Models: []crashsim.Model{{Base: crashsim.Prefix}}, Known: knownQEMU(t), MaxFailures: 10, MinimizeCandidates: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Judged["qemu"] < 2 {
		t.Fatalf("QEMU's recovery judged %d states", rep.Judged["qemu"])
	}
	d.pool.mu.Lock()
	idle, closed := len(d.pool.idle), d.pool.closed
	d.pool.mu.Unlock()
	if idle != 0 || !closed {
		t.Errorf("after the campaign: %d idle recoverers, closed %v", idle, closed)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "qedtorture-qemu-recover-*"))
	if len(left) != 0 {
		t.Errorf("scratch directories left: %v", left)
	}
}
