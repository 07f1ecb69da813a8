package main

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"512", 512}, {"1k", 1024}, {"1K", 1024}, {"64K", 65536}, {"1M", 1 << 20},
		{"3m", 3 << 20}, {"2G", 2 << 30}, {"1T", 1 << 40}, {"1P", 1 << 50}, {"7E", 7 << 60},
		{"100b", 100}, {"9223372036854775807", 9223372036854775807},
	}
	for _, c := range good {
		got, err := parseSize("size", c.in)
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []struct{ in, reason string }{
		{"", "empty"},
		{"-1", "negative"},
		{"-1M", "negative"},
		{"+5", "unexpected"},
		{"1X", "unknown suffix"},
		{"1.5G", "unexpected"},
		{"M", "no digits"},
		{"0x100", "unexpected"},
		{"12 M", "unexpected"},
		{"8E", "too large"},
		{"9223372036854775808", "too large"},
		{"99999999999999999999999", "too large"},
		{"17179869184G", "too large"},
	}
	for _, c := range bad {
		_, err := parseSize("size", c.in)
		var se *sizeError
		if !errors.As(err, &se) {
			t.Errorf("parseSize(%q): err = %v, want a sizeError", c.in, err)
			continue
		}
		if !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), c.in) {
			t.Errorf("parseSize(%q) = %q, want it to name the input and say %q", c.in, err, c.reason)
		}
	}
}

func TestParseImageSize(t *testing.T) {
	if n, err := parseImageSize("1536"); err != nil || n != 1536 {
		t.Errorf("1536: %d %v", n, err)
	}
	for _, in := range []string{"1000", "513", "1023"} {
		_, err := parseImageSize(in)
		if err == nil || !strings.Contains(err.Error(), "multiple of 512") {
			t.Errorf("parseImageSize(%q) = %v, want a multiple-of-512 error", in, err)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {512, "512 B"}, {1 << 20, "1 MiB"}, {659456, "644 KiB"},
		{3 << 29, "1.5 GiB"}, {1023, "0.999 KiB"}, {10 << 40, "10 TiB"},
	} {
		if got := humanSize(c.n); got != c.want {
			t.Errorf("humanSize(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
