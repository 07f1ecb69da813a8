package qemuio

// This file is the server end of the language: a shell that reads qemu-io
// commands and runs them on an Image, printing what qemu-io 7.2 prints.
//
// Guarantees (the side-by-side tests in shell_qemu_test.go hold them
// against the real qemu-io):
//
//   - For the supported subset, stdout, stderr and the exit status are
//     qemu-io 7.2's for the same script, but for the numbers of the timing
//     line ("4 KiB, 1 ops; 00.00 sec (...)").
//   - A command that qemu-io counts as failed (a bad argument, an I/O
//     error, a pattern mismatch, no file open) makes the exit status 1;
//     aio_write failures do not, as in qemu-io.
//   - A read-only open never writes: the Opener is told, and write,
//     aio_write and truncate are refused before reaching the Image.
//   - Consecutive aio_write commands run concurrently (each on its own
//     goroutine); the next other command waits for all of them first and
//     prints their reports in the order they were issued.
//   - Unsupported qemu-io commands and options are refused with a message
//     naming them, never ignored.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Image is what the shell drives: a guest disk (props/target.Disk has
// these methods).
type Image interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	WriteZeroes(off, length int64) error
	Flush() error
	Close() error
	Size() int64
	Resize(size int64) error
}

// Mapper is an optional capability of an Image: its allocation map (for
// `map`), in guest order, covering [0, Size). A run is allocated when the
// image itself maps it (data or a zero cluster), not when it reads
// through to a backing file.
type Mapper interface {
	AllocationMap() ([]Run, error)
}

// Run is one range of an allocation map.
type Run struct {
	Off, Len  int64
	Allocated bool
}

// Informer is an optional capability of an Image: the facts `info`
// prints. Without it, info prints the format name with cluster size 0.
type Informer interface {
	Info() (format string, clusterSize int64)
}

// OpenRequest is what the shell asks its Opener for.
type OpenRequest struct {
	Path       string
	Format     string // "" = probe
	ReadOnly   bool
	ForceShare bool // -U
}

// Opener opens an image for the shell. Its error is printed as qemu-io
// prints a failed open: "qemu-io: can't open device PATH: " + the error.
type Opener func(o OpenRequest) (Image, error)

// Shell runs qemu-io commands on one image at a time.
type Shell struct {
	Open           Opener
	Stdout, Stderr io.Writer
	// Format is -f's value, used by opens that name none.
	Format string
	// Abort ends the process as qemu-io's abort does (nil: exit status
	// 134 without closing anything).
	Abort func()

	img      Image
	readOnly bool
	format   string
	pending  []*aioReq
	quit     bool
}

type aioReq struct {
	done  chan struct{}
	off   int64
	total int64
	quiet bool
	start time.Time
	end   time.Time
	err   error
}

// errFailed is a command that failed (its message already printed).
var errFailed = errors.New("qemu-io command failed")

// Close waits for aio requests and closes the image, if one is open.
func (s *Shell) Close() error {
	s.drain()
	if s.img == nil {
		return nil
	}
	err := s.img.Close()
	s.img = nil
	return err
}

// Run runs the -c commands, or, when there are none, the commands read
// from in (with qemu-io's prompt before each one), and returns qemu-io's
// exit status: 1 when any command failed, else 0. The image stays open
// (the caller closes it with Close).
func (s *Shell) Run(cmds []string, in io.Reader) int {
	failed := false
	if len(cmds) > 0 {
		for _, c := range cmds {
			if s.quit {
				break
			}
			if s.Command(c) != nil {
				failed = true
			}
		}
	} else {
		r := bufio.NewReader(in)
		for !s.quit {
			fmt.Fprint(s.Stdout, prompt)
			line, err := r.ReadString('\n')
			if line == "" && err != nil {
				break
			}
			if s.Command(strings.TrimRight(line, "\r\n")) != nil {
				failed = true
			}
		}
	}
	s.drain()
	if failed {
		return 1
	}
	return 0
}

// Quit reports whether a quit command was run.
func (s *Shell) Quit() bool { return s.quit }

