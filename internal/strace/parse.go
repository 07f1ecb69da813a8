package strace

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
)

// Prompt is what a qemu-io-speaking program prints when it waits for a
// command.
const Prompt = "qemu-io> "

// ErrUnrecorded is wrapped by every *UnrecordedError.
var ErrUnrecorded = errors.New("strace: the program changed a recorded file in a way system-call recording cannot see")

// UnrecordedError names a call that changed (or could change) a recorded
// file in a way the recorder cannot turn into a trace.
type UnrecordedError struct {
	Call string // the system call, e.g. "mmap"
	Path string // the file, relative to the recorded directory ("" if unknown)
	Why  string
	Line int // line of strace's output (1-based), 0 when found by Verify
}

func (e *UnrecordedError) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf(" (strace output line %d)", e.Line)
	}
	p := ""
	if e.Path != "" {
		p = " on " + e.Path
	}
	return fmt.Sprintf("strace: %s%s cannot be recorded: %s%s", e.Call, p, e.Why, where)
}

func (e *UnrecordedError) Unwrap() error { return ErrUnrecorded }

// ParseError is strace output this package does not understand.
type ParseError struct {
	Line int
	Text string
	Msg  string
}

func (e *ParseError) Error() string {
	t := e.Text
	if len(t) > 120 {
		t = t[:120] + "..."
	}
	return fmt.Sprintf("strace: strace output line %d: %s: %q", e.Line, e.Msg, t)
}

// Recording is what one recorded run of a program did to the files of a
// directory.
type Recording struct {
	// Trace holds the operations on the directory's files, with paths
	// relative to it ("/img.qed") and File 0 (resolved by path at replay),
	// replayable on the directory's files as they were before the run.
	Trace *crashsim.Trace
	// Prompts are the trace positions at which the program printed its
	// prompt (waited for a command), in order.
	Prompts []int64
	// IOUring is set when the program set up an io_uring (its I/O through
	// it, if any, is not in Trace: Verify finds it).
	IOUring bool
	// Calls counts the recorded calls per system call name.
	Calls map[string]int
	// Files are the recorded directory's files (relative slash paths) and
	// their lengths as the trace leaves them: Options.Files of a program
	// run next on the same directory (Sequence).
	Files map[string]int64
}

// Options configure Parse.
type Options struct {
	// Dir is the recorded directory (absolute): calls on files under it
	// are recorded.
	Dir string
	// Cwd is the program's working directory, for relative paths of
	// calls without a directory descriptor (rename, unlink, truncate);
	// "" = Dir.
	Cwd string
	// Files are the files (relative slash paths, "/img.qed") that exist
	// in Dir when the run starts, with their sizes; Dirs its
	// subdirectories ("/" is Dir itself).
	Files map[string]int64
	Dirs  map[string]bool
}

// call is one completed system call.
type call struct {
	name  string
	args  string // between the parentheses
	ret   string // after " = "
	entry int    // line index of the entry (for syncs)
	exit  int    // line index of the exit
	line  int    // 1-based line number of the exit, for messages
}

// Parse reads strace's output (as Command makes it) and returns the
// recording of the calls on files under o.Dir.
func Parse(r io.Reader, o Options) (*Recording, error) {
	calls, err := readCalls(r)
	if err != nil {
		return nil, err
	}
	// Syncs take effect at their entry, everything else at its exit.
	pos := func(c *call) int {
		if isSync(c.name) {
			return 2 * c.entry
		}
		return 2*c.exit + 1
	}
	sort.SliceStable(calls, func(i, j int) bool { return pos(&calls[i]) < pos(&calls[j]) })
	p := &parser{o: o, rec: &Recording{Trace: &crashsim.Trace{}, Calls: map[string]int{}}, files: map[string]int64{}, dirs: map[string]bool{"/": true}}
	if p.o.Cwd == "" {
		p.o.Cwd = o.Dir
	}
	for f, n := range o.Files {
		p.files[f] = n
	}
	for d := range o.Dirs {
		p.dirs[d] = true
	}
	for i := range calls {
		if err := p.call(&calls[i]); err != nil {
			return nil, err
		}
	}
	p.rec.Files = p.files
	return p.rec, nil
}

func isSync(name string) bool {
	switch name {
	case "fsync", "fdatasync", "syncfs", "sync":
		return true
	}
	return false
}

