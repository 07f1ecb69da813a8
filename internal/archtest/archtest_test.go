package archtest

import (
	"bufio"
	"bytes"
	"errors"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/qedtorture/qedtorture"

const (
	gopter  = "github.com/leanovate/gopter"
	afero   = "github.com/spf13/afero"
	testPkg = "testing"
)

// layout is the "Package layout" table of docs/architecture.md, Part 2: the
// project packages (relative to the module) each package may import.
// "*" stands for every package of the layout except the ones listed in
// notAllowed.
var layout = map[string][]string{
	"model":                  nil,
	"crashsim":               nil,
	"faultfs":                nil,
	"props/check":            nil,
	"props/target":           nil,
	"props/workload":         {"model", "props/check", "props/target"},
	"props/oracle":           {"crashsim", "model", "props/check", "props/target"},
	"props/statemachine":     {"crashsim", "faultfs", "model", "props/oracle", "props/target", "props/workload"},
	"props":                  {"props/check", "props/target", "props/workload", "props/oracle", "props/statemachine", "internal/campaign"},
	"internal/campaign":      {"crashsim", "faultfs", "model", "props/check", "props/oracle", "props/target", "props/workload", "internal/atomicfile", "internal/childrss"},
	"internal/campaign/html": {"internal/campaign", "props/check", "internal/atomicfile"},
	"internal/qemuio":        {"props/target", "internal/qemutool", "internal/childrss"},
	"internal/strace":        {"crashsim"},
	"impl/qed":               {"internal/imagelock"},
	"impl/qed/interop":       {"impl/qed"},
	"internal/qemutool":      {"internal/imagelock", "internal/cleanup", "internal/childrss"},
	"internal/childrss":      nil,
	"internal/imagelock":     nil,
	"internal/cleanup":       nil,
	"internal/tmpfstest":     nil,
	"internal/testseed":      nil,
	"internal/racetest":      nil,
	"internal/iocount":       {"crashsim"},
	"internal/atomicfile":    {"internal/cleanup"},
	"internal/archtest":      nil,
	"impl/qed/qedtarget":     {"impl/qed", "props/target", "faultfs"},
	"impl/qemu":              {"internal/campaign", "internal/qemuio", "internal/qemutool", "internal/strace", "internal/atomicfile", "internal/cleanup", "crashsim", "model", "props/check", "props/oracle", "props/target", "props/workload"},
	"impl/blackbox":          {"internal/campaign", "internal/qemuio", "internal/qemutool", "internal/strace", "crashsim", "model", "props/check", "props/oracle", "props/target", "props/workload"},
	"cmd/qedtorture":         {"*"},
}

// notAllowed is what "*" leaves out, per package.
var notAllowed = map[string][]string{
	"cmd/qedtorture": {"props", "props/statemachine"},
}

// outside are the imports from outside the project that are restricted:
// only the packages listed may import them in non-test code. Principle 4:
// testing stays behind the conformance door; gopter (which imports testing)
// only in the state machine.
var outside = map[string][]string{
	testPkg: {"props"},
	gopter:  {"props/statemachine"},
}

// stdOnly are packages that may import nothing but the standard library
// (principle 3: the independent checker), and the third-party modules each
// other such package may import besides.
var stdOnly = map[string][]string{
	"props/check":  nil,
	"props/target": {afero},
}

// exception is one violation of today, and the migration step that removes
// it. The test fails if it no longer occurs.
type exception struct {
	from, to string // to: a project package (relative) or a full import path
	step     string
}

// unplaced are today's packages that are not in the layout.
var unplaced = map[string]string{}

// edges are today's imports that the layout does not allow.
var edges = []exception{}

// cmdDeps are today's forbidden packages in cmd/qedtorture's transitive
// dependencies: none since step 5 (cmd reaches the oracle, the checker,
// the door and the executor without importing props, so it links neither
// testing nor gopter).
var cmdDeps = map[string]string{}

// root is the module's directory (this package is internal/archtest).
func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(r, "go.mod")); err != nil || !bytes.Contains(b, []byte("module "+module+"\n")) {
		t.Fatalf("%s is not the module %s's root (go.mod: %v)", r, module, err)
	}
	return r
}

