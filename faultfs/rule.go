package faultfs

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
)

// Op is the kind of a file-system operation, as seen by rules.
type Op uint8

// The operations rules can match (see the package doc for which calls map to which).
const (
	OpOpen Op = iota
	OpCreate
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpStat
	OpRemove
	OpRename
	OpClose
	OpMkdir
	OpReaddir
	numOps
)

var opNames = [numOps]string{"open", "create", "read", "write", "sync", "truncate", "stat", "remove", "rename", "close", "mkdir", "readdir"}

// String returns the operation's name in the rule grammar.
func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// OpSet is a set of operations (bit i set for Op i).
type OpSet uint16

// AllOps is the set of every operation, written "*".
const AllOps OpSet = 1<<numOps - 1

// Ops returns the set holding ops.
func Ops(ops ...Op) OpSet {
	var s OpSet
	for _, o := range ops {
		s |= 1 << o
	}
	return s
}

// Has reports whether o is in s.
func (s OpSet) Has(o Op) bool { return o < numOps && s&(1<<o) != 0 }

// String returns the set in the rule grammar: "*" or ops joined by "|".
func (s OpSet) String() string {
	if s == AllOps {
		return "*"
	}
	var b strings.Builder
	for o := Op(0); o < numOps; o++ {
		if s.Has(o) {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(o.String())
		}
	}
	return b.String()
}

// Fault is the kind of fault a rule injects.
type Fault uint8

// The faults. The zero Fault is invalid so that a forgotten field is caught.
const (
	FaultEIO Fault = iota + 1
	FaultENOSPC
	FaultEINTR
	FaultShort
	FaultLost
	FaultMisdirect
	FaultBitflip
	// FaultDelay waits Arg nanoseconds, then lets the operation proceed
	// (and any other rule inject its fault): a slow device, not a failure.
	FaultDelay
	numFaults
)

var faultNames = [numFaults]string{"", "eio", "enospc", "eintr", "short", "lost", "misdirect", "bitflip", "delay"}

// faultOps is the set of operations each fault applies to.
var faultOps = [numFaults]OpSet{
	FaultEIO:       AllOps,
	FaultENOSPC:    AllOps,
	FaultEINTR:     AllOps,
	FaultShort:     Ops(OpWrite),
	FaultLost:      Ops(OpWrite, OpSync, OpTruncate),
	FaultMisdirect: Ops(OpWrite),
	FaultBitflip:   Ops(OpRead),
	FaultDelay:     AllOps,
}

// offsetOps are the operations that have a byte range.
const offsetOps = OpSet(1<<OpRead | 1<<OpWrite | 1<<OpTruncate)

