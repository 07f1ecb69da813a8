package qemu

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// A recoverer is one long-lived qemu-io process with its own scratch
// directory, in which QEMU recovers crash states one after another: each
// state's files are written into the directory and the image is opened,
// used and closed with qemu-io's `open` and `close` commands, the same
// block-layer paths a fresh `qemu-io -f qed IMAGE` takes at its start and
// exit. It replaces the four processes QEMURecover starts per state
// (TestPooledRecoveryAgrees holds the two to the same verdicts).
type recoverer struct {
	ctx    context.Context // the process dies with it
	tool   *qemutool.Tool  // bound to ctx: qemu-img convert
	proc   *qemuio.Proc
	dir    string
	remove func()
	uses   int
	dead   bool // the process died on a state: not reused
	// verified and differed count verifyCertain's outcomes: QEMU's bytes
	// compared equal to the model's durable contents, or not (then
	// judged from the bytes read back).
	verified, differed int
	// guessed counts the uncertain ranges (read chunks) whose guessed
	// bytes QEMU confirmed (guessUncertain): no hex dump.
	guessed int
	// trips counts the batches of commands sent (round trips to QEMU).
	trips int
	// backing holds the bytes of the backing files reset last wrote into
	// dir, by name (the image's are not kept).
	backing map[string][]byte
}

// readBackLimit bounds the data a recoverer reads back in its own process
// (read -v prints a hex dump, about five bytes of output per byte); a
// state with more is read by qemu-img convert, one process.
const readBackLimit = 128 << 10

// dataRanges are the guest ranges below size that may hold anything but
// zeros by the model: its flushed data (the backing chain's data included:
// model.Disk.Written) and its uncertain (pending) ranges, sorted and
// merged. Elsewhere the model says the disk reads zeros (past a backing
// file's data too: its tail reads zeros); readBack has QEMU verify that
// (read -P 0), so QEMU's word on those ranges is checked, not taken. The
// choice only decides how a range is read: a byte that fails the zero
// verification is read again with -v and judged by the model.
func dataRanges(m *model.Disk, size int64) []model.Range {
	rs := slices.Concat(m.Written(), m.Uncertain())
	slices.SortFunc(rs, func(a, b model.Range) int { return cmp.Compare(a.Off, b.Off) })
	var out []model.Range
	for _, r := range rs {
		end := min(r.Off+r.Len, size)
		if r.Off >= end {
			continue
		}
		if n := len(out); n > 0 && r.Off <= out[n-1].Off+out[n-1].Len {
			out[n-1].Len = max(out[n-1].Len, end-out[n-1].Off)
			continue
		}
		out = append(out, model.Range{Off: r.Off, Len: end - r.Off})
	}
	return out
}

func rangesLen(rs []model.Range) int64 {
	var n int64
	for _, r := range rs {
		n += r.Len
	}
	return n
}

// maxRecoverUses bounds the states one qemu-io process recovers before it
// is replaced (whatever QEMU keeps across opens stays bounded).
const maxRecoverUses = 500

// recoverPool keeps idle recoverers for reuse: a judge takes one per
// state (so the campaign's workers recover in parallel, one process
// each) and gives it back. A recoverer whose process died (QEMU aborted
// on a state, or the campaign's context was cancelled) is dropped.
type recoverPool struct {
	mu     sync.Mutex
	idle   []*recoverer
	closed bool
}

// get returns an idle recoverer whose process lives under ctx, or starts
// one.
func (pl *recoverPool) get(ctx context.Context, tool *qemutool.Tool) (*recoverer, error) {
	pl.mu.Lock()
	for len(pl.idle) > 0 {
		r := pl.idle[len(pl.idle)-1]
		pl.idle = pl.idle[:len(pl.idle)-1]
		if r.ctx == ctx && ctx.Err() == nil {
			pl.mu.Unlock()
			return r, nil
		}
		// Started under another context (a minimization runs under the
		// campaign's parent): replaced, so that a cancellation of ctx
		// reaches the process.
		pl.mu.Unlock()
		r.close()
		pl.mu.Lock()
	}
	pl.mu.Unlock()
	dir, remove, err := tempDir("qedtorture-qemu-recover-")
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	p, err := qemuio.StartPipelined(ctx, tool.IOPath, dir)
	if err != nil {
		remove()
		return nil, err
	}
	return &recoverer{ctx: ctx, tool: tool.WithContext(ctx), proc: p, dir: dir, remove: remove}, nil
}

