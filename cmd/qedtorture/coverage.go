package main

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/coverage"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/internal/campaign"
)

// Statement coverage of what a campaign reached (`run --coverage DIR`,
// issue 16). The qedtorture binary must be a coverage build of the
// measured packages (Go's -cover):
//
//	go build -cover -covermode=atomic -coverpkg=./cmd/qedtorture,./impl/qed,./props/check -o qedtorture-cover ./cmd/qedtorture
//
// (the main package must be in -coverpkg: its instrumentation registers
// the meta-data; atomic, because workers run in parallel).
//
// The meta-data is written into DIR when the campaign starts (which is
// also how a binary that is not a coverage build is refused, before any
// work), the counters when it ends (runtime/coverage), and `go tool covdata
// textfmt` turns them into a text profile (DIR/profile.txt) that this file
// reads: statements and statements reached per package, impl/qed's
// seeded-defect blocks excluded (defectOnly). The Go toolchain must be on
// PATH for the summary; without it the data stays in DIR for `go tool
// covdata percent -i DIR`.

// coveredPackages are the packages whose coverage a campaign reports.
var coveredPackages = []string{module + "/impl/qed", module + "/props/check"}

const module = "github.com/qedtorture/qedtorture"

// coverBuild is the command that makes a coverage build of qedtorture.
const coverBuild = "go build -cover -covermode=atomic -coverpkg=./cmd/qedtorture,./impl/qed,./props/check -o qedtorture-cover ./cmd/qedtorture"

// startCoverage writes the binary's coverage meta-data into dir; it fails
// with one line naming the build to use when the binary is not a coverage
// build.
func startCoverage(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--coverage %s: %w", dir, err)
	}
	if err := coverage.WriteMetaDir(dir); err != nil {
		return fmt.Errorf("--coverage needs a coverage build of qedtorture (%s): %v", coverBuild, err)
	}
	return nil
}

// finishCoverage writes the counters into dir, converts the data into
// dir/profile.txt and summarizes it per covered package. When impl/qed's
// sources are not found (the command runs outside the repository) it
// returns the summary with nothing excluded and an error saying so.
func finishCoverage(dir string) (map[string]campaign.CoverageStat, error) {
	if err := coverage.WriteCountersDir(dir); err != nil {
		return nil, fmt.Errorf("--coverage: writing the counters: %w", err)
	}
	prof := filepath.Join(dir, "profile.txt")
	if out, err := exec.Command("go", "tool", "covdata", "textfmt", "-i", dir, "-o", prof).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("--coverage: the data is in %s, but 'go tool covdata textfmt' failed (%v: %s); read it with go tool covdata percent -i %s", dir, err, strings.TrimSpace(string(out)), dir)
	}
	f, err := os.Open(prof)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	blocks, err := parseProfile(f)
	if err != nil {
		return nil, fmt.Errorf("--coverage: %s: %w", prof, err)
	}
	excl, err := defectBlocks(module + "/impl/qed")
	if err != nil {
		// Counted whole; the caller prints err after the summary.
		excl = nil
		err = fmt.Errorf("--coverage: impl/qed's seeded-defect blocks are counted, not excluded: its sources were not found (run from the repository: %v)", err)
	}
	var list strings.Builder
	for _, p := range coveredPackages {
		funcs, _ := funcSpans(p) // without the sources: no function names
		fmt.Fprintf(&list, "# %s: blocks not reached (file:first-last line (statements) function)\n", p)
		for _, u := range uncovered(blocks, p, excl, funcs) {
			fmt.Fprintln(&list, u)
		}
	}
	if werr := atomicfile.WriteFile(filepath.Join(dir, "uncovered.txt"), []byte(list.String()), 0o644); werr != nil {
		return nil, fmt.Errorf("--coverage: %w", werr)
	}
	return summarize(blocks, coveredPackages, excl), err
}

// coverBlock is one block of a text profile.
type coverBlock struct {
	file                string // import path / file name
	startLine, startCol int
	endLine, endCol     int
	stmts               int
	count               int64
}

// parseProfile reads a text coverage profile ("mode: set" and
// "file:l.c,l.c stmts count" lines); a block listed twice (several
// counter files) is reached if any listing reached it.
func parseProfile(r io.Reader) ([]coverBlock, error) {
	sc := bufio.NewScanner(r)
	idx := map[string]int{}
	var out []coverBlock
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "mode:") {
			continue
		}
		var b coverBlock
		colon := strings.LastIndex(s, ":")
		if colon < 0 {
			return nil, fmt.Errorf("line %d: no file name: %q", line, s)
		}
		b.file = s[:colon]
		if _, err := fmt.Sscanf(s[colon+1:], "%d.%d,%d.%d %d %d", &b.startLine, &b.startCol, &b.endLine, &b.endCol, &b.stmts, &b.count); err != nil {
			return nil, fmt.Errorf("line %d: %v: %q", line, err, s)
		}
		key := s[:strings.LastIndex(s, " ")]
		if i, ok := idx[key]; ok {
			out[i].count += b.count
			continue
		}
		idx[key] = len(out)
		out = append(out, b)
	}
	return out, sc.Err()
}

