package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
	"github.com/spf13/cobra"
)

// parseOptions splits qemu-img style -o values ("k=v,k=v"; the flag may be
// repeated) into a map, rejecting keys outside allowed and repeated keys.
func parseOptions(cmd *cobra.Command, values []string, allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		for _, kv := range strings.Split(v, ",") {
			if kv == "" {
				continue
			}
			k, val, ok := strings.Cut(kv, "=")
			if !ok || val == "" {
				return nil, usagef(cmd, "invalid option %q: want key=value", kv)
			}
			known := false
			for _, a := range allowed {
				known = known || a == k
			}
			if !known {
				return nil, usagef(cmd, "unknown option %q (supported: %s)", k, strings.Join(allowed, ", "))
			}
			if _, dup := out[k]; dup {
				return nil, usagef(cmd, "option %q given twice", k)
			}
			out[k] = val
		}
	}
	return out, nil
}

// backingOptions merges -o backing_file and -o backing_fmt into the
// values of the flags that set the same things (create -b, convert -B;
// -F): a flag and an option that disagree are a usage error naming both.
// backingFlag is the flag's name for the message ("-b", "-B").
func backingOptions(cmd *cobra.Command, o map[string]string, backingFlag string, backing, backingFmt *string) error {
	for _, m := range []struct {
		key, flag string
		v         *string
	}{{"backing_file", backingFlag, backing}, {"backing_fmt", "-F", backingFmt}} {
		if v, ok := o[m.key]; ok {
			if *m.v != "" && *m.v != v {
				return usagef(cmd, "%s %q and -o %s=%q disagree", m.flag, *m.v, m.key, v)
			}
			*m.v = v
		}
	}
	return nil
}

// checkCopyFormats checks the formats of a command that copies an image
// into a new one (convert, dd): -f raw or qed (empty: probed), -O raw or
// qed.
func checkCopyFormats(cmd *cobra.Command, srcFmt, dstFmt string) error {
	if srcFmt != "" {
		if err := checkFormat(cmd, "source format (-f)", srcFmt, "raw", "qed"); err != nil {
			return err
		}
	}
	return checkFormat(cmd, "output format (-O)", dstFmt, "raw", "qed")
}

// checkBackingFormat checks -F: it needs a backing file (named by the flag
// backingFlag, "-b" or "-B") and is raw or qed.
func checkBackingFormat(cmd *cobra.Command, backingFmt, backing, backingFlag string) error {
	if backingFmt == "" {
		return nil
	}
	if backing == "" {
		return usagef(cmd, "-F %s needs a backing file (%s)", backingFmt, backingFlag)
	}
	return checkFormat(cmd, "backing format (-F)", backingFmt, "raw", "qed")
}

// geometryOptions reads cluster_size and table_size from parsed -o options.
func geometryOptions(cmd *cobra.Command, o map[string]string) (cluster, table uint32, err error) {
	if v, ok := o["cluster_size"]; ok {
		n, err := parseSize("cluster_size", v)
		if err != nil {
			return 0, 0, &usageError{cmd: cmd.CommandPath(), err: err}
		}
		if n < qed.MinClusterSize || n > qed.MaxClusterSize || n&(n-1) != 0 {
			return 0, 0, usagef(cmd, "invalid cluster_size %q: must be a power of two from %d to %d bytes", v, qed.MinClusterSize, qed.MaxClusterSize)
		}
		cluster = uint32(n)
	}
	if v, ok := o["table_size"]; ok {
		n, err := parseSize("table_size", v)
		if err != nil {
			return 0, 0, &usageError{cmd: cmd.CommandPath(), err: err}
		}
		if n < qed.MinTableSize || n > qed.MaxTableSize || n&(n-1) != 0 {
			return 0, 0, usagef(cmd, "invalid table_size %q: must be a power of two from %d to %d clusters", v, qed.MinTableSize, qed.MaxTableSize)
		}
		table = uint32(n)
	}
	return cluster, table, nil
}

// checkFormat validates a -f/-F/-O format name.
func checkFormat(cmd *cobra.Command, flag, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return usagef(cmd, "invalid %s %q: want %s", flag, v, strings.Join(allowed, " or "))
}

// probeFormat reports "qed" when the file starts with the QED magic and
// "raw" otherwise (QED's own probing rule for backing files).
func probeFormat(fs afero.Fs, path string) (string, error) {
	f, err := fs.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b [4]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil && n < len(b) {
		return "raw", nil // shorter than a magic: raw
	}
	if b == [4]byte{'Q', 'E', 'D', 0} {
		return "qed", nil
	}
	return "raw", nil
}

// resolveBacking returns the path of a backing file named name by the image
// at imagePath: absolute names as they are, relative ones against the
// image's directory.
func resolveBacking(imagePath, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(filepath.Dir(imagePath), name)
}

// formatBytes names a count for messages.
func formatBytes(n int64) string { return fmt.Sprintf("%d bytes", n) }