// put gives r back (or ends it, when the pool is closed, its process is
// gone or it has served maxRecoverUses states).
func (pl *recoverPool) put(r *recoverer) {
	r.uses++
	r.proc.ClearLog()
	pl.mu.Lock()
	if !pl.closed && !r.dead && !r.proc.Exited() && r.uses < maxRecoverUses && r.ctx.Err() == nil {
		pl.idle = append(pl.idle, r)
		pl.mu.Unlock()
		return
	}
	pl.mu.Unlock()
	r.close()
}

// convertRaw reads the guest data of the image at p with qemu-img
// convert -O raw; its failure is a failure at stage data.
func convertRaw(tool *qemutool.Tool, p string) (stage, msg string, data []byte, err error) {
	out := p + ".raw"
	defer os.Remove(out)
	res, err := tool.RunImg("convert", "-f", "qed", "-O", "raw", p, out)
	if err != nil {
		return "", "", nil, err
	}
	if res.ExitCode != 0 {
		return string(oracle.StageData), fmt.Sprintf("qemu-img convert failed after recovery: %s", strings.TrimSpace(string(res.Stderr))), nil, nil
	}
	data, err = os.ReadFile(out)
	return "", "", data, err
}

// close ends every idle recoverer; later puts end theirs.
func (pl *recoverPool) close() error {
	pl.mu.Lock()
	idle := pl.idle
	pl.idle, pl.closed = nil, true
	pl.mu.Unlock()
	var first error
	for _, r := range idle {
		if err := r.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (r *recoverer) close() error {
	err := r.proc.Quit()
	r.remove()
	return err
}

// recover is QEMURecover in r's process: files (the crashed image under
// workload.ImageName, its backing chain under their names) are written
// into r's directory, and QEMU recovers the image as a guest would: a
// writable open, a flush and a close (QEMU checks and repairs only when
// NEED_CHECK is set); the result must be consistent with NEED_CHECK
// clear; the guest data is read back and judged against m (not
// modified): QEMU compares the bytes outside m's uncertain ranges with
// m's durable contents itself (verifyCertain: the quorum driver), and
// those of the uncertain ones with a guess of them (what the crashed
// image maps there: guessUncertain); the uncertain bytes QEMU does not
// confirm are read with read -v in the writable open the liveness write
// then uses; when QEMU's certain bytes differ (or the uncertain ranges
// are large), every byte is read back (readBack: the model's data
// ranges with read -v, every other byte verified zero by QEMU; above
// readBackLimit, qemu-img convert) and judged; last, liveness: a sector
// of livenessPattern written at offset 0 with a flush and a clean close,
// the image consistent again, and read back (`read -P`) in a new
// read-only open. It returns the failing stage ("" when the state passed)
// and an explanation; err is for failures of the harness (the recoverer
// must not be reused after one). QEMU's process dying on the state is a
// failure at the stage it died in (r.dead is then set).
//
// The commands go to QEMU in pipelined batches (qemuio.Proc.Pipeline),
// two for a state whose certain bytes QEMU vouches for, instead of a
// round trip per command: the stages and their order are the same, and
// the verdict is taken from the replies and the files in the order of
// one command at a time. A batch runs to its end whatever fails in it, so
// what it holds after a command that a stage's verdict could stop at
// must not change what that verdict sees or the next state does:
//
//   - the recovery batch (open, flush, close) carries verifyCertain's
//     read-only quorum open, reads and close, for the image_size the
//     crashed header names (the recovery does not change it; when it did,
//     verifyCertain runs again with the recovered one). A read-only open
//     neither checks nor repairs, so the file the structure-after-recovery
//     check reads once the batch is done is the file the recovery's close
//     left;
//   - the liveness batch (write, flush, close) carries the read-only
//     reopen, its read and close, which again leave the file the check
//     after the write reads as the close left it; in the common case it
//     also begins with the writable open and the uncertain ranges' read
//     -v, so the data is judged on the bytes QEMU read before the write
//     (a data failure is the verdict, whatever the write then did);
//   - every batch ends with a close, so no image stays open for the next
//     state; a process that died in a batch after the command the verdict
//     stops at is not reused (recoverPool.put), or is restarted when the
//     state goes on.
func (r *recoverer) recover(files map[string][]byte, m *model.Disk) (stage, msg string, err error) {
	if err := r.reset(files); err != nil {
		return "", "", err
	}
	p := filepath.Join(r.dir, workload.ImageName)
	open, openRO := "open -o driver=qed "+p, "open -r -o driver=qed "+p
	recovery := []string{open, "flush", "close"}
	cmds := recovery
	var cc *certainCheck
	if size, ok := crashedSize(files[workload.ImageName]); ok && size > 0 && slices.Contains(m.CrashSizes(), size) {
		// As before the guesses: above readBackLimit of uncertain
		// bytes the fallback below reads every byte back (the quorum's
		// expected file and buffer are the guest's size).
		if unc := uncertain(m, size); rangesLen(unc) <= readBackLimit {
			if cc, err = r.planCertain(p, m, size, unc, true); err != nil {
				return "", "", err
			}
		}
	}
	if cc != nil {
		cmds = slices.Concat(recovery, cc.cmds)
	}
	reps := r.pipeline(cmds...)
	if st, msg, err := r.judge(oracle.StageRecovery, "writable open", recovery, reps[:len(recovery)]); st != "" || err != nil {
		return st, msg, err
	}
	if st, msg, err := cleanAfter(p, "a writable open and close"); st != "" || err != nil {
		return st, msg, err
	}
	size, err := headerSize(p)
	if err != nil {
		return "", "", err
	}
	var (
		data     []byte
		unc      = uncertain(m, size)
		verified bool
		toRead   []model.Range // the uncertain bytes QEMU did not confirm
	)
	switch {
	case cc != nil && cc.size == size:
		if verified, toRead, err = r.certainOutcome(cc, reps[len(recovery):]); err != nil {
			return "", "", err
		}
		data = cc.data
	case cc != nil:
		// The recovery changed image_size: QEMU's comparison was of the
		// wrong length. Its replies are dropped (a process that died in
		// it is restarted) and it runs again below.
		os.Remove(cc.exp)
		if ended(reps) {
			if err := r.restart(); err != nil {
				return "", "", err
			}
		}
		cc = nil
	}
	if !slices.Contains(m.CrashSizes(), size) {
		return string(oracle.StageSize), fmt.Sprintf("recovered size %#x, model allows %#x", size, m.CrashSizes()), nil
	}
	if size == 0 { // nothing to read back or write: the read-only open alone
		return r.judge(oracle.StageData, "reading the guest data back after recovery", []string{openRO, "close"}, r.pipeline(openRO, "close"))
	}
	if cc == nil && rangesLen(unc) <= readBackLimit {
		if data, verified, err = r.verifyCertain(p, m, size, unc); err != nil {
			return "", "", err
		}
		toRead = unc
	}
	n := min(size, livenessLen)
	liveness := []string{fmt.Sprintf("write -P %#x 0 %d", livenessPattern, n), "flush", "close",
		openRO, fmt.Sprintf("read -P %#x 0 %d", livenessPattern, n), "close"}
	if verified {
		// QEMU read m's durable contents outside the uncertain ranges
		// (verifyCertain) and the guessed bytes of those it confirmed;
		// the others are read back in the liveness stage's writable
		// open, before its write.
		reads := readCmds(toRead)
		cmds := slices.Concat([]string{open}, reads, liveness)
		reps := r.pipeline(cmds...)
		const what = "reading the guest data back after recovery"
		if st, msg, err := r.judge(oracle.StageData, what, cmds[:1+len(reads)], reps[:1+len(reads)]); st != "" || err != nil {
			return st, msg, err
		}
		if err := parseReads(toRead, reps[1:1+len(reads)], data); err != nil {
			r.dead = true // the process's output is not understood
			return "", "", err
		}
		if err := m.VerifyCrash(0, data); err != nil {
			return string(oracle.StageData), err.Error(), nil
		}
		return r.liveness(p, liveness, reps[1+len(reads):])
	}
	if rs := dataRanges(m, size); rangesLen(rs) > readBackLimit {
		// A hex dump of that much data costs more than a process.
		st, msg, data, err := convertRaw(r.tool, p)
		if st != "" || err != nil {
			return st, msg, err
		}
		if int64(len(data)) != size {
			return string(oracle.StageSize), fmt.Sprintf("qemu-img convert read back %#x bytes, image_size is %#x", len(data), size), nil
		}
		if err := m.VerifyCrash(0, data); err != nil {
			return string(oracle.StageData), err.Error(), nil
		}
		cmds := slices.Concat([]string{open}, liveness)
		reps := r.pipeline(cmds...)
		if st, msg, err := r.judge(oracle.StageLiveness, "write after recovery", cmds[:1], reps[:1]); st != "" || err != nil {
			return st, msg, err
		}
		return r.liveness(p, liveness, reps[1:])
	}
	// The data is read back in the liveness stage's writable open, before
	// its write: two commands fewer per state than a read-only open and
	// close of its own. The image is clean here (cleanAfter: NEED_CHECK
	// clear, consistent), so a writable open neither checks nor repairs
	// it and reads what a read-only one would; the read-only open is
	// still taken, by the liveness read-back below.
	data, st, msg, err := r.readBack(open, size, dataRanges(m, size))
	if st != "" || err != nil {
		return st, msg, err
	}
	if err := m.VerifyCrash(0, data); err != nil {
		r.closeImage()
		return string(oracle.StageData), err.Error(), nil
	}
	return r.liveness(p, liveness, r.pipeline(liveness...))
}

// liveness is the verdict of the liveness batch cmds (a write, a flush
// and a close of the open image, then a read-only reopen, the read-back
// of the write and a close) from its replies reps: the first failing
// command of the write's part, else the image not clean after it
// (cleanAfter; the read-only reopen left the file as the close did),
// else the first failing command of the read-back.
func (r *recoverer) liveness(p string, cmds []string, reps []qemuio.Reply) (string, string, error) {
	if st, msg, err := r.judge(oracle.StageLiveness, "write after recovery", cmds[:3], reps[:3]); st != "" || err != nil {
		return st, msg, err
	}
	if st, msg, err := cleanAfter(p, "recovery, a write and a clean close"); st != "" || err != nil {
		return st, msg, err
	}
	return r.judge(oracle.StageLiveness, "reading back the write after reopening", cmds[3:], reps[3:])
}

// judge is the verdict of the commands cmds of a pipelined batch (a stage's
// part of it) from their replies reps: the first failing command is a
// failure at stage, explained by what was attempted; the process's end
// is died's. (A process that ended later in the batch, after the
// verdict's command, is not reused: recoverPool.put sees it exited.)
func (r *recoverer) judge(stage oracle.Stage, what string, cmds []string, reps []qemuio.Reply) (string, string, error) {
	for i, rep := range reps {
		var ce *qemuio.CommandError
		switch {
		case rep.Err == nil:
			continue
		case errors.As(rep.Err, &ce):
			return string(stage), fmt.Sprintf("%s in qemu-io failed: %s: %s", what, cmds[i], strings.TrimSpace(rep.Out)), nil
		default:
			return r.died(stage, what, rep.Err)
		}
	}
	return "", "", nil
}

// ended reports whether the process ended (or was killed) during the
// batch whose replies are reps (its last reply is then an error other
// than a command's failure).
func ended(reps []qemuio.Reply) bool {
	if len(reps) == 0 {
		return false
	}
	var ce *qemuio.CommandError
	err := reps[len(reps)-1].Err
	return err != nil && !errors.As(err, &ce)
}

// closeImage closes whatever image r's process has open ("no file open"
// when none is).
func (r *recoverer) closeImage() { r.pipeline("close") }

// pipeline sends cmds to r's process as one batch (qemuio.Proc.Pipeline:
// one round trip) and counts it.
func (r *recoverer) pipeline(cmds ...string) []qemuio.Reply {
	r.trips++
	return r.proc.Pipeline(cmds...)
}

// died handles an error of the process itself: QEMU died on the state (a
// failure at stage; r is not reused), the campaign's context was
// cancelled (its error, for the harness), or no prompt came in time (an
// error for the harness).
func (r *recoverer) died(stage oracle.Stage, what string, err error) (string, string, error) {
	r.dead = true
	switch {
	case r.ctx.Err() != nil:
		return "", "", r.ctx.Err()
	case errors.Is(err, qemuio.ErrExited):
		return string(stage), fmt.Sprintf("%s in qemu-io failed: the process died: %v", what, err), nil
	}
	return "", "", err
}

// readBack reads the guest data of the image back in r's process, opened
// with open: the ranges rs with read -v, every other byte below size
// verified as zero by QEMU itself (read -P 0; read with -v when the
// verification fails, so that the model judges what QEMU returned). A
// failing open or read is a failure at stage data (the image is then
// closed); otherwise the image is left open for the caller. The open and
// the reads go in one pipelined batch, the reads of failed verifications
// in a second.
func (r *recoverer) readBack(open string, size int64, rs []model.Range) (data []byte, stage, msg string, err error) {
	data = make([]byte, size)
	type read struct {
		off, n int64
		dump   bool // read -v, else read -P 0
	}
	var reads []read
	add := func(off, n int64, dump bool) {
		for n > 0 {
			c := min(n, readChunk)
			reads = append(reads, read{off, c, dump})
			off, n = off+c, n-c
		}
	}
	pos := int64(0)
	for _, x := range append(rs, model.Range{Off: size}) {
		add(pos, x.Off-pos, false)
		add(x.Off, x.Len, true)
		pos = x.Off + x.Len
	}
	const what = "reading the guest data back after recovery"
	for first := true; first || len(reads) > 0; first = false {
		var cmds []string
		if first {
			cmds = append(cmds, open)
		}
		for _, rd := range reads {
			cmd := fmt.Sprintf("read -P 0 %d %d", rd.off, rd.n)
			if rd.dump {
				cmd = fmt.Sprintf("read -v %d %d", rd.off, rd.n)
			}
			cmds = append(cmds, cmd)
		}
		reps := r.pipeline(cmds...)
		if first {
			if st, msg, err := r.judge(oracle.StageData, what, cmds[:1], reps[:1]); st != "" || err != nil {
				if err == nil && !r.dead {
					r.closeImage()
				}
				return nil, st, msg, err
			}
			cmds, reps = cmds[1:], reps[1:]
		}
		var again []read
		for i, rd := range reads {
			var ce *qemuio.CommandError
			rep := reps[i]
			switch {
			case !rd.dump && errors.As(rep.Err, &ce) && strings.Contains(rep.Out, "Pattern verification failed"):
				rd.dump = true // QEMU read something else: what?
				again = append(again, rd)
			case errors.As(rep.Err, &ce):
				r.closeImage()
				return nil, string(oracle.StageData), fmt.Sprintf("%s in qemu-io failed: %s: %s", what, cmds[i], strings.TrimSpace(rep.Out)), nil
			case rep.Err != nil:
				st, msg, err := r.died(oracle.StageData, what, rep.Err)
				return nil, st, msg, err
			case rd.dump:
				if err := qemuio.ParseDump(rep.Out, rd.off, data[rd.off:rd.off+rd.n]); err != nil {
					r.dead = true
					return nil, "", "", fmt.Errorf("qemu: %s: %w", cmds[i], err)
				}
			}
		}
		reads = again
	}
	return data, "", "", nil
}

// readCmds are the read -v commands that read the ranges rs, readChunk
// at most each (parseReads decodes their replies).
func readCmds(rs []model.Range) []string {
	var cmds []string
	for _, x := range rs {
		for off := x.Off; off < x.Off+x.Len; off += readChunk {
			cmds = append(cmds, fmt.Sprintf("read -v %d %d", off, min(readChunk, x.Off+x.Len-off)))
		}
	}
	return cmds
}

// parseReads decodes the replies reps of readCmds(rs) into data (the
// guest's bytes from offset 0).
func parseReads(rs []model.Range, reps []qemuio.Reply, data []byte) error {
	i := 0
	for _, x := range rs {
		for off := x.Off; off < x.Off+x.Len; off += readChunk {
			n := min(readChunk, x.Off+x.Len-off)
			if err := qemuio.ParseDump(reps[i].Out, off, data[off:off+n]); err != nil {
				return fmt.Errorf("qemu: read -v %d %d: %w", off, n, err)
			}
			i++
		}
	}
	return nil
}

// uncertain returns m's uncertain ranges (model.Disk.Uncertain: what a
// crash may have left either way) cut at size.
func uncertain(m *model.Disk, size int64) []model.Range {
	var out []model.Range
	for _, r := range m.Uncertain() {
		if end := min(r.Off+r.Len, size); r.Off < end {
			out = append(out, model.Range{Off: r.Off, Len: end - r.Off})
		}
	}
	return out
}

// crashedSize is the image_size of a crashed image's QED header (ok =
// false when img has none).
func crashedSize(img []byte) (size int64, ok bool) {
	if len(img) < 56 || string(img[:4]) != "QED\x00" {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(img[48:])), true
}

// expectedName is the file in a recoverer's directory holding the bytes
// verifyCertain has QEMU compare the image's with (a name no state file
// has: state files are the image and its backing chain, named by the
// workload).
const expectedName = ".qedtorture-expected.raw"

// verifyChunk bounds one read command of verifyCertain (no output: only
// QEMU's buffers grow with it).
const verifyChunk = 16 << 20

// A certainCheck is verifyCertain's comparison for one image_size: the
// expected bytes (m's durable contents), written to exp, and the
// commands that have QEMU compare the image's with them.
type certainCheck struct {
	size int64
	data []byte
	exp  string
	cmds []string // the quorum open, the reads, a close; none when every byte is uncertain
	// unc are the uncertain ranges whose guessed bytes (guessUncertain)
	// the reads of cmds from index uncAt on compare, one a read.
	unc   []model.Range
	uncAt int
	all   []model.Range // every uncertain range (below size)
}

// verifyCertain has QEMU itself compare the guest bytes of the recovered
// image at p outside m's uncertain ranges unc (below size), which the
// crash rule fixes (m's durable contents, model.Disk.Uncertain), with
// those, without a hex dump or a qemu-img convert (for a 1 MiB image,
// most of a state's recovery time was spent there). The expected bytes
// are written to a raw file and the image is opened read-only under
// QEMU's quorum driver with two children, the QED image and that file,
// and a vote threshold of two: every read is served by both and
// compared, and a difference fails the read (EIO) without ending the
// process. It returns size bytes holding m's durable contents and
// verified = true when QEMU read exactly them outside unc (the uncertain
// ranges are the caller's to read back). verified = false (the bytes
// differ, QEMU failed a read or died, or the model cannot say) leaves the
// judging to readBack or qemu-img convert, which read every byte and let
// the model judge them, so the verdict is the same either way; r's
// process is restarted if it died. err is for failures of the harness.
// (Guessing the uncertain ranges too, as m's current contents, made no
// measurable difference: a crash state seldom holds every pending write.)
// recover usually sends the comparison ahead with the recovery's batch
// (planCertain, certainOutcome).
func (r *recoverer) verifyCertain(p string, m *model.Disk, size int64, unc []model.Range) (data []byte, verified bool, err error) {
	c, err := r.planCertain(p, m, size, unc, false)
	if c == nil || err != nil {
		return nil, false, err
	}
	verified, _, err = r.certainOutcome(c, r.pipeline(c.cmds...))
	return c.data, verified, err
}

// planCertain writes the expected bytes of verifyCertain's comparison
// and returns its commands; nil when the model cannot say what the
// certain bytes are. The expected bytes of the uncertain ranges unc are a
// guess, what the crashed image at p maps there (guessUncertain), and
// each uncertain range is compared by reads of its own after the certain
// ones: a read that QEMU passes vouches for those bytes as the ones it
// read, one that fails leaves that range to be read back with read -v
// (certainOutcome), and neither changes the certain reads' outcome.
func (r *recoverer) planCertain(p string, m *model.Disk, size int64, unc []model.Range, guess bool) (*certainCheck, error) {
	data := make([]byte, size)
	if size > m.Size() || m.ReadDurableAt(data, 0) != nil {
		return nil, nil
	}
	c := &certainCheck{size: size, data: data, exp: filepath.Join(r.dir, expectedName), all: unc}
	var reads []string
	pos := int64(0)
	for _, x := range append(slices.Clone(unc), model.Range{Off: size}) {
		for off := pos; off < x.Off; off += verifyChunk {
			reads = append(reads, fmt.Sprintf("read -q %d %d", off, min(verifyChunk, x.Off-off)))
		}
		pos = x.Off + x.Len
	}
	certain := len(reads)
	if guess && len(unc) > 0 && guessUncertain(p, data, unc) {
		c.uncAt = 1 + len(reads)
		for _, x := range unc {
			for off := x.Off; off < x.Off+x.Len; off += verifyChunk {
				n := min(verifyChunk, x.Off+x.Len-off)
				reads = append(reads, fmt.Sprintf("read -q %d %d", off, n))
				c.unc = append(c.unc, model.Range{Off: off, Len: n})
			}
		}
	}
	if certain == 0 && len(c.unc) == 0 {
		return c, nil // every byte is uncertain, and no guess: read back
	}
	if err := os.WriteFile(c.exp, data, 0o644); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	open := "open -r -o driver=quorum,vote-threshold=2" +
		",children.0.driver=qed,children.0.file.driver=file,children.0.file.filename=" + p +
		",children.1.driver=raw,children.1.file.driver=file,children.1.file.filename=" + c.exp
	c.cmds = slices.Concat([]string{open}, reads, []string{"close"})
	return c, nil
}

// guessUncertain writes into data (the guest's bytes from offset 0) a
// guess of what QEMU will read in the uncertain ranges unc of the crashed
// image at p: where the image's L2 entries map a cluster (the
// independent checker's map, props/check), the bytes there in the file;
// a zero cluster's zeros; elsewhere data's own bytes are kept (the
// model's durable contents: an unallocated cluster reads its backing
// file or zeros, as before the pending write). It is only a guess, to
// spare a hex dump when QEMU confirms it: whatever QEMU does not confirm
// byte for byte is read back. false when the image cannot be mapped.
func guessUncertain(p string, data []byte, unc []model.Range) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	rep, err := check.FileMapped(f)
	if err != nil || !rep.Walked {
		return false
	}
	for _, u := range unc {
		for i, mr := range rep.Mapped {
			lo, hi := max(u.Off, mr.Off), min(u.Off+u.Len, mr.Off+mr.Len, int64(len(data)))
			if lo < hi {
				// A short read (a cluster past the end of the file)
				// leaves a wrong guess, which QEMU will not confirm.
				_, _ = f.ReadAt(data[lo:hi], int64(rep.MappedHost[i])+lo-mr.Off)
			}
		}
		for _, z := range rep.Zeroed {
			if lo, hi := max(u.Off, z.Off), min(u.Off+u.Len, z.Off+z.Len, int64(len(data))); lo < hi {
				clear(data[lo:hi])
			}
		}
	}
	return true
}

// certainOutcome is verifyCertain's outcome from the replies reps of
// c's commands: verified when QEMU read the certain bytes (the open and
// every read before c.uncAt passed), and unconfirmed, the uncertain
// ranges whose guess QEMU did not confirm (c.all when nothing was
// guessed); the bytes of the others in c.data are the ones QEMU read.
func (r *recoverer) certainOutcome(c *certainCheck, reps []qemuio.Reply) (verified bool, unconfirmed []model.Range, err error) {
	os.Remove(c.exp)
	end := len(reps)
	if c.uncAt > 0 {
		end = c.uncAt
	} else {
		unconfirmed = c.all // nothing guessed
	}
	for i, rep := range reps {
		var ce *qemuio.CommandError
		switch {
		case rep.Err == nil:
			continue
		case errors.As(rep.Err, &ce) && i >= end && i < end+len(c.unc):
			// A guess QEMU did not confirm (EIO): read back.
			unconfirmed = append(unconfirmed, c.unc[i-end])
		case errors.As(rep.Err, &ce):
			if i < end {
				// A difference (EIO), or a read QEMU failed: every byte
				// is read back and judged. (The batch's close ran.)
				r.differed++
				return false, nil, nil
			}
		case r.ctx.Err() != nil:
			r.dead = true
			return false, nil, r.ctx.Err()
		case errors.Is(rep.Err, qemuio.ErrExited):
			// QEMU died: a fresh process reads the bytes for the model
			// to judge.
			r.differed++
			return false, nil, r.restart()
		default:
			r.dead = true
			return false, nil, rep.Err
		}
	}
	r.verified++
	if c.uncAt > 0 {
		r.guessed += len(c.unc) - len(unconfirmed)
	}
	return true, unconfirmed, nil
}

// restart replaces r's process (which died) with a fresh one in the same
// directory.
func (r *recoverer) restart() error {
	_ = r.proc.Kill()
	p, err := qemuio.StartPipelined(r.ctx, r.tool.IOPath, r.dir)
	if err != nil {
		r.dead = true
		return err
	}
	r.proc, r.dead = p, false
	return nil
}

// readChunk bounds one read command of readBack.
const readChunk = 1 << 20

// reset empties r's directory and writes files into it. A backing file
// with the same name and bytes as the one the previous state left there
// is kept (most states of a workload share their backing chain; writing
// the files was half of a state's CPU in this process): QEMU opens a
// backing file read-only (a QED image's backing file is never written
// by an open, a flush, a write or a close of the image), so the file on
// disk still holds the bytes written. The image is always written anew.
func (r *recoverer) reset(files map[string][]byte) error {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	keep := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if prev, ok := r.backing[name]; ok && e.Type().IsRegular() && files[name] != nil && bytes.Equal(prev, files[name]) {
			keep[name] = true
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.dir, name)); err != nil {
			return fmt.Errorf("qemu: %w", err)
		}
	}
	r.backing = map[string][]byte{}
	for name, b := range files {
		if name != workload.ImageName {
			r.backing[name] = b
		}
		if keep[name] {
			continue
		}
		if err := os.WriteFile(filepath.Join(r.dir, name), b, 0o644); err != nil {
			return fmt.Errorf("qemu: %w", err)
		}
	}
	return nil
}
