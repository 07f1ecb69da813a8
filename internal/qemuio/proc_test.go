package qemuio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/internal/qemutool"
)

// TestParseDump decodes qemu-io's `read -v` hex dump, including a partial
// last line whose ASCII column looks like hex, and rejects dumps that do
// not cover the requested range.
func TestParseDump(t *testing.T) {
	out := "00000003:  07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07  ................\n" +
		"00000013:  61 62 20 63  ab c\n" +
		"read 20/20 bytes at offset 3\n20 bytes, 1 ops; 00.00 sec\n"
	p := make([]byte, 20)
	if err := ParseDump(out, 3, p); err != nil {
		t.Fatal(err)
	}
	if p[0] != 7 || p[15] != 7 || string(p[16:]) != "ab c" {
		t.Fatalf("decoded %x", p)
	}
	for _, c := range []struct {
		name string
		off  int64
		n    int
	}{{"short", 3, 21}, {"long", 3, 19}, {"wrong offset", 0, 20}} {
		if err := ParseDump(out, c.off, make([]byte, c.n)); !errors.Is(err, ErrParse) {
			t.Errorf("%s: got %v, want ErrParse", c.name, err)
		}
	}
}

// TestFailed recognises qemu-io's failure reports but not dump lines.
func TestFailed(t *testing.T) {
	for out, want := range map[string]bool{
		"wrote 512/512 bytes at offset 0\n":                                              false,
		"qemu-io: Block driver does not support requested flags\n":                       true,
		"write failed: Invalid argument\n":                                               true,
		"Pattern verification failed at offset 0, 512 bytes\n":                           true,
		"00000000:  66 61 69 6c 65 64 00 00 00 00 00 00 00 00 00 00  failed..........\n": false,
	} {
		if got := Failed(out); got != want {
			t.Errorf("Failed(%q) = %v, want %v", out, got, want)
		}
	}
}

// TestPipeline: a batch sent ahead on a packet pipe runs to its end
// (with an ordinary pipe qemu-io would run its first line and wait, and
// the test would time out), each line's reply in order whatever failed
// before it; the replies are those of the same lines sent one at a time;
// a batch whose outputs outgrow the pipes completes; a process that dies
// mid-batch fails that line and every later one with ErrExited.
func TestPipeline(t *testing.T) {
	tool := qemutool.Require(t)
	dir := t.TempDir()
	if res, err := tool.RunImg("create", "-q", "-f", "qed", filepath.Join(dir, "a.qed"), "1M"); err != nil || res.ExitCode != 0 {
		t.Fatalf("qemu-img create: %v %s", err, res.Stderr)
	}
	batch := []string{"open -o driver=qed a.qed", "write -P 0x5a 512 1024", "read -P 0x5a 512 1024",
		"read -P 0x11 512 512", "nosuchcommand", "flush", "read -v 512 16", "close", "read -v 0 16"}
	fails := []string{"", "", "", "Pattern verification failed", "not found", "", "", "", "no file open"}
	for _, pipelined := range []bool{true, false} {
		start := Start
		if pipelined {
			start = StartPipelined
		}
		p, err := start(context.Background(), tool.IOPath, dir)
		if err != nil {
			t.Fatal(err)
		}
		p.Timeout = 20 * time.Second
		if pipelined && runtime.GOOS == "linux" && !p.mu.packet {
			t.Errorf("StartPipelined on Linux: no packet pipe")
		}
		reps := p.Pipeline(batch...)
		for i, r := range reps {
			var ce *CommandError
			switch {
			case fails[i] == "" && r.Err != nil:
				t.Errorf("pipelined %v: %q: %v", pipelined, batch[i], r.Err)
			case fails[i] != "" && (!errors.As(r.Err, &ce) || !strings.Contains(r.Out, fails[i])):
				t.Errorf("pipelined %v: %q: got %v, want a failure %q", pipelined, batch[i], r.Err, fails[i])
			}
		}
		got := make([]byte, 16)
		if err := ParseDump(reps[6].Out, 512, got); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 16)) {
			t.Errorf("pipelined %v: read -v after a failing command: %x %v", pipelined, got, err)
		}
		// More lines than a pipe holds packets, more output than it holds.
		big := []string{"open -r -o driver=qed a.qed"}
		for range 24 {
			big = append(big, "read -v 0 16384")
		}
		for i, r := range p.Pipeline(append(big, "close")...) {
			if r.Err != nil {
				t.Fatalf("pipelined %v: large batch, line %d: %v", pipelined, i, r.Err)
			}
		}
		reps = p.Pipeline("open -o driver=qed a.qed", "abort", "close")
		if reps[0].Err != nil || !errors.Is(reps[1].Err, ErrExited) || !errors.Is(reps[2].Err, ErrExited) {
			t.Errorf("pipelined %v: a process dying mid-batch: %v, %v, %v", pipelined, reps[0].Err, reps[1].Err, reps[2].Err)
		}
		if err := p.Quit(); err != nil {
			t.Error(err)
		}
	}
}