// lineRange is a span of a file, inclusive, in lines and columns.
type lineRange struct{ startLine, startCol, endLine, endCol int }

func (r lineRange) contains(b coverBlock) bool {
	before := func(l1, c1, l2, c2 int) bool { return l1 < l2 || l1 == l2 && c1 <= c2 }
	return before(r.startLine, r.startCol, b.startLine, b.startCol) && before(b.endLine, b.endCol, r.endLine, r.endCol)
}

// sourceFiles returns the directory of pkg (where `go list` finds it) and
// the names of its non-test Go files there.
func sourceFiles(pkg string) (dir string, names []string, err error) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list %s: %w", pkg, err)
	}
	dir = strings.TrimSpace(string(out))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, err
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			names = append(names, n)
		}
	}
	return dir, names, nil
}

// defectBlocks returns, per profile file name (import path / file), the
// spans of impl/qed that only a seeded defect runs (defectOnly) and the
// whole of its defects*.go files, reading the package's sources where `go
// list` finds them.
func defectBlocks(pkg string) (map[string][]lineRange, error) {
	dir, names, err := sourceFiles(pkg)
	if err != nil {
		return nil, err
	}
	m := map[string][]lineRange{}
	for _, n := range names {
		src, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		rs, err := defectOnly(n, src)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(n, "defects") {
			// The seeded defects' catalogue and hooks (defects.go, and
			// defects_off.go's constant false): the defects' own code.
			rs = []lineRange{{1, 1, 1 << 30, 1}}
		}
		if len(rs) > 0 {
			m[path.Join(pkg, n)] = rs
		}
	}
	return m, nil
}

// defectOnly returns the spans of a Go file that run only when a seeded
// defect is on (impl/qed's defect(D) is a constant false without the
// qeddefects tag): the body of an if whose condition is defect(D) or a
// conjunction with a defect(D) term, the else of an if whose condition is
// !defect(D) alone, and the statements of a block after a guard "if A ||
// !defect(D) || B { return }" (no else).
func defectOnly(name string, src []byte) ([]lineRange, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		return nil, err
	}
	span := func(n ast.Node) lineRange {
		s, e := fset.Position(n.Pos()), fset.Position(n.End())
		return lineRange{s.Line, s.Column, e.Line, e.Column}
	}
	var out []lineRange
	ast.Inspect(f, func(n ast.Node) bool {
		if b, ok := n.(*ast.BlockStmt); ok {
			// A guard "if ... || !defect(D) || ... { return }": the
			// statements after it run only with the defect on.
			for i, st := range b.List {
				if is, ok := st.(*ast.IfStmt); ok && i+1 < len(b.List) && is.Else == nil && returnsOnly(is.Body) && disjunctionWithNotDefect(is.Cond) {
					s, e := fset.Position(b.List[i+1].Pos()), fset.Position(b.Rbrace)
					out = append(out, lineRange{s.Line, s.Column, e.Line, e.Column})
					break
				}
			}
			return true
		}
		is, ok := n.(*ast.IfStmt)
		if !ok {
			return true
		}
		if conjunctionWithDefect(is.Cond) {
			out = append(out, span(is.Body))
		}
		if u, ok := unparen(is.Cond).(*ast.UnaryExpr); ok && u.Op == token.NOT && isDefectCall(u.X) && is.Else != nil {
			out = append(out, span(is.Else))
		}
		return true
	})
	return out, nil
}

func unparen(e ast.Expr) ast.Expr {
	for {
		p, ok := e.(*ast.ParenExpr)
		if !ok {
			return e
		}
		e = p.X
	}
}

func isDefectCall(e ast.Expr) bool {
	c, ok := unparen(e).(*ast.CallExpr)
	if !ok {
		return false
	}
	id, ok := c.Fun.(*ast.Ident)
	return ok && id.Name == "defect"
}

// returnsOnly: the block is a single return statement.
func returnsOnly(b *ast.BlockStmt) bool {
	if len(b.List) != 1 {
		return false
	}
	_, ok := b.List[0].(*ast.ReturnStmt)
	return ok
}

// disjunctionWithNotDefect: e is !defect(D), or A || B whose terms include
// one.
func disjunctionWithNotDefect(e ast.Expr) bool {
	e = unparen(e)
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.NOT && isDefectCall(u.X) {
		return true
	}
	b, ok := e.(*ast.BinaryExpr)
	return ok && b.Op == token.LOR && (disjunctionWithNotDefect(b.X) || disjunctionWithNotDefect(b.Y))
}