// readCalls joins unfinished and resumed lines into completed calls.
func readCalls(r io.Reader) ([]call, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 8*MaxData+(1<<20))
	type pending struct {
		name, args string
		entry      int
	}
	unfinished := map[string]pending{}
	var calls []call
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		pid, rest, ok := strings.Cut(line, " ")
		if !ok {
			return nil, &ParseError{Line: n, Text: line, Msg: "no pid"}
		}
		rest = strings.TrimLeft(rest, " ")
		switch {
		case strings.HasPrefix(rest, "---"), strings.HasPrefix(rest, "+++"):
			continue
		case strings.HasPrefix(rest, "<... "):
			// "<... NAME resumed>ARGS) = RET"
			hdr, tail, ok := strings.Cut(rest[5:], " resumed>")
			if !ok {
				return nil, &ParseError{Line: n, Text: line, Msg: "resumed call without \" resumed>\""}
			}
			pd, ok := unfinished[pid]
			if !ok || pd.name != hdr {
				return nil, &ParseError{Line: n, Text: line, Msg: "resumed call that was not unfinished"}
			}
			delete(unfinished, pid)
			args, ret, ok := splitRet(tail)
			if !ok {
				if strings.HasSuffix(tail, "<unfinished ...>") || strings.Contains(tail, "?") {
					continue // the process died in the call
				}
				return nil, &ParseError{Line: n, Text: line, Msg: "no return value"}
			}
			calls = append(calls, call{name: pd.name, args: pd.args + args, ret: ret, entry: pd.entry, exit: n, line: n})
		default:
			open := strings.IndexByte(rest, '(')
			if open <= 0 {
				return nil, &ParseError{Line: n, Text: line, Msg: "no system call"}
			}
			name := rest[:open]
			body := rest[open+1:]
			if strings.HasSuffix(body, " <unfinished ...>") {
				unfinished[pid] = pending{name: name, args: strings.TrimSuffix(body, " <unfinished ...>"), entry: n}
				continue
			}
			args, ret, ok := splitRet(body)
			if !ok {
				if strings.HasSuffix(body, "= ?") {
					continue // exit, exit_group
				}
				return nil, &ParseError{Line: n, Text: line, Msg: "no return value"}
			}
			calls = append(calls, call{name: name, args: args, ret: ret, entry: n, exit: n, line: n})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("strace: reading strace output: %w", err)
	}
	return calls, nil
}

// splitRet splits "ARGS) = RET" (strace pads resumed calls with spaces
// before " = ") at the last " = " that follows a ')'.
func splitRet(s string) (args, ret string, ok bool) {
	i := strings.LastIndex(s, " = ")
	if i < 0 {
		return "", "", false
	}
	head := strings.TrimRight(s[:i], " ")
	if !strings.HasSuffix(head, ")") {
		return "", "", false
	}
	return head[:len(head)-1], strings.TrimSpace(s[i+3:]), true
}

// splitArgs splits a call's arguments at the top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth := 0
	start := 0
	inStr, inFd := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
		case inFd:
			if c == '>' {
				inFd = false
			}
		case c == '"':
			inStr = true
		case c == '<':
			inFd = true
		case c == '[' || c == '{' || c == '(':
			depth++
		case c == ']' || c == '}' || c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" || len(out) > 0 {
		out = append(out, t)
	}
	return out
}

// unhex decodes a -xx string ("\x41\x42"); truncated reports strace's
// "..." after it (the data was longer than -s).
func unhex(s string) (b []byte, truncated bool, err error) {
	if strings.HasSuffix(s, "...") {
		truncated = true
		s = strings.TrimSuffix(s, "...")
	}
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return nil, truncated, fmt.Errorf("not a string: %.40q", s)
	}
	s = s[1 : len(s)-1]
	if len(s)%4 != 0 {
		return nil, truncated, fmt.Errorf("not a -xx string: %.40q", s)
	}
	b = make([]byte, len(s)/4)
	for i := 0; i < len(b); i++ {
		q := s[4*i : 4*i+4]
		if q[0] != '\\' || q[1] != 'x' {
			return nil, truncated, fmt.Errorf("not a -xx string: %.40q", s)
		}
		if _, err := hex.Decode(b[i:i+1], []byte(q[2:])); err != nil {
			return nil, truncated, err
		}
	}
	return b, truncated, nil
}