// String returns the fault's name in the rule grammar.
func (f Fault) String() string {
	if f > 0 && f < numFaults {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", uint8(f))
}

// Trigger says which of a rule's matches fire.
type Trigger uint8

// The triggers; N is in Rule.N.
const (
	Always Trigger = iota // every match
	Nth                   // the N-th match only
	Every                 // matches N, 2N, 3N, ...
	After                 // every match after the first N
)

// NoEnd is the End of an open byte range ("off=a-").
const NoEnd = math.MaxInt64

// Rule is one fault-injection rule. Its zero value is invalid (no fault);
// build rules with ParseRule or fill the fields and call Validate.
type Rule struct {
	Ops   OpSet // operations matched; must be non-empty
	Fault Fault // what is injected
	// Arg is the fault's argument: short: bytes stored (-1 = len/2);
	// misdirect: the displacement (non-zero); bitflip: bit index in the
	// window (-1 = seeded); delay: the wait in nanoseconds (> 0). Unused
	// (0) for the other faults.
	Arg     int64
	Trigger Trigger
	N       int64   // Nth, Every: >= 1; After: >= 0; Always: 0
	P       float64 // probability of firing in (0,1]; 0 = no probability filter
	Path    string  // glob; "" matches every path
	HasOff  bool    // whether [Start, End) restricts the byte range
	Start   int64
	End     int64 // exclusive; NoEnd for an open range
}

// Validate reports whether r is a well-formed rule, as Parse would accept.
func (r Rule) Validate() error {
	switch {
	case r.Ops == 0 || r.Ops&^AllOps != 0:
		return fmt.Errorf("%w: rule has invalid operation set %#x", ErrInvalidRule, uint16(r.Ops))
	case r.Fault == 0 || r.Fault >= numFaults:
		return fmt.Errorf("%w: rule has invalid fault %d", ErrInvalidRule, r.Fault)
	case r.Ops&^faultOps[r.Fault] != 0:
		return fmt.Errorf("%w: fault %s does not apply to %s (only to %s)", ErrInvalidRule, r.Fault, r.Ops&^faultOps[r.Fault], faultOps[r.Fault])
	}
	switch r.Fault {
	case FaultShort, FaultBitflip:
		if r.Arg < -1 {
			return fmt.Errorf("%w: %s argument %d is negative", ErrInvalidRule, r.Fault, r.Arg)
		}
	case FaultMisdirect:
		if r.Arg == 0 {
			return fmt.Errorf("%w: misdirect displacement is zero", ErrInvalidRule)
		}
	case FaultDelay:
		if r.Arg <= 0 {
			return fmt.Errorf("%w: delay %d ns is not positive", ErrInvalidRule, r.Arg)
		}
	default:
		if r.Arg != 0 {
			return fmt.Errorf("%w: fault %s takes no argument (got %d)", ErrInvalidRule, r.Fault, r.Arg)
		}
	}
	switch r.Trigger {
	case Always:
		if r.N != 0 {
			return fmt.Errorf("%w: trigger Always with N=%d", ErrInvalidRule, r.N)
		}
	case Nth, Every:
		if r.N < 1 {
			return fmt.Errorf("%w: %s=%d must be at least 1", ErrInvalidRule, triggerKey(r.Trigger), r.N)
		}
	case After:
		if r.N < 0 {
			return fmt.Errorf("%w: after=%d is negative", ErrInvalidRule, r.N)
		}
	default:
		return fmt.Errorf("%w: invalid trigger %d", ErrInvalidRule, r.Trigger)
	}
	if r.P != 0 && !(r.P > 0 && r.P <= 1) {
		return fmt.Errorf("%w: p=%v is not in (0,1]", ErrInvalidRule, r.P)
	}
	if r.Path != "" {
		if strings.ContainsAny(r.Path, ",;") {
			return fmt.Errorf("%w: path glob %q contains ',' or ';'", ErrInvalidRule, r.Path)
		}
		if _, err := path.Match(r.Path, ""); err != nil {
			return fmt.Errorf("%w: path glob %q: %v", ErrInvalidRule, r.Path, err)
		}
	}
	if r.HasOff {
		if r.Start < 0 || r.End <= r.Start {
			return fmt.Errorf("%w: byte range [%d,%d) is empty or negative", ErrInvalidRule, r.Start, r.End)
		}
		if r.Ops&offsetOps == 0 {
			return fmt.Errorf("%w: byte range on %s, which have no offsets", ErrInvalidRule, r.Ops)
		}
	} else if r.Start != 0 || r.End != 0 {
		return fmt.Errorf("%w: Start/End set without HasOff", ErrInvalidRule)
	}
	return nil
}

func triggerKey(t Trigger) string {
	switch t {
	case Nth:
		return "nth"
	case Every:
		return "every"
	case After:
		return "after"
	}
	return ""
}

// String returns the canonical textual form of r; ParseRule(r.String())
// returns r for every valid rule.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(r.Ops.String())
	b.WriteByte(':')
	b.WriteString(r.Fault.String())
	switch r.Fault {
	case FaultShort, FaultBitflip:
		if r.Arg >= 0 {
			b.WriteString("=" + strconv.FormatInt(r.Arg, 10))
		}
	case FaultMisdirect:
		if r.Arg > 0 {
			b.WriteByte('=')
			b.WriteByte('+')
		} else {
			b.WriteByte('=')
		}
		b.WriteString(strconv.FormatInt(r.Arg, 10))
	case FaultDelay:
		b.WriteString("=" + time.Duration(r.Arg).String())
	}
	var conds []string
	if r.Trigger != Always {
		conds = append(conds, triggerKey(r.Trigger)+"="+strconv.FormatInt(r.N, 10))
	}
	if r.P != 0 {
		conds = append(conds, "p="+strconv.FormatFloat(r.P, 'g', -1, 64))
	}
	if r.Path != "" {
		conds = append(conds, "path="+r.Path)
	}
	if r.HasOff {
		s := "off=" + strconv.FormatInt(r.Start, 10) + "-"
		if r.End != NoEnd {
			s += strconv.FormatInt(r.End, 10)
		}
		conds = append(conds, s)
	}
	if len(conds) > 0 {
		b.WriteByte('@')
		b.WriteString(strings.Join(conds, ","))
	}
	return b.String()
}

