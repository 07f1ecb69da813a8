package workload

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

const scriptMagic = "qedtorture-workload v1"

// Format writes w in the script form described in the package doc.
func (w *Workload) Format(out io.Writer) error {
	bw := bufio.NewWriter(out)
	g := w.Geometry
	fmt.Fprintln(bw, scriptMagic)
	fmt.Fprintf(bw, "image cluster_size=%d table_size=%d size=%d%s", g.ClusterSize, g.TableSize, g.Size, g.Craft.keys())
	if g.L2Cache != 0 {
		fmt.Fprintf(bw, " l2_cache=%d", g.L2Cache)
	}
	fmt.Fprintln(bw)
	for _, b := range g.Backing {
		if b.Format == "qed" {
			fmt.Fprintf(bw, "backing qed size=%d cluster_size=%d table_size=%d fill=%d\n", b.Size, b.ClusterSize, b.TableSize, b.Fill)
		} else {
			fmt.Fprintf(bw, "backing %s size=%d fill=%d\n", b.Format, b.Size, b.Fill)
		}
	}
	for _, op := range w.Ops {
		formatOp(bw, op, "")
		for _, sub := range op.Group {
			formatOp(bw, sub, "  ")
		}
	}
	return bw.Flush()
}

// String returns the script form.
func (w *Workload) String() string {
	var sb strings.Builder
	_ = w.Format(&sb)
	return sb.String()
}

// String returns one op in script form (a Concurrent op on one line
// with its group in brackets), for messages.
func (op Op) String() string {
	var sb strings.Builder
	formatOp(&sb, Op{Kind: op.Kind, Off: op.Off, Len: op.Len, ID: op.ID, Group: op.Group}, "")
	s := strings.TrimSuffix(sb.String(), "\n")
	if op.Kind == Concurrent {
		parts := make([]string, len(op.Group))
		for i, sub := range op.Group {
			parts[i] = sub.String()
		}
		s += " [" + strings.Join(parts, "; ") + "]"
	}
	return s
}

func formatOp(w io.Writer, op Op, indent string) {
	s := op.Kind.spec()
	if s == nil {
		fmt.Fprintf(w, "%s%s\n", indent, op.Kind)
		return
	}
	if a := s.args(op); a != "" {
		fmt.Fprintf(w, "%s%s %s\n", indent, s.name(), a)
		return
	}
	fmt.Fprintf(w, "%s%s\n", indent, s.name())
}

// ParseError names the script line that could not be parsed.
type ParseError struct {
	Line int
	Text string
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("workload: line %d: %s (%q)", e.Line, e.Msg, e.Text)
}