// fdPath returns the path of a decoded descriptor ("3<\x2f...>",
// "AT_FDCWD<\x2f...>"), or "" when it has none.
func fdPath(a string) (string, error) {
	i := strings.IndexByte(a, '<')
	if i < 0 || !strings.HasSuffix(a, ">") {
		return "", nil
	}
	inner := a[i+1 : len(a)-1]
	if !strings.HasPrefix(inner, `\x`) {
		return "", nil // anon_inode:[...], socket:[...]
	}
	b, _, err := unhex(`"` + inner + `"`)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

type parser struct {
	o     Options
	rec   *Recording
	files map[string]int64 // existing files (relative) and their sizes
	dirs  map[string]bool
}

// rel returns p relative to the recorded directory ("/x"), or "".
func (p *parser) rel(abs string) string {
	if strings.HasSuffix(abs, " (deleted)") {
		return ""
	}
	if !path.IsAbs(abs) {
		return ""
	}
	r, err := filepath.Rel(p.o.Dir, abs)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return ""
	}
	return path.Clean("/" + filepath.ToSlash(r))
}

// resolve returns the absolute path of a path argument given its
// directory descriptor argument ("" for AT_FDCWD-less calls).
func (p *parser) resolve(dirfd, name string) (string, error) {
	b, _, err := unhex(name)
	if err != nil {
		return "", err
	}
	s := string(b)
	if path.IsAbs(s) {
		return path.Clean(s), nil
	}
	base := p.o.Cwd
	if dirfd != "" {
		d, err := fdPath(dirfd)
		if err != nil {
			return "", err
		}
		if d != "" {
			base = d
		}
	}
	return path.Join(base, s), nil
}

func (p *parser) add(o crashsim.Op) {
	o.Index = int64(len(p.rec.Trace.Ops))
	p.rec.Trace.Ops = append(p.rec.Trace.Ops, o)
	switch o.Kind {
	case crashsim.OpWrite:
		if e := o.Off + int64(len(o.Data)); e > p.files[o.Path] {
			p.files[o.Path] = e
		}
	case crashsim.OpTruncate:
		p.files[o.Path] = o.Size
	case crashsim.OpCreate:
		p.files[o.Path] = 0
	case crashsim.OpRemove:
		delete(p.files, o.Path)
	case crashsim.OpRename:
		p.files[o.NewPath] = p.files[o.Path]
		delete(p.files, o.Path)
	}
}