// RuleSet is an ordered list of rules; earlier rules take precedence.
type RuleSet []Rule

// String returns the rules' canonical forms joined by "; ".
func (rs RuleSet) String() string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, "; ")
}

// ErrSyntax is matched (errors.Is) by every *ParseError.
var ErrSyntax = errors.New("faultfs: bad rule syntax")

// ErrInvalidRule is returned by Rule.Validate and New for malformed Rule values.
var ErrInvalidRule = errors.New("faultfs: invalid rule")

// ParseError describes a bad rule string.
type ParseError struct {
	Input    string // the whole string given to Parse or ParseRule
	Pos      int    // byte offset of the offending token in Input (0-based)
	Token    string // the offending token ("" at end of input)
	Expected string // what the parser expected there
}

// Column returns the 1-based column of the offending token.
func (e *ParseError) Column() int { return e.Pos + 1 }

func (e *ParseError) Error() string {
	tok := strconv.Quote(e.Token)
	if e.Token == "" {
		tok = "end of rule"
	}
	return fmt.Sprintf("faultfs: rule %q, column %d: expected %s, got %s", e.Input, e.Column(), e.Expected, tok)
}

// Unwrap makes errors.Is(err, ErrSyntax) hold.
func (e *ParseError) Unwrap() error { return ErrSyntax }

// Parse parses a rule set: rules separated by ';'. The empty string (or only
// spaces) is the empty rule set.
func Parse(s string) (RuleSet, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var rs RuleSet
	p := &parser{in: s}
	for {
		p.skipSpace()
		r, err := p.rule()
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
		p.skipSpace()
		if p.pos == len(p.in) {
			return rs, nil
		}
		if p.in[p.pos] != ';' {
			return nil, p.fail(p.pos, "';' or end of input")
		}
		p.pos++
	}
}

// ParseRule parses exactly one rule.
func ParseRule(s string) (Rule, error) {
	p := &parser{in: s}
	p.skipSpace()
	r, err := p.rule()
	if err != nil {
		return Rule{}, err
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return Rule{}, p.fail(p.pos, "end of rule")
	}
	return r, nil
}

// MustParse is Parse for constant rule strings in tests; it panics on error.
func MustParse(s string) RuleSet {
	rs, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return rs
}

type parser struct {
	in  string
	pos int
}

func (p *parser) skipSpace() {
	for p.pos < len(p.in) && (p.in[p.pos] == ' ' || p.in[p.pos] == '\t' || p.in[p.pos] == '\n') {
		p.pos++
	}
}

// tokenAt returns the token starting at pos: up to the next delimiter, or
// the single delimiter character itself.
func (p *parser) tokenAt(pos int) string {
	if pos >= len(p.in) {
		return ""
	}
	end := pos
	for end < len(p.in) && !strings.ContainsRune(":|@,;= \t\n", rune(p.in[end])) {
		end++
	}
	if end == pos {
		return p.in[pos : pos+1]
	}
	return p.in[pos:end]
}