type command struct {
	name           string
	argMin, argMax int // argMax -1: no limit
	noFile         bool
	write          bool // needs write permission
	usage          string
	run            func(s *Shell, args []string) error
}

var commands []*command

func init() {
	commands = []*command{
		{name: "read", argMin: 2, argMax: -1, run: (*Shell).read,
			usage: "read [-abCqv] [-P pattern [-s off] [-l len]] off len -- reads a number of bytes at a specified offset"},
		{name: "write", argMin: 2, argMax: -1, write: true, run: (*Shell).write,
			usage: "write [-bcCfnquz] [-P pattern | -s source_file] off len -- writes a number of bytes at a specified offset"},
		{name: "aio_write", argMin: 2, argMax: -1, write: true, run: (*Shell).aioWrite,
			usage: "aio_write [-Cfiquz] [-P pattern] off len [len..] -- asynchronously writes a number of bytes"},
		{name: "aio_flush", run: func(s *Shell, _ []string) error { return nil },
			usage: "aio_flush -- completes all outstanding aio requests"},
		{name: "flush", run: (*Shell).flush, usage: "flush -- flush all in-core file state to disk"},
		{name: "truncate", argMin: 1, argMax: 3, write: true, run: (*Shell).truncate,
			usage: "truncate [-m prealloc_mode] off -- truncates the current file at the given offset"},
		{name: "map", run: (*Shell).mapCmd, usage: "map  -- prints the allocated areas of a file"},
		{name: "info", run: (*Shell).info, usage: "info -- prints information about the current file"},
		{name: "sleep", argMin: 1, argMax: 1, noFile: true, run: (*Shell).sleep,
			usage: "sleep -- waits for the given value in milliseconds"},
		{name: "open", argMin: 1, argMax: -1, noFile: true, run: (*Shell).open,
			usage: "open [-rsCnkU] [-t cache] [-d discard] [-o options] [path] -- open the file specified by path"},
		{name: "close", run: (*Shell).close, usage: "close -- close the current open file"},
		{name: "quit", noFile: true, run: func(s *Shell, _ []string) error { s.quit = true; return nil },
			usage: "quit -- exit the program"},
		{name: "abort", noFile: true, run: (*Shell).abort,
			usage: "abort -- simulate a program crash using abort(3)"},
	}
}

// aliases are qemu-io's short names of the supported commands.
var aliases = map[string]string{"r": "read", "w": "write", "f": "flush", "t": "truncate", "q": "quit", "o": "open", "c": "close"}

// unsupported are qemu-io commands this shell does not implement.
var unsupported = map[string]bool{
	"aio_read": true, "alloc": true, "break": true, "discard": true, "help": true, "length": true,
	"readv": true, "remove_break": true, "reopen": true, "resume": true, "sigraise": true,
	"wait_break": true, "writev": true, "zone_append": true, "zone_close": true,
}

// Command runs one command line. A non-nil error means the command failed
// (qemu-io would count it in its exit status); its message is printed.
func (s *Shell) Command(line string) error {
	args := strings.Fields(line)
	if len(args) == 0 {
		return nil
	}
	name := args[0]
	if a, ok := aliases[name]; ok {
		name = a
	}
	if name != "aio_write" {
		s.drain()
	}
	var ct *command
	for _, c := range commands {
		if c.name == name {
			ct = c
		}
	}
	if ct == nil {
		if unsupported[name] {
			fmt.Fprintf(s.Stderr, "command %q is not supported by qedtorture io\n", args[0])
		} else {
			fmt.Fprintf(s.Stderr, "command %q not found\n", args[0])
		}
		return errFailed
	}
	if !ct.noFile && s.img == nil {
		fmt.Fprintln(s.Stderr, "no file open, try 'help open'")
		return errFailed
	}
	n := len(args) - 1
	if n < ct.argMin || (ct.argMax != -1 && n > ct.argMax) {
		switch {
		case ct.argMax == -1:
			fmt.Fprintf(s.Stderr, "bad argument count %d to %s, expected at least %d arguments\n", n, args[0], ct.argMin)
		case ct.argMin == ct.argMax:
			fmt.Fprintf(s.Stderr, "bad argument count %d to %s, expected %d arguments\n", n, args[0], ct.argMin)
		default:
			fmt.Fprintf(s.Stderr, "bad argument count %d to %s, expected between %d and %d arguments\n", n, args[0], ct.argMin, ct.argMax)
		}
		return errFailed
	}
	if ct.write && s.img != nil && s.readOnly {
		fmt.Fprintln(s.Stderr, "qemu-io: Block node is read-only")
		return errFailed
	}
	return ct.run(s, args)
}

