package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageErrors: every malformed command line exits 2 with one line on
// stderr naming the problem, and touches nothing.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "u.qed")
	for _, c := range []struct {
		args []string
		want string // in the message
	}{
		{nil, "missing command"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"create", "-x", img, "1M"}, "unknown shorthand flag"},
		{[]string{"create", "--nope", img, "1M"}, "unknown flag"},
		{[]string{"create"}, "missing argument"},
		{[]string{"create", img}, "missing SIZE"},
		{[]string{"create", img, "1M", "extra"}, "too many arguments"},
		{[]string{"create", img, "junk"}, `invalid image size "junk"`},
		{[]string{"create", img, "-1"}, "unknown shorthand flag"}, // -1 parses as a flag, as with qemu-img
		{[]string{"create", img, "--", "-1"}, "negative"},
		{[]string{"create", img, "1000"}, "multiple of 512"},
		{[]string{"create", img, "99999999999999999999"}, "too large"},
		{[]string{"create", img, "16E"}, "too large"},
		{[]string{"create", img, "1.5G"}, "invalid image size"},
		{[]string{"create", "-o", "cluster_size=3000", img, "1M"}, "cluster_size"},
		{[]string{"create", "-o", "cluster_size=128M", img, "1M"}, "cluster_size"},
		{[]string{"create", "-o", "cluster_size=2K", img, "1M"}, "cluster_size"},
		{[]string{"create", "-o", "table_size=3", img, "1M"}, "table_size"},
		{[]string{"create", "-o", "table_size=32", img, "1M"}, "table_size"},
		{[]string{"create", "-o", "table_size=0", img, "1M"}, "table_size"},
		{[]string{"create", "-o", "compat=1.1", img, "1M"}, `unknown option "compat"`},
		{[]string{"create", "-o", "cluster_size", img, "1M"}, "key=value"},
		{[]string{"create", "-o", "table_size=2,table_size=4", img, "1M"}, "given twice"},
		{[]string{"create", "-F", "raw", img, "1M"}, "needs a backing file"},
		{[]string{"create", "-b", "x", "-F", "vmdk", img, "1M"}, "raw or qed"},
		{[]string{"create", "-b", "x", "-o", "backing_file=y", img, "1M"}, `-b "x" and -o backing_file="y" disagree`},
		{[]string{"create", "-b", "x", "-F", "raw", "-o", "backing_fmt=qed", img, "1M"}, `-F "raw" and -o backing_fmt="qed" disagree`},
		{[]string{"convert", "-O", "qed", "-B", "x", "-o", "backing_file=y", img, img + ".x"}, `-B "x" and -o backing_file="y" disagree`},
		{[]string{"convert", "-O", "qed", "-F", "raw", img, img + ".x"}, "-F raw needs a backing file (-B)"},
		{[]string{"rebase", "-b", "", "-F", "raw", img}, "-F raw needs a backing file (-b)"},
		{[]string{"create", "-f", "qcow2", img, "1M"}, "qed"},
		// 4 KiB clusters, 1-cluster tables: the maximum is 512*512*4K = 1 GiB.
		{[]string{"create", "-o", "cluster_size=4K,table_size=1", img, "2G"}, "at most"},
		{[]string{"info"}, "missing argument"},
		{[]string{"info", "--output", "xml", img}, `invalid output format "xml"`},
		{[]string{"check", "-r", "some", img}, "leaks or all"},
		{[]string{"check", "--output=yaml", img}, "human or json"},
		{[]string{"map", img, img}, "too many arguments"},
		{[]string{"convert", img}, "missing argument"},
		{[]string{"convert", "-O", "vmdk", img, img + ".x"}, "raw or qed"},
		{[]string{"convert", "-f", "qcow2", img, img + ".x"}, "raw or qed"},
		{[]string{"dd", "-f", "qcow2", "if=" + img, "of=" + img + ".x"}, "source format (-f)"},
		{[]string{"dd", "-O", "vmdk", "if=" + img, "of=" + img + ".x"}, "output format (-O)"},
		{[]string{"convert", "-O", "raw", "-o", "cluster_size=4K", img, img + ".x"}, "only to -O qed"},
	} {
		r := qt(t, c.args...)
		r.wantExit(t, exitUsage, c.args...)
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("qedtorture %q: stderr %q does not say %q", c.args, r.stderr, c.want)
		}
		if r.stdout != "" {
			t.Errorf("qedtorture %q: printed %q on stdout", c.args, r.stdout)
		}
	}
	if _, err := filepath.Glob(img); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("usage errors left files behind: %v", m)
	}
}

// TestRuntimeErrors: missing and malformed files exit 1 with one line that
// names the file.
func TestRuntimeErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.qed")
	notQED := filepath.Join(dir, "text.qed")
	writeFile(t, notQED, []byte("this is not a QED image, just text long enough for a header..........."))
	short := filepath.Join(dir, "short.qed")
	writeFile(t, short, []byte("QED\x00"))
	for _, args := range [][]string{
		{"info", missing},
		{"info", notQED},
		{"info", short},
		{"check", missing},
		{"check", notQED},
		{"check", "-r", "all", notQED},
		{"map", missing},
		{"map", notQED},
		{"convert", missing, filepath.Join(dir, "out.raw")},
		{"convert", "-f", "qed", notQED, filepath.Join(dir, "out.raw")},
		{"create", filepath.Join(dir, "no", "such", "dir.qed"), "1M"},
		{"create", "-b", "absent.raw", filepath.Join(dir, "ov.qed")},
	} {
		r := qt(t, args...)
		r.wantExit(t, exitRuntime, args...)
		named := false
		for _, a := range args[1:] {
			named = named || strings.Contains(r.stderr, filepath.Base(a))
		}
		if !named {
			t.Errorf("qedtorture %q: error %q names no file", args, r.stderr)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"create", "--help"}, {"check", "-h"}, {"help", "map"}} {
		r := runWant(t, exitOK, args...)
		if !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("qedtorture %q: no usage in %q", args, r.stdout)
		}
	}
}

// TestVersion: --version prints the version and exits 0.
func TestVersion(t *testing.T) {
	r := runWant(t, 0, "--version")
	if !strings.HasPrefix(r.stdout, "qedtorture version ") || !strings.Contains(r.stdout, "go1") {
		t.Fatalf("--version printed %q", r.stdout)
	}
}