// conjunctionWithDefect: e is defect(D), or A && B whose terms include one.
func conjunctionWithDefect(e ast.Expr) bool {
	e = unparen(e)
	if isDefectCall(e) {
		return true
	}
	b, ok := e.(*ast.BinaryExpr)
	return ok && b.Op == token.LAND && (conjunctionWithDefect(b.X) || conjunctionWithDefect(b.Y))
}

// summarize counts statements and statements reached per package (the
// profile's file names are import path / file), leaving out the blocks
// inside excluded spans.
func summarize(blocks []coverBlock, pkgs []string, excl map[string][]lineRange) map[string]campaign.CoverageStat {
	out := map[string]campaign.CoverageStat{}
	for _, p := range pkgs {
		out[p] = campaign.CoverageStat{}
	}
	for _, b := range blocks {
		p := path.Dir(b.file)
		st, ok := out[p]
		if !ok {
			continue
		}
		skip := false
		for _, r := range excl[b.file] {
			if r.contains(b) {
				skip = true
				break
			}
		}
		switch {
		case skip:
			st.Excluded += b.stmts
		default:
			st.Statements += b.stmts
			if b.count > 0 {
				st.Covered += b.stmts
			}
		}
		out[p] = st
	}
	for p, st := range out {
		if st.Statements > 0 {
			st.Percent = 100 * float64(st.Covered) / float64(st.Statements)
		}
		out[p] = st
	}
	return out
}

// namedSpan is a function's span in its file.
type namedSpan struct {
	name string
	lineRange
}

// funcSpans returns, per profile file name (import path / file), the
// spans of the functions of pkg's non-test files, named as Func or
// Type.Method.
func funcSpans(pkg string) (map[string][]namedSpan, error) {
	dir, names, err := sourceFiles(pkg)
	if err != nil {
		return nil, err
	}
	m := map[string][]namedSpan{}
	for _, n := range names {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, 0)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) > 0 {
				t := fd.Recv.List[0].Type
				if st, ok := t.(*ast.StarExpr); ok {
					t = st.X
				}
				if ix, ok := t.(*ast.IndexExpr); ok {
					t = ix.X
				}
				if id, ok := t.(*ast.Ident); ok {
					name = id.Name + "." + name
				}
			}
			s, e := fset.Position(fd.Pos()), fset.Position(fd.End())
			m[path.Join(pkg, n)] = append(m[path.Join(pkg, n)], namedSpan{name, lineRange{s.Line, s.Column, e.Line, e.Column}})
		}
	}
	return m, nil
}

// uncovered lists the blocks of pkg no run reached (excluded spans left
// out), as file:line-line (statements), followed by the name of the
// function holding the block when funcs knows it, in file and line order.
func uncovered(blocks []coverBlock, pkg string, excl map[string][]lineRange, funcs map[string][]namedSpan) []string {
	var bs []coverBlock
	for _, b := range blocks {
		if path.Dir(b.file) != pkg || b.count > 0 {
			continue
		}
		skip := false
		for _, r := range excl[b.file] {
			skip = skip || r.contains(b)
		}
		if !skip {
			bs = append(bs, b)
		}
	}
	sort.Slice(bs, func(i, j int) bool {
		if bs[i].file != bs[j].file {
			return bs[i].file < bs[j].file
		}
		return bs[i].startLine < bs[j].startLine
	})
	var out []string
	for _, b := range bs {
		line := path.Base(b.file) + ":" + strconv.Itoa(b.startLine) + "-" + strconv.Itoa(b.endLine) + " (" + strconv.Itoa(b.stmts) + ")"
		for _, f := range funcs[b.file] {
			if f.contains(b) {
				line += " " + f.name
				break
			}
		}
		out = append(out, line)
	}
	return out
}

// printCoverage prints the summary lines of cov (nil: none).
func printCoverage(w io.Writer, cov map[string]campaign.CoverageStat, dir string) {
	for _, p := range slices.Sorted(maps.Keys(cov)) {
		c := cov[p]
		fmt.Fprintf(w, "coverage: %s: %.1f%% of %d statements reached", strings.TrimPrefix(p, module+"/"), c.Percent, c.Statements)
		if c.Excluded > 0 {
			fmt.Fprintf(w, " (%d statements of seeded defects excluded)", c.Excluded)
		}
		fmt.Fprintln(w)
	}
	if cov != nil {
		fmt.Fprintf(w, "coverage: data, profile.txt and the blocks not reached (uncovered.txt) in %s; runs into the same directory add up\n", dir)
	}
}