// opts is the result of getopt over a command's arguments.
type opts struct {
	flags map[byte]string
	args  []string
}

// getopt parses args[1:] as glibc's getopt does with optstring spec
// (options may follow operands; "--" ends them). On a bad option it
// prints getopt's message and the usage line and returns false.
func (s *Shell) getopt(ct string, args []string, spec string) (opts, bool) {
	o := opts{flags: map[byte]string{}}
	usage := func() {
		for _, c := range commands {
			if c.name == ct {
				fmt.Fprintln(s.Stdout, c.usage)
			}
		}
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.args = append(o.args, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			o.args = append(o.args, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			k := strings.IndexByte(spec, c)
			if k < 0 || c == ':' {
				fmt.Fprintf(s.Stderr, "%s: invalid option -- '%c'\n", args[0], c)
				usage()
				return o, false
			}
			if k+1 < len(spec) && spec[k+1] == ':' {
				switch {
				case j+1 < len(a):
					o.flags[c] = a[j+1:]
				case i+1 < len(args):
					i++
					o.flags[c] = args[i]
				default:
					fmt.Fprintf(s.Stderr, "%s: option requires an argument -- '%c'\n", args[0], c)
					usage()
					return o, false
				}
				break
			}
			o.flags[c] = ""
		}
	}
	return o, true
}

func (s *Shell) usage(name string) {
	for _, c := range commands {
		if c.name == name {
			fmt.Fprintln(s.Stdout, c.usage)
		}
	}
}

// refuse reports an option of qemu-io this shell does not implement.
func (s *Shell) refuse(o opts, cmd, supported string) bool {
	for c := range o.flags {
		if !strings.ContainsRune(supported, rune(c)) {
			fmt.Fprintf(s.Stderr, "%s: option -%c is not supported by qedtorture io\n", cmd, c)
			return true
		}
	}
	return false
}

// cvtnum parses a qemu-io number (qemu_strtosz: decimal or 0x hex, an
// optional binary suffix b k M G T P E, a fraction only with a suffix),
// printing qemu-io's message when it is not one.
func (s *Shell) cvtnum(a string) (int64, bool) {
	v, err := ParseSize(a)
	if err != nil {
		if errors.Is(err, errRange) {
			fmt.Fprintf(s.Stdout, "Parsing error: argument too large -- %s\n", a)
		} else {
			fmt.Fprintf(s.Stdout, "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- %s\n", a)
		}
		return 0, false
	}
	return v, true
}

var errRange = errors.New("out of range")

// ParseSize parses a size as qemu-io's cvtnum does.
func ParseSize(a string) (int64, error) {
	if a == "" || a[0] == '-' {
		return 0, strconv.ErrSyntax
	}
	i := 0
	hex := strings.HasPrefix(a, "0x") || strings.HasPrefix(a, "0X")
	if hex {
		i = 2
	}
	j := i
	for j < len(a) && (a[j] >= '0' && a[j] <= '9' || hex && strings.ContainsRune("abcdefABCDEF", rune(a[j]))) {
		j++
	}
	if j == i {
		return 0, strconv.ErrSyntax
	}
	base := 10
	if hex {
		base = 16
	}
	ip, err := strconv.ParseUint(a[i:j], base, 64)
	if err != nil {
		return 0, errRange
	}
	frac := 0.0
	if !hex && j < len(a) && a[j] == '.' {
		k := j + 1
		for k < len(a) && a[k] >= '0' && a[k] <= '9' {
			k++
		}
		frac, _ = strconv.ParseFloat("0"+a[j:k], 64)
		j = k
	}
	mult := uint64(1)
	if j < len(a) {
		shift := strings.IndexByte("bkmgtpe", lower(a[j]))
		if shift < 0 || j+1 != len(a) {
			return 0, strconv.ErrSyntax
		}
		mult = 1 << (10 * shift)
	} else if frac != 0 {
		return 0, strconv.ErrSyntax
	}
	if ip > math.MaxInt64/mult {
		return 0, errRange
	}
	return int64(ip*mult) + int64(frac*float64(mult)), nil
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// pattern parses -P's byte as qemu-io's parse_pattern does.
func (s *Shell) pattern(a string) (byte, bool) {
	v, err := strconv.ParseInt(a, 0, 64)
	if err != nil || v < 0 || v > 255 {
		fmt.Fprintf(s.Stdout, "%s is not a valid pattern byte\n", a)
		return 0, false
	}
	return byte(v), true
}

// Strerror is the C library's message for err's errno, as qemu-io prints
// it ("Input/output error" when err carries none).
func Strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		m := errno.Error()
		if m != "" {
			return strings.ToUpper(m[:1]) + m[1:]
		}
	}
	return "Input/output error"
}

