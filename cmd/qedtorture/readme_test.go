package main

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/internal/racetest"
)

// The README's command blocks are run by TestREADMECommands. A block is
// a run of lines indented by four spaces after a blank line; the last
// non-blank line before it may be a marker:
//
//	<!-- readme-test: skip REASON -->  never run (Go code, root, the
//	                                    network, placeholders)
//	<!-- readme-test: long -->         run only with QEDTORTURE_README_LONG=1
//	                                    (minutes-long campaigns, benchmarks)
//
// Every other block is a shell block, run in CI.
const readmeMarker = "<!-- readme-test:"

// readmeBlock is one indented block of README.md.
type readmeBlock struct {
	line   int      // 1-based line of its first command
	lines  []string // without the indentation
	marker string   // "", "skip ...", "long"
}

// readmeBlocks returns the indented blocks of a Markdown text.
func readmeBlocks(text string) ([]readmeBlock, error) {
	var (
		out       []readmeBlock
		cur       *readmeBlock
		prevBlank = true
		lastText  string // the last non-blank line before a block
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		blank := strings.TrimSpace(l) == ""
		switch {
		case strings.HasPrefix(l, "    ") && (cur != nil || prevBlank):
			if cur == nil {
				cur = &readmeBlock{line: n}
				if m, ok := strings.CutPrefix(strings.TrimSpace(lastText), readmeMarker); ok {
					m, ok = strings.CutSuffix(m, "-->")
					if !ok {
						return nil, fmt.Errorf("README.md:%d: marker without -->", n-2)
					}
					cur.marker = strings.TrimSpace(m)
					if cur.marker != "long" && !strings.HasPrefix(cur.marker, "skip ") {
						return nil, fmt.Errorf("README.md:%d: unknown marker %q (want long or skip REASON)", n-2, cur.marker)
					}
				}
			}
			cur.lines = append(cur.lines, l[4:])
		case blank && cur != nil:
			cur.lines = append(cur.lines, "")
		default:
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
		}
		if !blank {
			lastText = l
		}
		prevBlank = blank
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out, sc.Err()
}

// script is the block as a bash script that runs each line verbatim, in
// order, and stops at the first line that exits non-zero, naming it.
func (b readmeBlock) script() string {
	var s strings.Builder
	for i, l := range b.lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		fmt.Fprintf(&s, "%s\nrc=$?; if [ $rc -ne 0 ]; then echo \"README.md:%d exited $rc: %s\" >&2; exit 1; fi\n",
			l, b.line+i, strings.ReplaceAll(strings.ReplaceAll(l, `\`, `\\`), `"`, `\"`))
	}
	return s.String()
}

// TestREADMEBlocks: the parser finds indented blocks and their markers,
// and refuses an unknown marker.
func TestREADMEBlocks(t *testing.T) {
	bs, err := readmeBlocks("text\n\n    a\n    b\n\n    c\nmore\n<!-- readme-test: long -->\n\n    d\n\n<!-- readme-test: skip Go code -->\n\n    e\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 || bs[0].line != 3 || strings.Join(bs[0].lines, ",") != "a,b,,c" || bs[1].marker != "long" || bs[2].marker != "skip Go code" {
		t.Fatalf("%+v", bs)
	}
	if _, err := readmeBlocks("<!-- readme-test: sometimes -->\n\n    x\n"); err == nil {
		t.Fatal("an unknown marker was accepted")
	}
}

// TestREADMECommands runs every command block of README.md verbatim, as
// a new user would on a fresh machine: in a fresh copy of the repository
// (its tracked files only, so nothing a block creates exists before),
// with a qedtorture built from it on the PATH (repro.sh calls it), line
// by line, in README order, each block from the copy's root (what one
// block creates, the next finds). A line that exits non-zero fails the test, naming it. Blocks
// marked long run only with QEDTORTURE_README_LONG=1; blocks marked skip
// never. QEDTORTURE_README_BLOCKS (README line numbers of blocks) runs
// only those (to re-run a long block that failed).
func TestREADMECommands(t *testing.T) {
	racetest.Heavy(t)
	if testing.Short() {
		t.Skip("skipping in -short mode: builds and runs the README's commands")
	}
	for _, tool := range []string{"bash", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI is set and %s is required: %v", tool, err)
			}
			t.Skipf("skipping: %v", err)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "qedtorture")
	copyTracked(t, root, work)
	bin := filepath.Join(t.TempDir(), "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "qedtorture"), "./cmd/qedtorture")
	build.Dir = work
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	long := os.Getenv("QEDTORTURE_README_LONG") == "1"
	only := map[string]bool{} // QEDTORTURE_README_BLOCKS: re-run these blocks alone
	for _, l := range strings.Split(os.Getenv("QEDTORTURE_README_BLOCKS"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			only[l] = true
		}
	}
	ran := 0
	for _, b := range blocks {
		switch {
		case len(only) > 0 && !only[strconv.Itoa(b.line)]:
			continue
		case strings.HasPrefix(b.marker, "skip"):
			t.Logf("README.md:%d: not run (%s)", b.line, b.marker)
			continue
		case b.marker == "long" && !long:
			t.Logf("README.md:%d: not run (long; QEDTORTURE_README_LONG=1 runs it)", b.line)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		start := time.Now()
		cmd := exec.CommandContext(ctx, "bash", "-c", b.script())
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("README.md:%d: the block failed (%v):\n%s", b.line, err, lastLines(string(out), 40))
		}
		ran++
		t.Logf("README.md:%d: %d line(s) ran in %.1fs", b.line, len(b.lines), time.Since(start).Seconds())
	}
	if ran == 0 {
		var starts []string
		for _, b := range blocks {
			starts = append(starts, strconv.Itoa(b.line))
		}
		t.Fatalf("no README block ran (QEDTORTURE_README_BLOCKS=%q; blocks start at lines %s)",
			os.Getenv("QEDTORTURE_README_BLOCKS"), strings.Join(starts, ","))
	}
}

// copyTracked copies the files git tracks under root into dst.
func copyTracked(t *testing.T, root, dst string) {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v", root, err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if err != nil {
			continue // deleted in the working tree
		}
		to := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(l, to)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