func (p *parser) fail(pos int, expected string) *ParseError {
	return &ParseError{Input: p.in, Pos: pos, Token: p.tokenAt(pos), Expected: expected}
}

func (p *parser) failTok(pos int, tok, expected string) *ParseError {
	return &ParseError{Input: p.in, Pos: pos, Token: tok, Expected: expected}
}

// word reads a run of lower-case letters (or a single '*').
func (p *parser) word() (string, int) {
	start := p.pos
	if p.pos < len(p.in) && p.in[p.pos] == '*' {
		p.pos++
		return "*", start
	}
	for p.pos < len(p.in) && p.in[p.pos] >= 'a' && p.in[p.pos] <= 'z' {
		p.pos++
	}
	return p.in[start:p.pos], start
}

// value reads a condition or argument value: up to ',', ';', '@' (for fault
// arguments), or the end.
func (p *parser) value(stops string) (string, int) {
	start := p.pos
	for p.pos < len(p.in) && !strings.ContainsRune(stops, rune(p.in[p.pos])) {
		p.pos++
	}
	return p.in[start:p.pos], start
}

func (p *parser) peek() byte {
	if p.pos < len(p.in) {
		return p.in[p.pos]
	}
	return 0
}

const opList = "an operation (open, create, read, write, sync, truncate, stat, remove, rename, close, mkdir, readdir) or *"

func (p *parser) rule() (Rule, error) {
	var r Rule
	// Operations.
	for {
		w, at := p.word()
		if w == "*" {
			if r.Ops != 0 {
				return r, p.failTok(at, "*", "an operation name ('*' stands alone)")
			}
			r.Ops = AllOps
		} else {
			o, ok := lookupOp(w)
			if !ok {
				p.pos = at
				return r, p.fail(at, opList)
			}
			if r.Ops.Has(o) {
				return r, p.failTok(at, w, "an operation not already listed")
			}
			r.Ops |= 1 << o
		}
		switch p.peek() {
		case '|':
			if r.Ops == AllOps && w == "*" {
				return r, p.fail(p.pos, "':' after '*'")
			}
			p.pos++
			continue
		case ':':
			p.pos++
		default:
			return r, p.fail(p.pos, "'|' or ':'")
		}
		break
	}
	// Fault.
	w, at := p.word()
	f, ok := lookupFault(w)
	if !ok {
		return r, p.fail(at, "a fault (eio, enospc, eintr, short, lost, misdirect, bitflip, delay)")
	}
	r.Fault = f
	if bad := r.Ops &^ faultOps[f]; bad != 0 {
		return r, p.failTok(at, w, fmt.Sprintf("a fault that applies to %s (%s applies only to %s)", bad, f, faultOps[f]))
	}
	switch f {
	case FaultShort, FaultBitflip:
		r.Arg = -1
		if p.peek() == '=' {
			p.pos++
			v, vat := p.value("@;")
			n, err := parseSize(v, false)
			if err != nil {
				return r, p.failTok(vat, v, fmt.Sprintf("a non-negative size for %s (%v)", f, err))
			}
			r.Arg = n
		}
	case FaultMisdirect:
		if p.peek() != '=' {
			return r, p.fail(p.pos, "'=' and a displacement after misdirect (e.g. misdirect=+512)")
		}
		p.pos++
		v, vat := p.value("@;")
		n, err := parseSize(v, true)
		if err == nil && n == 0 {
			err = errors.New("zero displacement")
		}
		if err != nil {
			return r, p.failTok(vat, v, fmt.Sprintf("a non-zero signed displacement such as +512 or -4k (%v)", err))
		}
		r.Arg = n
	case FaultDelay:
		if p.peek() != '=' {
			return r, p.fail(p.pos, "'=' and a duration after delay (e.g. delay=1ms)")
		}
		p.pos++
		v, vat := p.value("@;")
		d, err := time.ParseDuration(v)
		if err == nil && d <= 0 {
			err = errors.New("not positive")
		}
		if err != nil {
			return r, p.failTok(vat, v, fmt.Sprintf("a positive duration such as 1ms or 250us (%v)", err))
		}
		r.Arg = int64(d)
	}
	// Conditions.
	switch p.peek() {
	case 0, ';', ' ', '\t', '\n':
		return r, nil
	case '@':
		p.pos++
	default:
		return r, p.fail(p.pos, "'@', ';' or end of rule")
	}
	seen := map[string]bool{}
	for {
		key, kat := p.word()
		if !isCondKey(key) {
			return r, p.fail(kat, "a condition (nth, every, after, p, path, off)")
		}
		if seen[key] {
			return r, p.failTok(kat, key, "a condition not already given")
		}
		seen[key] = true
		if p.peek() != '=' {
			return r, p.fail(p.pos, "'=' after "+key)
		}
		p.pos++
		v, vat := p.value(",; \t\n")
		if (key == "nth" || key == "every" || key == "after") && r.Trigger != Always {
			return r, p.failTok(kat, key, fmt.Sprintf("only one of nth, every, after (already have %s)", triggerKey(r.Trigger)))
		}
		if err := r.setCond(key, v); err != nil {
			return r, p.failTok(vat, v, err.Error())
		}
		if p.peek() != ',' {
			break
		}
		p.pos++
	}
	return r, nil
}

