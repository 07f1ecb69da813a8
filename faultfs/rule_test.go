package faultfs

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	cases := []struct {
		in    string
		want  Rule
		canon string // "" = same as in
	}{
		{"write:enospc@nth=17", Rule{Ops: Ops(OpWrite), Fault: FaultENOSPC, Trigger: Nth, N: 17}, ""},
		{"sync:eio@p=0.01", Rule{Ops: Ops(OpSync), Fault: FaultEIO, P: 0.01}, ""},
		{"write:short@every=5,path=*.qed", Rule{Ops: Ops(OpWrite), Fault: FaultShort, Arg: -1, Trigger: Every, N: 5, Path: "*.qed"}, ""},
		{"read:bitflip@after=3,off=0-65536", Rule{Ops: Ops(OpRead), Fault: FaultBitflip, Arg: -1, Trigger: After, N: 3, HasOff: true, Start: 0, End: 65536}, ""},
		{"write:misdirect=+512@nth=2", Rule{Ops: Ops(OpWrite), Fault: FaultMisdirect, Arg: 512, Trigger: Nth, N: 2}, ""},
		{"write:misdirect=-4k", Rule{Ops: Ops(OpWrite), Fault: FaultMisdirect, Arg: -4096}, "write:misdirect=-4096"},
		{"write:short=3", Rule{Ops: Ops(OpWrite), Fault: FaultShort, Arg: 3}, ""},
		{"read:bitflip=9@off=1m-", Rule{Ops: Ops(OpRead), Fault: FaultBitflip, Arg: 9, HasOff: true, Start: 1 << 20, End: NoEnd}, "read:bitflip=9@off=1048576-"},
		{"write|sync|truncate:lost", Rule{Ops: Ops(OpWrite, OpSync, OpTruncate), Fault: FaultLost}, ""},
		{"sync|write:lost", Rule{Ops: Ops(OpWrite, OpSync), Fault: FaultLost}, "write|sync:lost"},
		{"*:eintr@after=0", Rule{Ops: AllOps, Fault: FaultEINTR, Trigger: After, N: 0}, ""},
		{"open|create|read|write|sync|truncate|stat|remove|rename|close|mkdir|readdir:eio", Rule{Ops: AllOps, Fault: FaultEIO}, "*:eio"},
		{"  rename:eio@path=/a/b*.tmp,every=2  ", Rule{Ops: Ops(OpRename), Fault: FaultEIO, Trigger: Every, N: 2, Path: "/a/b*.tmp"}, "rename:eio@every=2,path=/a/b*.tmp"},
		{"truncate:enospc@off=1G-2G,p=1", Rule{Ops: Ops(OpTruncate), Fault: FaultENOSPC, P: 1, HasOff: true, Start: 1 << 30, End: 2 << 30}, "truncate:enospc@p=1,off=1073741824-2147483648"},
		{"read|stat:eio@off=10-20", Rule{Ops: Ops(OpRead, OpStat), Fault: FaultEIO, HasOff: true, Start: 10, End: 20}, ""},
		{"read:delay=1ms@path=back.raw", Rule{Ops: Ops(OpRead), Fault: FaultDelay, Arg: 1e6, Path: "back.raw"}, ""},
		{"*:delay=1500us@every=2", Rule{Ops: AllOps, Fault: FaultDelay, Arg: 1.5e6, Trigger: Every, N: 2}, "*:delay=1.5ms@every=2"},
		{"sync:delay=2s", Rule{Ops: Ops(OpSync), Fault: FaultDelay, Arg: 2e9}, ""},
	}
	for _, c := range cases {
		got, err := ParseRule(c.in)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseRule(%q) = %+v, want %+v", c.in, got, c.want)
		}
		canon := c.canon
		if canon == "" {
			canon = strings.TrimSpace(c.in)
		}
		if s := got.String(); s != canon {
			t.Errorf("ParseRule(%q).String() = %q, want %q", c.in, s, canon)
		}
		again, err := ParseRule(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %q: got %+v, %v", got.String(), again, err)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", c.in, err)
		}
	}
}