// skipDir reports directories the go tool ignores (and .git).
func skipDir(name string) bool {
	return name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// imports returns, per package directory (relative, slash-separated), the
// imports of its non-test Go files. Build constraints are ignored on
// purpose: every file of every configuration (GOOS, the qeddefects tag)
// counts.
func imports(t *testing.T, r string) map[string]map[string]bool {
	t.Helper()
	pkgs := map[string]map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != r && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		if pkgs[rel] == nil {
			pkgs[rel] = map[string]bool{}
		}
		for _, s := range f.Imports {
			path, _ := strconv.Unquote(s.Path.Value)
			pkgs[rel][path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// violations lists every import of today that the rules above forbid, as
// "from -> to" (to relative for project packages).
func violations(pkgs map[string]map[string]bool) (bad map[string]bool, badPkgs map[string]bool) {
	bad, badPkgs = map[string]bool{}, map[string]bool{}
	for pkg, imps := range pkgs {
		allowed, placed := layout[pkg]
		if !placed {
			badPkgs[pkg] = true
		}
		ok := map[string]bool{}
		for _, a := range allowed {
			if a == "*" {
				for p := range layout {
					ok[p] = true
				}
				for _, n := range notAllowed[pkg] {
					delete(ok, n)
				}
			} else {
				ok[a] = true
			}
		}
		for imp := range imps {
			if rel, ok2 := strings.CutPrefix(imp, module+"/"); ok2 {
				if placed && !ok[rel] {
					bad[pkg+" -> "+rel] = true
				}
				continue
			}
			for restricted, who := range outside {
				if imp == restricted || strings.HasPrefix(imp, restricted+"/") {
					if !contains(who, pkg) {
						bad[pkg+" -> "+imp] = true
					}
				}
			}
			if extra, std := stdOnly[pkg]; std && !isStd(imp) && !contains(extra, imp) {
				bad[pkg+" -> "+imp] = true
			}
		}
	}
	return bad, badPkgs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestImports: every package imports only what the target layout allows,
// except today's known exceptions, each of which still occurs.
func TestImports(t *testing.T) {
	r := root(t)
	pkgs := imports(t, r)
	for _, must := range []string{"crashsim", "faultfs", "model", "cmd/qedtorture", "impl/qed"} {
		if pkgs[must] == nil {
			t.Fatalf("package %s not found under %s: the walk is broken", must, r)
		}
	}
	bad, badPkgs := violations(pkgs)
	check(t, "import", bad, func() map[string]string {
		m := map[string]string{}
		for _, e := range edges {
			m[e.from+" -> "+e.to] = e.step
		}
		return m
	}())
	check(t, "package outside the layout", badPkgs, unplaced)
}

// check reports each found violation that is not a known exception, and
// each known exception that was not found.
func check(t *testing.T, what string, found map[string]bool, known map[string]string) {
	t.Helper()
	for _, v := range sorted(found) {
		if _, ok := known[v]; !ok {
			t.Errorf("%s %s: not allowed by docs/architecture.md's package layout (change the code, or the layout and this test's table)", what, v)
		}
	}
	for _, k := range sortedKeys(known) {
		if !found[k] {
			t.Errorf("known exception %q (%s) no longer occurs: delete it from internal/archtest", k, known[k])
		}
	}
}

func sorted(m map[string]bool) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func sortedKeys(m map[string]string) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// TestRules checks the checker: a planted edge of each kind is reported.
func TestRules(t *testing.T) {
	pkgs := map[string]map[string]bool{
		"model":              {module + "/crashsim": true},
		"props/check":        {afero: true, "io": true},
		"internal/campaign":  {module + "/impl/qed": true, testPkg: true},
		"cmd/qedtorture":     {module + "/props": true, module + "/crashsim": true},
		"props/statemachine": {gopter: true},
		"props":              {testPkg: true},
		"internal/newthing":  {"fmt": true},
	}
	bad, badPkgs := violations(pkgs)
	want := []string{
		"cmd/qedtorture -> props",
		"internal/campaign -> impl/qed",
		"internal/campaign -> testing",
		"model -> crashsim",
		"props/check -> " + afero,
	}
	if got := sorted(bad); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !badPkgs["internal/newthing"] || len(badPkgs) != 1 {
		t.Errorf("unplaced packages %v, want internal/newthing", badPkgs)
	}
}

// TestCmdDeps: cmd/qedtorture's transitive dependencies (default build and
// the qeddefects tag) contain neither testing nor gopter, except today's
// known exceptions.
func TestCmdDeps(t *testing.T) {
	r := root(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	found := map[string]bool{}
	for _, tags := range []string{"", "qeddefects"} {
		cmd := exec.Command(goTool, "list", "-deps", "-tags", tags, "./cmd/qedtorture")
		cmd.Dir = r
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps -tags %q ./cmd/qedtorture: %v\n%s", tags, err, stderr.String())
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			n++
			p := sc.Text()
			if p == testPkg || p == gopter || strings.HasPrefix(p, gopter+"/") {
				found[p] = true
			}
		}
		if n < 20 {
			t.Fatalf("go list -deps -tags %q ./cmd/qedtorture listed %d packages: the listing is broken", tags, n)
		}
	}
	check(t, "cmd/qedtorture dependency", found, cmdDeps)
}

// citation matches a reference to a document outside the repository: the
// shared documents by name, or a path on the machine the project was
// written on. (Written with escapes and classes so that this file does not
// match itself.)
var citation = regexp.MustCompile(`(^|[^A-Za-z0-9_.-])(crash-testing|qed-format|style)\.md|[/]work[/]|shared[/]docs`)

// TestNoOutsideCitations: no file of the repository cites a document
// outside it. A document name is allowed once a file of that name is in the
// repository. The files are git's (tracked and staged: not the artifacts a
// campaign leaves in a working tree); without git, every file under the
// root but .git.
func TestNoOutsideCitations(t *testing.T) {
	r := root(t)
	paths := repoFiles(t, r)
	names := map[string]bool{}
	for _, rel := range paths {
		names[path.Base(rel)] = true
	}
	type hit struct{ file, line, what string }
	var hits []hit
	files := 0
	for _, rel := range paths {
		b, err := os.ReadFile(filepath.Join(r, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 {
			continue // binary
		}
		files++
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range citation.FindAllStringSubmatch(line, -1) {
				what := m[0]
				if m[2] != "" {
					what = m[2] + ".md"
				}
				hits = append(hits, hit{rel, strconv.Itoa(i + 1), what})
			}
		}
	}
	if files < 50 {
		t.Fatalf("only %d text files under %s: the listing is broken", files, r)
	}
	for _, h := range hits {
		if strings.HasSuffix(h.what, ".md") && names[h.what] {
			continue
		}
		t.Errorf("%s:%s cites %q, a document outside the repository: state the fact here instead", h.file, h.line, h.what)
	}
}

// repoFiles lists the repository's files, slash-separated and relative to
// r: git ls-files when git is there, else a walk skipping .git.
func repoFiles(t *testing.T, r string) []string {
	t.Helper()
	if g, err := exec.LookPath("git"); err == nil {
		cmd := exec.Command(g, "ls-files", "-z")
		cmd.Dir = r
		if out, err := cmd.Output(); err == nil && len(out) > 0 {
			return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		}
	}
	var paths []string
	err := filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" { // a directory, or a worktree's link file
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(r, p)
			paths = append(paths, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestCitationPattern(t *testing.T) {
	for s, want := range map[string]bool{
		"see crash-" + "testing.md":  true,
		"(qed-" + "format.md)":       true,
		"sty" + "le.md says":         true,
		"lifestyle.md":               false,
		"docs/format.md":             false,
		"/wor" + "k/shared/x":        true,
		"shared" + "/docs/style.txt": true,
		"network/":                   false,
	} {
		if got := citation.MatchString(s); got != want {
			t.Errorf("citation.MatchString(%q) = %v, want %v", s, got, want)
		}
	}
}
