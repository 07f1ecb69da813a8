package main

import (
	"fmt"
	"math"
	"strings"
)

// sizeError is a size argument that is not a valid size.
type sizeError struct {
	what   string // "image size", "cluster_size", ...
	input  string
	reason string
}

func (e *sizeError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.what, e.input, e.reason)
}

// sizeUnits maps a suffix to its multiplier (binary, as qemu-img).
var sizeUnits = map[byte]uint64{
	'b': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40, 'p': 1 << 50, 'e': 1 << 60,
}

// parseSize parses a byte count: decimal digits with an optional suffix
// B, K, M, G, T, P or E (any case; powers of 1024). The result fits in an
// int64. what names the argument in the error.
func parseSize(what, s string) (int64, error) {
	bad := func(reason string) (int64, error) {
		return 0, &sizeError{what: what, input: s, reason: reason}
	}
	if s == "" {
		return bad("empty")
	}
	if s[0] == '-' {
		return bad("negative sizes are not allowed")
	}
	digits := s
	mult := uint64(1)
	if last := s[len(s)-1]; last < '0' || last > '9' {
		m, ok := sizeUnits[strings.ToLower(string(last))[0]]
		if !ok {
			return bad(fmt.Sprintf("unknown suffix %q (want K, M, G, T, P or E)", string(last)))
		}
		mult, digits = m, s[:len(s)-1]
	}
	if digits == "" {
		return bad("no digits")
	}
	var n uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return bad(fmt.Sprintf("unexpected %q at position %d (want digits and one suffix)", string(c), i))
		}
		if n > (math.MaxInt64-uint64(c-'0'))/10 {
			return bad("too large")
		}
		n = n*10 + uint64(c-'0')
	}
	if n != 0 && mult > math.MaxInt64/n {
		return bad("too large")
	}
	return int64(n * mult), nil
}

// parseImageSize is parseSize plus QED's rule that a guest size is a
// multiple of 512.
func parseImageSize(s string) (int64, error) {
	n, err := parseSize("image size", s)
	if err != nil {
		return 0, err
	}
	if n%512 != 0 {
		return 0, &sizeError{what: "image size", input: s, reason: fmt.Sprintf("%d bytes is not a multiple of 512", n)}
	}
	return n, nil
}

// humanSize formats n bytes as qemu-img does: three significant digits and
// a binary unit ("644 KiB", "1.5 GiB").
func humanSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	i := 0
	for i < len(units)-1 && v >= 999.5 {
		v /= 1024
		i++
	}
	s := fmt.Sprintf("%.3g", v)
	return s + " " + units[i]
}