func TestParseRuleSet(t *testing.T) {
	rs, err := Parse(" write:enospc@nth=17 ; sync:eio@p=0.5;read:bitflip ")
	if err != nil {
		t.Fatal(err)
	}
	want := RuleSet{
		{Ops: Ops(OpWrite), Fault: FaultENOSPC, Trigger: Nth, N: 17},
		{Ops: Ops(OpSync), Fault: FaultEIO, P: 0.5},
		{Ops: Ops(OpRead), Fault: FaultBitflip, Arg: -1},
	}
	if !reflect.DeepEqual(rs, want) {
		t.Fatalf("Parse = %+v, want %+v", rs, want)
	}
	if s := rs.String(); s != "write:enospc@nth=17; sync:eio@p=0.5; read:bitflip" {
		t.Fatalf("RuleSet.String = %q", s)
	}
	again, err := Parse(rs.String())
	if err != nil || !reflect.DeepEqual(again, rs) {
		t.Fatalf("round trip: %+v, %v", again, err)
	}
	for _, empty := range []string{"", "   "} {
		if rs, err := Parse(empty); err != nil || len(rs) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want empty set", empty, rs, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		in       string
		col      int
		token    string
		expected string // substring of Expected
	}{
		{"wirte:eio", 1, "wirte", "an operation"},
		{"write", 6, "", "'|' or ':'"},
		{"write;eio", 6, ";", "'|' or ':'"},
		{"write:", 7, "", "a fault"},
		{"write:eoi", 7, "eoi", "a fault (eio"},
		{"write:bitflip", 7, "bitflip", "applies to write (bitflip applies only to read)"},
		{"read|sync:short", 11, "short", "applies to read|sync"},
		{"stat:lost", 6, "lost", "lost applies only to write|sync|truncate"},
		{"write:misdirect", 16, "", "'=' and a displacement"},
		{"write:misdirect=512", 17, "512", "signed displacement"},
		{"write:misdirect=+0", 17, "+0", "non-zero"},
		{"write:short=x", 13, "x", "non-negative size"},
		{"read:delay", 11, "", "'=' and a duration"},
		{"read:delay=1", 12, "1", "positive duration"},
		{"read:delay=0s", 12, "0s", "not positive"},
		{"read:delay=-1ms", 12, "-1ms", "positive duration"},
		{"write:eio=3", 10, "=", "'@', ';' or end of rule"},
		{"write:eio@nht=17", 11, "nht", "a condition (nth"},
		{"write:eio@nth", 14, "", "'=' after nth"},
		{"write:eio@nth=0", 15, "0", "at least 1"},
		{"write:eio@every=0", 17, "0", "at least 1"},
		{"write:eio@nth=-1", 15, "-1", "a count for nth"},
		{"write:eio@nth=12x", 15, "12x", "a count for nth"},
		{"write:eio@nth=99999999999999999999", 15, "99999999999999999999", "out of range"},
		{"write:eio@nth=1,every=2", 17, "every", "only one of nth, every, after"},
		{"write:eio@nth=1,nth=2", 17, "nth", "not already given"},
		{"write:eio@p=0", 13, "0", "probability in (0,1]"},
		{"write:eio@p=1.5", 13, "1.5", "probability in (0,1]"},
		{"write:eio@p=NaN", 13, "NaN", "probability in (0,1]"},
		{"write:eio@path=", 16, "", "non-empty glob"},
		{"write:eio@path=[a-", 16, "[a-", "valid glob"},
		{"write:eio@off=10", 15, "10", "start-end"},
		{"write:eio@off=10-10", 15, "10-10", "start < end"},
		{"write:eio@off=a-10", 15, "a-10", "start:"},
		{"sync:eio@off=0-10", 14, "0-10", "have no offsets"},
		{"write:eio@nth=1,", 17, "", "a condition"},
		{"write:eio@nth=1 x", 17, "x", "';' or end"},
		{"write:eio;", 11, "", "an operation"},
		{"write:eio;;sync:eio", 11, ";", "an operation"},
		{"*|write:eio", 2, "|", "':' after '*'"},
		{"write|*:eio", 7, "*", "'*' stands alone"},
		{"write|write:eio", 7, "write", "not already listed"},
		{"WRITE:eio", 1, "WRITE", "an operation"},
	}
	for _, c := range cases {
		_, err := Parse(c.in)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error = %v, want *ParseError", c.in, err)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): errors.Is(err, ErrSyntax) is false", c.in)
		}
		if pe.Column() != c.col || pe.Token != c.token || !strings.Contains(pe.Expected, c.expected) {
			t.Errorf("Parse(%q) = column %d token %q expected %q;\n want column %d token %q expected ~%q",
				c.in, pe.Column(), pe.Token, pe.Expected, c.col, c.token, c.expected)
		}
		if pe.Input != c.in {
			t.Errorf("Parse(%q): Input = %q", c.in, pe.Input)
		}
		if !strings.Contains(err.Error(), "column") {
			t.Errorf("Parse(%q): message %q lacks the column", c.in, err)
		}
	}
	// ParseRule rejects a second rule.
	if _, err := ParseRule("write:eio;sync:eio"); err == nil || err.(*ParseError).Column() != 10 {
		t.Errorf("ParseRule of two rules: %v, want error at column 10", err)
	}
}