// ioFailed prints "<op> failed: <strerror>" as qemu-io does, and the
// underlying error on stderr when it is not a plain errno (the detail a
// user poking at a damaged image wants).
func (s *Shell) ioFailed(op string, err error) error {
	fmt.Fprintf(s.Stdout, "%s failed: %s\n", op, Strerror(err))
	return s.detail(err)
}

// detail prints err on stderr when it says more than its errno, and
// returns errFailed.
func (s *Shell) detail(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		fmt.Fprintf(s.Stderr, "qedtorture io: %v\n", err)
	}
	return errFailed
}

// errRangeIO is a request outside the image: EIO, as QEMU's block layer.
var errRangeIO = syscall.EIO

func (s *Shell) inRange(off, n int64) bool {
	return off >= 0 && n >= 0 && off <= s.img.Size() && n <= s.img.Size()-off
}

func (s *Shell) read(args []string) error {
	o, ok := s.getopt("read", args, "abCqP:s:l:v")
	if !ok {
		return errFailed
	}
	if s.refuse(o, "read", "qPv") {
		return errFailed
	}
	var pat byte
	p, havePat := o.flags['P']
	if havePat {
		if pat, ok = s.pattern(p); !ok {
			return errFailed
		}
	}
	if len(o.args) != 2 {
		s.usage("read")
		return errFailed
	}
	off, ok := s.cvtnum(o.args[0])
	if !ok {
		return errFailed
	}
	n, ok := s.cvtnum(o.args[1])
	if !ok {
		return errFailed
	}
	if n > math.MaxInt32 {
		fmt.Fprintf(s.Stdout, "length cannot exceed %d, given %s\n", math.MaxInt32, o.args[1])
		return errFailed
	}
	buf := make([]byte, n)
	start := time.Now()
	if !s.inRange(off, n) {
		return s.ioFailed("read", errRangeIO)
	}
	if _, err := s.img.ReadAt(buf, off); err != nil && !(err == io.EOF && n == 0) {
		return s.ioFailed("read", err)
	}
	end := time.Now()
	var ret error
	if havePat {
		for _, b := range buf {
			if b != pat {
				fmt.Fprintf(s.Stdout, "Pattern verification failed at offset %d, %d bytes\n", off, n)
				ret = errFailed
				break
			}
		}
	}
	_, quiet := o.flags['q']
	if quiet {
		return ret
	}
	if _, v := o.flags['v']; v {
		DumpBuffer(s.Stdout, buf, off)
	}
	s.report("read", end.Sub(start), off, n, n, 1)
	return ret
}

