package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestImageCommandsRefuseOwnChain (issue 18: every command refuses what
// would destroy data): writing into the source's own backing chain with
// convert -n, rebasing an image onto itself (safe and -u), committing
// into a file outside the chain, and dd onto a chain file are refused
// with a one-line error naming the file, and every file of the chain is
// left byte-identical.
func TestImageCommandsRefuseOwnChain(t *testing.T) {
	a := chainDir(t)
	files := []string{filepath.Join(a, "base.raw"), filepath.Join(a, "mid.qed"), filepath.Join(a, "top.qed")}
	before := snap(t, files...)
	t.Chdir(a)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"convert", "-n", "-O", "qed", "top.qed", "mid.qed"}, "mid.qed: is in the backing chain of the source"},
		{[]string{"convert", "-n", "-O", "raw", "top.qed", "base.raw"}, "base.raw: is in the backing chain of the source"},
		{[]string{"dd", "-O", "qed", "if=top.qed", "of=mid.qed"}, "mid.qed: is in the backing chain of the source"},
		{[]string{"rebase", "-b", "top.qed", "-F", "qed", "top.qed"}, "the backing file top.qed is the image itself"},
		{[]string{"rebase", "-u", "-b", "top.qed", "-F", "qed", "top.qed"}, "the backing file top.qed is the image itself"},
		{[]string{"commit", "-b", "top.qed", "top.qed"}, "top.qed is not in the backing chain"},
	} {
		r := runWant(t, exitRuntime, c.args...)
		if !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%q: stderr %q, want one line with %q", c.args, r.stderr, c.want)
		}
		before.unchanged(t, strings.Join(c.args, " "))
	}
}
