package campaign

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// Known is a list of known findings: failure signatures (Failure.Signature)
// or patterns of them, each with a name. A campaign with Config.Known
// counts a failure whose signature matches as known (Report.Known): it is
// not minimized, no artifact is written, it does not count towards
// MaxFailures and it is not in Report.Failures, so only new failures make
// the run fail.
//
// The file form (--known FILE) is one entry a line: a signature pattern
// (path.Match syntax: "*" matches within one "/"-separated part), then,
// after white space, the finding's name and description; blank lines and
// lines starting with "#" are comments.
type Known struct {
	entries []knownEntry
}

type knownEntry struct {
	pattern, name string
}

// ParseKnown reads a known-findings file; name is used in errors.
func ParseKnown(r io.Reader, name string) (*Known, error) {
	k := &Known{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pat, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexAny(pat, "\t"); i >= 0 {
			pat, rest = pat[:i], pat[i+1:]+" "+rest
		}
		if _, err := path.Match(pat, ""); err != nil {
			return nil, fmt.Errorf("%w: %s:%d: signature pattern %q: %v", ErrConfig, name, n, pat, err)
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			rest = pat
		}
		k.entries = append(k.entries, knownEntry{pattern: pat, name: rest})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, name, err)
	}
	return k, nil
}

// Match returns the name of the first entry sig matches.
func (k *Known) Match(sig string) (string, bool) {
	if k == nil {
		return "", false
	}
	for _, e := range k.entries {
		if ok, _ := path.Match(e.pattern, sig); ok {
			return e.name, true
		}
	}
	return "", false
}

// Len is the number of entries.
func (k *Known) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}