// setCond applies one condition; its error text is the "expected" part of a ParseError.
func (r *Rule) setCond(key, v string) error {
	switch key {
	case "nth", "every", "after":
		n, err := parseSize(v, false)
		if err != nil {
			return fmt.Errorf("a count for %s (%v)", key, err)
		}
		min := int64(1)
		r.Trigger = Nth
		if key == "every" {
			r.Trigger = Every
		} else if key == "after" {
			r.Trigger, min = After, 0
		}
		if n < min {
			return fmt.Errorf("a count for %s of at least %d", key, min)
		}
		r.N = n
	case "p":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0 && f <= 1) {
			return errors.New("a probability in (0,1] such as 0.01")
		}
		r.P = f
	case "path":
		if v == "" {
			return errors.New("a non-empty glob")
		}
		if _, err := path.Match(v, ""); err != nil {
			return fmt.Errorf("a valid glob (%v)", err)
		}
		r.Path = v
	case "off":
		a, b, ok := strings.Cut(v, "-")
		if !ok {
			return errors.New("a byte range start-end (end exclusive) or start-")
		}
		start, err := parseSize(a, false)
		if err != nil {
			return fmt.Errorf("a byte range start-end (start: %v)", err)
		}
		end := int64(NoEnd)
		if b != "" {
			if end, err = parseSize(b, false); err != nil {
				return fmt.Errorf("a byte range start-end (end: %v)", err)
			}
		}
		if end <= start {
			return errors.New("a non-empty byte range start-end with start < end")
		}
		r.HasOff, r.Start, r.End = true, start, end
		if r.Ops&offsetOps == 0 {
			return fmt.Errorf("no byte range: %s have no offsets (only read, write, truncate do)", r.Ops)
		}
	}
	return nil
}

func isCondKey(k string) bool {
	switch k {
	case "nth", "every", "after", "p", "path", "off":
		return true
	}
	return false
}

func lookupOp(w string) (Op, bool) {
	for o, n := range opNames {
		if n == w {
			return Op(o), true
		}
	}
	return 0, false
}

func lookupFault(w string) (Fault, bool) {
	for f := FaultEIO; f < numFaults; f++ {
		if faultNames[f] == w {
			return f, true
		}
	}
	return 0, false
}

// parseSize parses digits with an optional binary suffix k, m or g, and a
// sign when signed is true (required: '+' or '-').
func parseSize(s string, signed bool) (int64, error) {
	neg := false
	if signed {
		if s == "" || (s[0] != '+' && s[0] != '-') {
			return 0, errors.New("missing sign")
		}
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, errors.New("empty number")
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	if s == "" {
		return 0, errors.New("suffix without digits")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal digit", s[i])
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, errors.New("number out of range")
	}
	n *= mult
	if neg {
		n = -n
	}
	return n, nil
}