// Parse reads a workload in script form and validates it.
func Parse(r io.Reader) (*Workload, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	w := &Workload{}
	lineNo := 0
	sawMagic, sawImage := false, false
	pendingGroup := 0 // ops still expected in the current concurrent group
	for sc.Scan() {
		lineNo++
		raw := sc.Text()
		text := raw
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		indented := strings.HasPrefix(text, " ") || strings.HasPrefix(text, "\t")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		bad := func(format string, a ...any) error {
			return &ParseError{Line: lineNo, Text: raw, Msg: fmt.Sprintf(format, a...)}
		}
		if !sawMagic {
			if strings.Join(fields, " ") != scriptMagic {
				return nil, bad("expected the header line %q", scriptMagic)
			}
			sawMagic = true
			continue
		}
		if pendingGroup > 0 && !indented {
			return nil, bad("concurrent group needs %d more indented op(s)", pendingGroup)
		}
		if pendingGroup == 0 && indented {
			return nil, bad("indented op outside a concurrent group")
		}
		kw, args := fields[0], fields[1:]
		switch kw {
		case "image", "backing":
			if len(w.Ops) > 0 {
				return nil, bad("%s must come before the first op", kw)
			}
			if kw == "image" && sawImage {
				return nil, bad("duplicate image line")
			}
			if kw == "backing" && !sawImage {
				return nil, bad("backing before the image line")
			}
			var format string
			if kw == "backing" {
				if len(args) == 0 {
					return nil, bad("backing needs a format (qed or raw)")
				}
				format, args = args[0], args[1:]
			}
			kv, err := keyValues(args)
			if err != nil {
				return nil, bad("%v", err)
			}
			num := func(key string, bitSize int, required bool) (uint64, error) {
				s, ok := kv[key]
				if !ok {
					if required {
						return 0, bad("missing %s=", key)
					}
					return 0, nil
				}
				delete(kv, key)
				v, err := strconv.ParseUint(s, 0, bitSize)
				if err != nil {
					return 0, bad("%s=%q is not a number", key, s)
				}
				return v, nil
			}
			isQED := kw == "image" || format == "qed"
			var cs, ts, size, fill uint64
			if size, err = num("size", 63, true); err != nil {
				return nil, err
			}
			if isQED {
				if cs, err = num("cluster_size", 32, true); err != nil {
					return nil, err
				}
				if ts, err = num("table_size", 32, true); err != nil {
					return nil, err
				}
			}
			if kw == "backing" {
				if fill, err = num("fill", 32, true); err != nil {
					return nil, err
				}
			}
			var craft Craft
			var l2Cache uint64
			if kw == "image" {
				for _, f := range craftFields {
					v, err := num(f.key, 64, false)
					if err != nil {
						return nil, err
					}
					f.set(&craft, v)
				}
				if l2Cache, err = num("l2_cache", 8, false); err != nil {
					return nil, err
				}
			}
			for k := range kv {
				return nil, bad("unknown key %q", k)
			}
			if kw == "image" {
				w.Geometry.Craft, w.Geometry.L2Cache = craft, int(l2Cache)
				w.Geometry.ClusterSize, w.Geometry.TableSize, w.Geometry.Size = uint32(cs), uint32(ts), int64(size)
				sawImage = true
			} else {
				w.Geometry.Backing = append(w.Geometry.Backing, Backing{Format: format, Size: int64(size), ClusterSize: uint32(cs), TableSize: uint32(ts), Fill: uint32(fill)})
			}
			continue
		}
		if !sawImage {
			return nil, bad("ops before the image line")
		}
		op, err := parseOp(kw, args)
		if err != nil {
			return nil, bad("%v", err)
		}
		if pendingGroup > 0 {
			last := &w.Ops[len(w.Ops)-1]
			last.Group = append(last.Group, op)
			pendingGroup--
			continue
		}
		if op.Kind == Concurrent {
			pendingGroup = int(op.Len)
			op.Len = 0
		}
		w.Ops = append(w.Ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("workload: line %d: %w", lineNo+1, err)
	}
	if !sawMagic || !sawImage {
		return nil, &ParseError{Line: lineNo, Msg: "missing header or image line"}
	}
	if pendingGroup > 0 {
		return nil, &ParseError{Line: lineNo, Msg: fmt.Sprintf("concurrent group needs %d more op(s) at end of script", pendingGroup)}
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return w, nil
}

func keyValues(args []string) (map[string]string, error) {
	kv := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("expected key=value, got %q", a)
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("duplicate key %q", k)
		}
		kv[k] = v
	}
	return kv, nil
}

func parseOp(kw string, args []string) (Op, error) {
	k, ok := KindByName(kw)
	if !ok {
		return Op{}, fmt.Errorf("unknown op %q", kw)
	}
	return k.spec().parse(kw, args)
}

// craftFields are the image line's optional keys of Geometry.Craft, in
// the order Format writes them (only those not zero).
var craftFields = []struct {
	key string
	get func(*Craft) uint64
	set func(*Craft, uint64)
}{
	{"header_size", func(c *Craft) uint64 { return uint64(c.HeaderSize) }, func(c *Craft, v uint64) { c.HeaderSize = uint32(min(v, 1<<31)) }},
	{"l1_gap", func(c *Craft) uint64 { return uint64(c.L1Gap) }, func(c *Craft, v uint64) { c.L1Gap = uint32(min(v, 1<<31)) }},
	{"compat", func(c *Craft) uint64 { return c.Compat }, func(c *Craft, v uint64) { c.Compat = v }},
	{"autoclear", func(c *Craft) uint64 { return c.Autoclear }, func(c *Craft, v uint64) { c.Autoclear = v }},
	{"need_check", func(c *Craft) uint64 { return boolNum(c.NeedCheck) }, func(c *Craft, v uint64) { c.NeedCheck = v != 0 }},
	{"backing_name", func(c *Craft) uint64 { return uint64(c.BackingName) }, func(c *Craft, v uint64) { c.BackingName = int(min(v, 1<<31)) }},
	{"probe", func(c *Craft) uint64 { return boolNum(c.Probe) }, func(c *Craft, v uint64) { c.Probe = v != 0 }},
	{"tail", func(c *Craft) uint64 { return uint64(c.Tail) }, func(c *Craft, v uint64) { c.Tail = int64(min(v, 1<<62)) }},
}

func boolNum(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// keys returns c's image-line keys (" header_size=2 compat=0x100"), empty
// for the zero Craft.
func (c Craft) keys() string {
	var sb strings.Builder
	for _, f := range craftFields {
		v := f.get(&c)
		switch {
		case v == 0:
		case f.key == "compat" || f.key == "autoclear":
			fmt.Fprintf(&sb, " %s=%#x", f.key, v)
		default:
			fmt.Fprintf(&sb, " %s=%d", f.key, v)
		}
	}
	return sb.String()
}