// DumpBuffer writes p as qemu-io's `read -v` does: 16 bytes a line, the
// offset, the bytes in hex and the alphanumeric ones as characters.
func DumpBuffer(w io.Writer, p []byte, off int64) {
	var b strings.Builder
	for i := 0; i < len(p); i += 16 {
		line := p[i:min(i+16, len(p))]
		fmt.Fprintf(&b, "%08x:  ", off+int64(i))
		for _, c := range line {
			fmt.Fprintf(&b, "%02x ", c)
		}
		b.WriteByte(' ')
		for _, c := range line {
			if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
				b.WriteByte(c)
			} else {
				b.WriteByte('.')
			}
		}
		b.WriteByte('\n')
	}
	io.WriteString(w, b.String())
}

// writeArgs parses the options and operands common to write and
// aio_write: the fill (the -P byte, 0xcd by default, or the contents of
// -s's file, repeated), zero, FUA.
func (s *Shell) writeArgs(cmd, spec, supported string, args []string, multi bool) (o opts, fill []byte, offs []int64, ok bool) {
	o, ok = s.getopt(cmd, args, spec)
	if !ok {
		return o, nil, nil, false
	}
	if s.refuse(o, cmd, supported) {
		return o, nil, nil, false
	}
	_, z := o.flags['z']
	p, havePat := o.flags['P']
	src, haveSrc := o.flags['s']
	if n := btoi(z) + btoi(havePat) + btoi(haveSrc); n > 1 {
		fmt.Fprintln(s.Stdout, "Only one of -z, -P, and -s can be specified at the same time")
		return o, nil, nil, false
	}
	if _, u := o.flags['u']; u && !z {
		fmt.Fprintln(s.Stdout, "-u requires -z to be specified")
		return o, nil, nil, false
	}
	fill = []byte{0xcd}
	if havePat {
		pat, ok := s.pattern(p)
		if !ok {
			return o, nil, nil, false
		}
		fill = []byte{pat}
	}
	if len(o.args) < 2 || !multi && len(o.args) != 2 {
		s.usage(cmd)
		return o, nil, nil, false
	}
	for _, a := range o.args {
		v, ok := s.cvtnum(a)
		if !ok {
			return o, nil, nil, false
		}
		offs = append(offs, v)
	}
	if haveSrc {
		b, err := os.ReadFile(src)
		if err == nil && len(b) == 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			fmt.Fprintf(s.Stderr, "%s: %s\n", src, Strerror(err))
			return o, nil, nil, false
		}
		fill = b
	}
	return o, fill, offs, true
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Shell) write(args []string) error {
	o, fill, v, ok := s.writeArgs("write", "bcCfnpP:quzs:", "fPqsuz", args, false)
	if !ok {
		return errFailed
	}
	off, n := v[0], v[1]
	_, zero := o.flags['z']
	_, fua := o.flags['f']
	start := time.Now()
	if err := s.doWrite(off, n, zero, fill, fua); err != nil {
		return s.ioFailed("write", err)
	}
	end := time.Now()
	if _, q := o.flags['q']; !q {
		s.report("wrote", end.Sub(start), off, n, n, 1)
	}
	return nil
}

// doWrite writes n bytes of fill, repeated (or zeroes), at off; with fua
// the data is durable when it returns (qemu-io's -f: a flush after the
// write).
func (s *Shell) doWrite(off, n int64, zero bool, fill []byte, fua bool) error {
	if !s.inRange(off, n) {
		return errRangeIO
	}
	if zero {
		if err := s.img.WriteZeroes(off, n); err != nil {
			return err
		}
	} else {
		buf := make([]byte, n)
		for i := 0; i < len(buf); i += len(fill) {
			copy(buf[i:], fill)
		}
		if _, err := s.img.WriteAt(buf, off); err != nil {
			return err
		}
	}
	if fua {
		return s.img.Flush()
	}
	return nil
}

func (s *Shell) aioWrite(args []string) error {
	o, fill, v, ok := s.writeArgs("aio_write", "CfiqP:uz", "fPquz", args, true)
	if !ok {
		return errFailed
	}
	off := v[0]
	var total int64
	for _, n := range v[1:] {
		total += n
	}
	_, zero := o.flags['z']
	_, fua := o.flags['f']
	_, quiet := o.flags['q']
	r := &aioReq{done: make(chan struct{}), off: off, total: total, quiet: quiet, start: time.Now()}
	img := s.img
	s.pending = append(s.pending, r)
	go func() {
		defer close(r.done)
		sh := &Shell{img: img}
		r.err = sh.doWrite(off, total, zero, fill, fua)
		r.end = time.Now()
	}()
	return nil
}