func (p *parser) call(c *call) error {
	failed := strings.HasPrefix(c.ret, "-1 ") || c.ret == "-1"
	args := splitArgs(c.args)
	bad := func(msg string) error {
		return &ParseError{Line: c.line, Text: c.name + "(" + c.args + ") = " + c.ret, Msg: msg}
	}
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	// file returns the recorded file of descriptor argument i, or "".
	file := func(i int) (string, error) {
		a, err := fdPath(arg(i))
		if err != nil {
			return "", bad(err.Error())
		}
		return p.rel(a), nil
	}
	refuse := func(f, why string) error {
		return &UnrecordedError{Call: c.name, Path: f, Why: why, Line: c.line}
	}
	retN := func() (int64, error) {
		v, err := strconv.ParseInt(strings.Fields(c.ret)[0], 10, 64)
		if err != nil {
			return 0, bad("return value is not a count")
		}
		return v, nil
	}
	switch c.name {
	case "write":
		f, err := file(0)
		if err != nil {
			return err
		}
		if f == "" {
			if fd := arg(0); (fd == "1" || strings.HasPrefix(fd, "1<")) && !failed {
				b, _, err := unhex(arg(1))
				if err != nil {
					return bad(err.Error())
				}
				if bytes.HasSuffix(b, []byte(Prompt)) {
					p.rec.Prompts = append(p.rec.Prompts, int64(len(p.rec.Trace.Ops)))
				}
			}
			return nil
		}
		if failed {
			return nil
		}
		return refuse(f, "a write at the file position (write(2)); the recorder needs the offset (pwrite64, pwritev)")
	case "writev":
		f, err := file(0)
		if err != nil || f == "" || failed {
			return err
		}
		return refuse(f, "a write at the file position (writev(2)); the recorder needs the offset (pwritev)")
	case "pwrite64", "pwritev", "pwritev2":
		f, err := file(0)
		if err != nil || f == "" || failed {
			return err
		}
		n, err := retN()
		if err != nil {
			return err
		}
		var data []byte
		var offArg string
		if c.name == "pwrite64" {
			b, trunc, err := unhex(arg(1))
			if err != nil {
				return bad(err.Error())
			}
			if trunc && int64(len(b)) < n {
				return refuse(f, fmt.Sprintf("a write of %d bytes is longer than the %d bytes strace prints (MaxData)", n, MaxData))
			}
			data, offArg = b, arg(3)
		} else {
			iov := arg(1)
			if !strings.HasPrefix(iov, "[") || !strings.HasSuffix(iov, "]") {
				return bad("iovec array expected")
			}
			for _, el := range splitArgs(iov[1 : len(iov)-1]) {
				el = strings.TrimSuffix(strings.TrimPrefix(el, "{"), "}")
				if el == "..." {
					return refuse(f, "more iovec elements than strace prints")
				}
				var base string
				var l int64 = -1
				for _, kv := range splitArgs(el) {
					k, v, _ := strings.Cut(kv, "=")
					switch k {
					case "iov_base":
						base = v
					case "iov_len":
						l, _ = strconv.ParseInt(v, 10, 64)
					}
				}
				b, trunc, err := unhex(base)
				if err != nil {
					return bad(err.Error())
				}
				if trunc || int64(len(b)) < l && int64(len(data))+int64(len(b)) < n {
					return refuse(f, fmt.Sprintf("an iovec element of %d bytes is longer than the %d bytes strace prints (MaxData)", l, MaxData))
				}
				data = append(data, b...)
			}
			offArg = arg(3)
		}
		off, err := strconv.ParseInt(offArg, 10, 64)
		if err != nil {
			return bad("offset is not a number")
		}
		if off < 0 {
			return refuse(f, "a write at the file position (offset -1)")
		}
		if int64(len(data)) > n {
			data = data[:n] // a short write
		}
		if len(data) > 0 {
			p.add(crashsim.Op{Kind: crashsim.OpWrite, Path: f, Off: off, Data: data})
		}
	case "fsync", "fdatasync":
		f, err := file(0)
		if err != nil || f == "" || failed {
			return err
		}
		if p.dirs[f] {
			p.add(crashsim.Op{Kind: crashsim.OpDirSync, Path: f})
		} else {
			p.add(crashsim.Op{Kind: crashsim.OpSync, Path: f})
		}
	case "syncfs", "sync":
		if c.name == "syncfs" {
			a, err := fdPath(arg(0))
			if err != nil {
				return bad(err.Error())
			}
			if a == "" || p.rel(a) == "" && !strings.HasPrefix(p.o.Dir, a) {
				return nil
			}
		}
		if failed {
			return nil
		}
		names := make([]string, 0, len(p.files))
		for f := range p.files {
			names = append(names, f)
		}
		sort.Strings(names)
		for _, f := range names {
			p.add(crashsim.Op{Kind: crashsim.OpSync, Path: f})
		}
		dirs := make([]string, 0, len(p.dirs))
		for d := range p.dirs {
			dirs = append(dirs, d)
		}
		sort.Strings(dirs)
		for _, d := range dirs {
			p.add(crashsim.Op{Kind: crashsim.OpDirSync, Path: d})
		}
	case "sync_file_range":
		// Not a durability barrier (see the package doc): nothing.
	case "ftruncate", "truncate":
		var f string
		var err error
		if c.name == "ftruncate" {
			f, err = file(0)
		} else {
			var a string
			if a, err = p.resolve("", arg(0)); err == nil {
				f = p.rel(a)
			}
		}
		if err != nil || f == "" || failed {
			return err
		}
		size, err := strconv.ParseInt(arg(1), 10, 64)
		if err != nil {
			return bad("size is not a number")
		}
		p.add(crashsim.Op{Kind: crashsim.OpTruncate, Path: f, Size: size})
	case "fallocate":
		f, err := file(0)
		if err != nil || f == "" || failed {
			return err
		}
		mode := arg(1)
		off, err1 := strconv.ParseInt(arg(2), 10, 64)
		n, err2 := strconv.ParseInt(arg(3), 10, 64)
		if err1 != nil || err2 != nil {
			return bad("offset or length is not a number")
		}
		keep := strings.Contains(mode, "FALLOC_FL_KEEP_SIZE")
		switch {
		case strings.Contains(mode, "FALLOC_FL_PUNCH_HOLE"):
			p.add(crashsim.Op{Kind: crashsim.OpDiscard, Path: f, Off: off, Size: n})
		case strings.Contains(mode, "FALLOC_FL_ZERO_RANGE"):
			end := off + n
			if keep && end > p.files[f] {
				end = p.files[f]
			}
			if end > off {
				p.add(crashsim.Op{Kind: crashsim.OpWrite, Path: f, Off: off, Data: make([]byte, end-off)})
			}
		case mode == "0" || keep:
			if !keep && off+n > p.files[f] {
				p.add(crashsim.Op{Kind: crashsim.OpTruncate, Path: f, Size: off + n})
			}
		default:
			return refuse(f, "fallocate mode "+mode)
		}
	case "open", "openat", "creat":
		if failed {
			return nil
		}
		a, err := fdPath(c.ret)
		if err != nil {
			return bad(err.Error())
		}
		f := p.rel(a)
		if f == "" {
			return nil
		}
		flags := arg(1)
		switch c.name {
		case "openat":
			flags = arg(2)
		case "creat":
			flags = "O_CREAT|O_WRONLY|O_TRUNC"
		}
		if strings.Contains(flags, "O_DIRECTORY") || p.dirs[f] {
			return nil
		}
		if _, ok := p.files[f]; !ok && strings.Contains(flags, "O_CREAT") {
			p.add(crashsim.Op{Kind: crashsim.OpCreate, Path: f})
		}
		if strings.Contains(flags, "O_TRUNC") && !strings.Contains(flags, "O_RDONLY") {
			p.add(crashsim.Op{Kind: crashsim.OpTruncate, Path: f, Size: 0})
		}
	case "rename", "renameat", "renameat2":
		var from, to string
		var err1, err2 error
		if c.name == "rename" {
			from, err1 = p.resolve("", arg(0))
			to, err2 = p.resolve("", arg(1))
		} else {
			from, err1 = p.resolve(arg(0), arg(1))
			to, err2 = p.resolve(arg(2), arg(3))
		}
		if err1 != nil || err2 != nil {
			return bad("path is not a -xx string")
		}
		rf, rt := p.rel(from), p.rel(to)
		if failed || rf == "" && rt == "" {
			return nil
		}
		if rf == "" || rt == "" {
			return refuse(rf+rt, "a rename into or out of the recorded directory")
		}
		p.add(crashsim.Op{Kind: crashsim.OpRename, Path: rf, NewPath: rt})
	case "unlink", "unlinkat":
		var a string
		var err error
		if c.name == "unlink" {
			a, err = p.resolve("", arg(0))
		} else {
			a, err = p.resolve(arg(0), arg(1))
		}
		if err != nil {
			return bad("path is not a -xx string")
		}
		if f := p.rel(a); f != "" && !failed {
			p.add(crashsim.Op{Kind: crashsim.OpRemove, Path: f})
		}
	case "mmap":
		f, err := file(4)
		if err != nil || f == "" || failed {
			return err
		}
		if strings.Contains(arg(2), "PROT_WRITE") && strings.Contains(arg(3), "MAP_SHARED") {
			return refuse(f, "a shared writable mapping (mmap PROT_WRITE, MAP_SHARED): writes through it are not system calls")
		}
	case "io_uring_setup":
		p.rec.IOUring = true
	case "io_submit", "copy_file_range", "sendfile", "splice":
		for _, a := range args {
			for _, m := range fdRefs(a) {
				if f := p.rel(m); f != "" && !failed {
					return refuse(f, "I/O the recorder cannot order or see the data of")
				}
			}
		}
	default:
		return nil
	}
	p.rec.Calls[c.name]++
	return nil
}

// fdRefs returns the decoded paths of every descriptor mentioned in s.
func fdRefs(s string) []string {
	var out []string
	for {
		i := strings.Index(s, `<\x`)
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			return out
		}
		if b, _, err := unhex(`"` + s[i+1:i+j] + `"`); err == nil {
			out = append(out, string(b))
		}
		s = s[i+j:]
	}
}
