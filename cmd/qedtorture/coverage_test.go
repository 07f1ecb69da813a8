package main

import (
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestRunCoverageNeedsCoverBuild: --coverage in a binary that is not a
// coverage build is a usage error naming the build to use, before any work.
func TestRunCoverageNeedsCoverBuild(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("the test binary is a coverage build (go test -cover)")
	}
	r := runWant(t, 2, "run", "--coverage", t.TempDir(), "--iterations", "1")
	if !strings.Contains(r.stderr, "--coverage needs a coverage build of qedtorture (go build -cover -covermode=atomic -coverpkg=./cmd/qedtorture,./impl/qed,./props/check") {
		t.Errorf("stderr %q", r.stderr)
	}
	if strings.Contains(r.stdout, "done:") {
		t.Errorf("the campaign ran:\n%s", r.stdout)
	}
	r = runWant(t, 2, "repair", "--coverage", t.TempDir(), "--target", "impl/qed", "--images", "1", "--dir", t.TempDir())
	if !strings.Contains(r.stderr, "--coverage needs a coverage build") || strings.Contains(r.stdout, "plants") {
		t.Errorf("repair --coverage: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

// TestDefectOnly: the spans only a seeded defect runs are the bodies of
// ifs on defect(D) or a conjunction with it, the else of if !defect(D),
// and what follows a guard "if A || !defect(D) { return }"; a disjunction
// or a negated term elsewhere (a guard that does more than return)
// excludes nothing.
func TestDefectOnly(t *testing.T) {
	src := `package p
func f(a bool) {
	if defect(X) {
		g()
	}
	if a && defect(Y) {
		g()
	}
	if a || defect(Z) {
		g()
	}
	if a && !defect(W) {
		g()
	} else {
		g()
	}
	if !defect(V) {
		g()
	} else {
		g()
	}
	h := func() {
		if a || !defect(U) {
			return
		}
		g()
	}
	k := func() {
		if a || !defect(T) {
			g()
			return
		}
		g()
	}
}
`
	rs, err := defectOnly("p.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range rs {
		got = append(got, r.startLine)
	}
	if want := []int{3, 6, 19, 26}; !slices.Equal(got, want) {
		t.Errorf("excluded spans start at lines %v, want %v", got, want)
	}
}

// TestCoverageSummary: a text profile is summarized per package, blocks
// listed twice are reached if either listing reached them, excluded spans
// are left out of the count, and the blocks not reached are listed.
func TestCoverageSummary(t *testing.T) {
	prof := `mode: atomic
` + module + `/impl/qed/a.go:3.10,5.2 2 1
` + module + `/impl/qed/a.go:6.10,8.2 3 0
` + module + `/impl/qed/a.go:6.10,8.2 3 4
` + module + `/impl/qed/a.go:10.20,12.3 1 0
` + module + `/impl/qed/a.go:14.1,15.2 4 0
` + module + `/props/check/b.go:1.1,2.2 5 0
` + module + `/cmd/qedtorture/c.go:1.1,2.2 7 1
`
	bs, err := parseProfile(strings.NewReader(prof))
	if err != nil {
		t.Fatal(err)
	}
	excl := map[string][]lineRange{module + "/impl/qed/a.go": {{10, 15, 13, 1}}}
	s := summarize(bs, coveredPackages, excl)
	q := s[module+"/impl/qed"]
	if q.Statements != 9 || q.Covered != 5 || q.Excluded != 1 || int(q.Percent) != 55 {
		t.Errorf("impl/qed: %+v, want 9 statements, 5 covered, 1 excluded", q)
	}
	if c := s[module+"/props/check"]; c.Statements != 5 || c.Covered != 0 {
		t.Errorf("props/check: %+v", c)
	}
	if _, ok := s[module+"/cmd/qedtorture"]; ok {
		t.Error("cmd/qedtorture summarized")
	}
	if u := strings.Join(uncovered(bs, module+"/impl/qed", excl, nil), " "); u != "a.go:14-15 (4)" {
		t.Errorf("uncovered %q", u)
	}
	funcs := map[string][]namedSpan{module + "/impl/qed/a.go": {{"f", lineRange{1, 1, 9, 2}}, {"Image.g", lineRange{13, 1, 16, 2}}}}
	if u := strings.Join(uncovered(bs, module+"/impl/qed", excl, funcs), " "); u != "a.go:14-15 (4) Image.g" {
		t.Errorf("uncovered with function names %q", u)
	}
	if _, err := parseProfile(strings.NewReader("mode: set\nnonsense\n")); err == nil {
		t.Error("a malformed line was accepted")
	}
}

// TestFuncSpans: impl/qed's functions are found by file, methods named
// with their receiver type.
func TestFuncSpans(t *testing.T) {
	m, err := funcSpans(module + "/impl/qed")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range m[module+"/impl/qed/io.go"] {
		names[f.name] = true
	}
	for _, want := range []string{"Image.Map", "Image.ReadAt"} {
		if !names[want] {
			t.Errorf("io.go: %s not found among %v", want, names)
		}
	}
}

// TestDefectBlocks: impl/qed's seeded-defect catalogue files are excluded
// whole, its other files only where a defect guards the code, and no test
// file is read.
func TestDefectBlocks(t *testing.T) {
	m, err := defectBlocks(module + "/impl/qed")
	if err != nil {
		t.Fatal(err)
	}
	whole := []lineRange{{1, 1, 1 << 30, 1}}
	for _, f := range []string{"defects.go", "defects_off.go", "defects_on.go"} {
		if rs := m[module+"/impl/qed/"+f]; !reflect.DeepEqual(rs, whole) {
			t.Errorf("%s: %v, want the whole file", f, rs)
		}
	}
	guarded := 0
	for p, rs := range m {
		if strings.HasSuffix(p, "_test.go") {
			t.Errorf("test file %s read", p)
		}
		if !strings.Contains(path.Base(p), "defects") {
			guarded += len(rs)
		}
	}
	if guarded == 0 {
		t.Error("no span guarded by a seeded defect outside the catalogue")
	}
}