// drain waits for the aio requests in flight and prints their reports in
// the order they were issued.
func (s *Shell) drain() {
	for _, r := range s.pending {
		<-r.done
		if r.err != nil {
			s.ioFailed("aio_write", r.err)
			continue
		}
		if !r.quiet {
			s.report("wrote", r.end.Sub(r.start), r.off, r.total, r.total, 1)
		}
	}
	s.pending = nil
}

func (s *Shell) flush(args []string) error {
	if err := s.img.Flush(); err != nil {
		fmt.Fprintf(s.Stderr, "qemu-io: flush: %s\n", Strerror(err))
		return errFailed
	}
	return nil
}

func (s *Shell) truncate(args []string) error {
	o, ok := s.getopt("truncate", args, "m:")
	if !ok {
		return errFailed
	}
	if m, ok := o.flags['m']; ok && m != "off" {
		fmt.Fprintf(s.Stderr, "qemu-io: Unsupported preallocation mode '%s'\n", m)
		return errFailed
	}
	if len(o.args) != 1 {
		s.usage("truncate")
		return errFailed
	}
	size, ok := s.cvtnum(o.args[0])
	if !ok {
		return errFailed
	}
	if size < s.img.Size() {
		fmt.Fprintln(s.Stderr, "qemu-io: Shrinking images is currently not supported")
		return errFailed
	}
	if err := s.img.Resize(size); err != nil {
		fmt.Fprintf(s.Stderr, "qemu-io: %v\n", err)
		return errFailed
	}
	return nil
}

func (s *Shell) mapCmd(args []string) error {
	m, ok := s.img.(Mapper)
	if !ok {
		fmt.Fprintln(s.Stderr, "map: this image has no allocation map")
		return errFailed
	}
	runs, err := m.AllocationMap()
	if err != nil {
		fmt.Fprintf(s.Stderr, "Failed to get allocation status: %s\n", Strerror(err))
		return s.detail(err)
	}
	// Merge neighbouring runs of the same status, as qemu-io's map does.
	var merged []Run
	for _, r := range runs {
		if r.Len <= 0 {
			continue
		}
		if k := len(merged) - 1; k >= 0 && merged[k].Allocated == r.Allocated && merged[k].Off+merged[k].Len == r.Off {
			merged[k].Len += r.Len
			continue
		}
		merged = append(merged, r)
	}
	for _, r := range merged {
		state := "   "
		if !r.Allocated {
			state = "not"
		}
		fmt.Fprintf(s.Stdout, "%s (0x%x) bytes %s allocated at offset %s (0x%x)\n", cvtstr(float64(r.Len)), r.Len, state, cvtstr(float64(r.Off)), r.Off)
	}
	return nil
}

func (s *Shell) info(args []string) error {
	format, cluster := s.format, int64(0)
	if in, ok := s.img.(Informer); ok {
		format, cluster = in.Info()
	}
	fmt.Fprintf(s.Stdout, "format name: %s\n", format)
	fmt.Fprintf(s.Stdout, "cluster size: %s\n", cvtstr(float64(cluster)))
	fmt.Fprintf(s.Stdout, "vm state offset: %s\n", cvtstr(0))
	return nil
}