func TestValidate(t *testing.T) {
	bad := []Rule{
		{},
		{Ops: Ops(OpWrite)},
		{Ops: Ops(OpRead), Fault: FaultShort},
		{Ops: Ops(OpWrite), Fault: FaultMisdirect},
		{Ops: Ops(OpWrite), Fault: FaultEIO, Arg: 1},
		{Ops: Ops(OpWrite), Fault: FaultEIO, Trigger: Nth},
		{Ops: Ops(OpWrite), Fault: FaultEIO, N: 3},
		{Ops: Ops(OpWrite), Fault: FaultEIO, P: 2},
		{Ops: Ops(OpWrite), Fault: FaultEIO, Path: "a,b"},
		{Ops: Ops(OpWrite), Fault: FaultEIO, HasOff: true, Start: 5, End: 5},
		{Ops: Ops(OpSync), Fault: FaultEIO, HasOff: true, Start: 0, End: 5},
		{Ops: Ops(OpWrite), Fault: FaultEIO, End: 5},
		{Ops: AllOps + 1, Fault: FaultEIO},
		{Ops: Ops(OpRead), Fault: FaultDelay},
		{Ops: Ops(OpRead), Fault: FaultDelay, Arg: -5},
	}
	for _, r := range bad {
		if err := r.Validate(); !errors.Is(err, ErrInvalidRule) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidRule", r, err)
		}
		if _, err := New(nil, 1, RuleSet{r}); !errors.Is(err, ErrInvalidRule) {
			t.Errorf("New with %+v = %v, want ErrInvalidRule", r, err)
		}
	}
}

func TestNewFromStringErrors(t *testing.T) {
	_, err := NewFromString(nil, 1, "write:eio@nth=1;sync:bogus")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Column() != 22 || pe.Token != "bogus" {
		t.Errorf("NewFromString: %v, want ParseError at column 22", err)
	}
}

// FuzzParse asserts Parse never panics and that every accepted rule set
// round-trips through its canonical String.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"write:enospc@nth=17", "sync:eio@p=0.01", "write:short@every=5,path=*.qed",
		"read:bitflip@after=3,off=0-65536", "write:misdirect=+512@nth=2", "*:eio;write|sync:lost@off=1k-",
		"read:delay=1ms@path=b*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Pos < 0 || pe.Pos > len(s) {
				t.Fatalf("Parse(%q): bad error %v", s, err)
			}
			return
		}
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatalf("Parse(%q) accepted invalid rule %+v: %v", s, r, err)
			}
		}
		again, err := Parse(rs.String())
		if err != nil || !reflect.DeepEqual(again, rs) {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, rs.String(), again, err)
		}
	})
}