// parseDumpReference is ParseDump as it was before it was made a single
// pass (strings.Split and strconv per byte): the two must agree.
func parseDumpReference(out string, off int64, p []byte) error {
	got := 0
	for _, l := range strings.Split(out, "\n") {
		c := strings.Index(l, ":  ")
		if c != 8 && c != 16 {
			continue
		}
		at, err := strconv.ParseUint(l[:c], 16, 64)
		if err != nil {
			continue
		}
		if int64(at)-off != int64(got) {
			return ErrParse
		}
		s := l[c+3:]
		for j := 0; j < 16 && len(s) >= 3*j+3; j++ {
			g := s[3*j : 3*j+3]
			if g[2] != ' ' || !isHex(g[0]) || !isHex(g[1]) {
				break
			}
			if got >= len(p) {
				return ErrParse
			}
			v, _ := strconv.ParseUint(g[:2], 16, 8)
			p[got] = byte(v)
			got++
		}
	}
	if got != len(p) {
		return ErrParse
	}
	return nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// BenchmarkParseDump: a 1 MiB dump (4.5 MB of qemu-io's text), decoded
// by ParseDump and by the reference it replaced.
func BenchmarkParseDump(b *testing.B) {
	const n = 1 << 20
	var d strings.Builder
	for k := 0; k < n; k += 16 {
		fmt.Fprintf(&d, "%08x:  ", k)
		for j := range 16 {
			fmt.Fprintf(&d, "%02x ", byte(k+j*7))
		}
		d.WriteString(" ................\n")
	}
	out, p := d.String(), make([]byte, n)
	for name, f := range map[string]func(string, int64, []byte) error{"ParseDump": ParseDump, "reference": parseDumpReference} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				if err := f(out, 0, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestParseDumpAgrees: ParseDump decodes what the reference decodes and
// fails where it fails, on dumps as qemu-io prints them (random bytes,
// offsets past 4 GiB, a partial last line) and on damaged ones (a byte,
// a line or a newline dropped, a digit changed, upper case).
func TestParseDumpAgrees(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range 300 {
		n := 1 + rng.IntN(100)
		off := rng.Int64N(1 << 20)
		if i%3 == 0 {
			off += 1 << 33
		}
		b := make([]byte, n)
		for k := range b {
			b[k] = byte(rng.IntN(256))
		}
		var d strings.Builder
		for k := 0; k < n; k += 16 {
			w := 8
			if off+int64(k) >= 1<<32 {
				w = 16
			}
			fmt.Fprintf(&d, "%0*x:  ", w, off+int64(k))
			for _, c := range b[k:min(k+16, n)] {
				fmt.Fprintf(&d, "%02x ", c)
			}
			d.WriteString(" ")
			for _, c := range b[k:min(k+16, n)] {
				if c < 32 || c > 126 {
					c = '.'
				}
				d.WriteByte(c)
			}
			d.WriteString("\n")
		}
		fmt.Fprintf(&d, "read %d/%d bytes at offset %d\n", n, n, off)
		out := d.String()
		switch i % 5 {
		case 1:
			j := rng.IntN(len(out))
			out = out[:j] + out[j+1:]
		case 2:
			j := rng.IntN(len(out))
			out = out[:j] + string("0123456789abcdefABCDEF: \n"[rng.IntN(25)]) + out[j+1:]
		case 3:
			out = strings.ToUpper(out)
		}
		for _, m := range []int{n, n - 1, n + 1} {
			if m < 0 {
				continue
			}
			p, q := make([]byte, m), make([]byte, m)
			err, ref := ParseDump(out, off, p), parseDumpReference(out, off, q)
			if (err == nil) != (ref == nil) || (err == nil && !bytes.Equal(p, q)) {
				t.Fatalf("case %d, %d bytes: ParseDump %v, reference %v, on\n%s", i, m, err, ref, out)
			}
			if err == nil && m == n && i%5 == 0 && !bytes.Equal(p, b) {
				t.Fatalf("case %d: decoded %x, want %x", i, p, b)
			}
		}
	}
}