func (s *Shell) sleep(args []string) error {
	ms, err := strconv.ParseUint(args[1], 10, 63)
	if err != nil {
		fmt.Fprintf(s.Stdout, "%s is not a valid number\n", args[1])
		return errFailed
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return nil
}

func (s *Shell) open(args []string) error {
	if s.img != nil {
		fmt.Fprintln(s.Stderr, "qemu-io: file open already, try 'help close'")
		return errFailed
	}
	o, ok := s.getopt("open", args, "snCro:kt:d:U")
	if !ok {
		return errFailed
	}
	if s.refuse(o, "open", "rUo") {
		return errFailed
	}
	req := OpenRequest{Format: s.Format}
	_, req.ReadOnly = o.flags['r']
	_, req.ForceShare = o.flags['U']
	if opt, ok := o.flags['o']; ok {
		for _, kv := range strings.Split(opt, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "driver":
				req.Format = v
			case "file.filename", "file":
				req.Path = v
			default:
				fmt.Fprintf(s.Stderr, "open: option %q is not supported by qedtorture io\n", k)
				return errFailed
			}
		}
	}
	switch {
	case len(o.args) == 1 && req.Path == "":
		req.Path = o.args[0]
	case len(o.args) == 0 && req.Path != "":
	default:
		s.usage("open")
		return errFailed
	}
	if req.ForceShare && !req.ReadOnly {
		// qemu-io -U on a writable open: QEMU refuses it the same way.
		fmt.Fprintf(s.Stderr, "qemu-io: can't open device %s: force-share=on can only be used with read-only images\n", req.Path)
		return errFailed
	}
	return s.OpenImage(req)
}

// OpenImage opens an image as the open command does (the command line's
// image argument goes through it too).
func (s *Shell) OpenImage(req OpenRequest) error {
	img, err := s.Open(req)
	if err != nil {
		fmt.Fprintf(s.Stderr, "qemu-io: can't open device %s: %v\n", req.Path, err)
		return errFailed
	}
	s.img, s.readOnly, s.format = img, req.ReadOnly, req.Format
	return nil
}

func (s *Shell) close(args []string) error {
	err := s.img.Close()
	s.img = nil
	if err != nil {
		fmt.Fprintf(s.Stderr, "qemu-io: close: %v\n", err)
		return errFailed
	}
	return nil
}

func (s *Shell) abort(args []string) error {
	if s.Abort != nil {
		s.Abort()
	}
	os.Exit(134)
	return nil
}

// report prints qemu-io's two result lines.
func (s *Shell) report(op string, d time.Duration, off, count, total int64, cnt int) {
	secs := d.Seconds()
	tdiv := func(v float64) float64 {
		if secs <= 0 {
			return 0
		}
		return v / secs
	}
	fmt.Fprintf(s.Stdout, "%s %d/%d bytes at offset %d\n", op, total, count, off)
	fmt.Fprintf(s.Stdout, "%s, %d ops; %s (%s/sec and %.4f ops/sec)\n",
		cvtstr(float64(total)), cnt, timestr(d), cvtstr(tdiv(float64(total))), tdiv(float64(cnt)))
}

// timestr formats a duration as qemu-io's report line does.
func timestr(d time.Duration) string {
	secs := d.Seconds()
	if h := int(secs / 3600); h > 0 {
		return fmt.Sprintf("%d:%02d:%05.2f sec", h, int(secs/60)%60, math.Mod(secs, 60))
	}
	if m := int(secs / 60); m > 0 {
		return fmt.Sprintf("%02d:%05.2f sec", m, math.Mod(secs, 60))
	}
	return fmt.Sprintf("%05.2f sec", secs)
}

// cvtstr formats a byte count as qemu's cvtstr: three decimals in the
// largest binary unit (six for plain bytes), ".000" and what follows
// dropped.
func cvtstr(v float64) string {
	units := []string{" EiB", " PiB", " TiB", " GiB", " MiB", " KiB"}
	var str, suffix string
	for i, u := range units {
		scale := math.Pow(1024, float64(6-i))
		if v >= scale {
			str, suffix = fmt.Sprintf("%.3f", v/scale), u
			break
		}
	}
	if suffix == "" {
		str, suffix = fmt.Sprintf("%f", v), " bytes"
	}
	if i := strings.Index(str, ".000"); i >= 0 {
		return str[:i] + suffix
	}
	return str + suffix
}

// ShellOutputTiming matches the timing line of a report, for tests and
// tools that compare outputs: everything after "ops; " varies.
func ShellOutputTiming(line string) bool {
	return strings.Contains(line, " ops; ") && strings.HasSuffix(line, " ops/sec)")
}
