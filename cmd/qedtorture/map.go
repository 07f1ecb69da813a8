package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/cobra"
)

// maxChainDepth bounds the backing chain map walks (as impl/qed's default).
const maxChainDepth = 16

// mapEntry mirrors one element of qemu-img map --output=json.
type mapEntry struct {
	Start   int64  `json:"start"`
	Length  int64  `json:"length"`
	Depth   int    `json:"depth"`
	Present bool   `json:"present"`
	Zero    bool   `json:"zero"`
	Data    bool   `json:"data"`
	Offset  *int64 `json:"offset,omitempty"`
	file    string // the layer's file, for the human listing
}

// layer is one image of a backing chain: a QED image with its extents, or a
// raw file (always the last layer).
type layer struct {
	path    string
	size    int64
	raw     bool
	extents []qed.Extent // sorted by Start; QED layers only
}

func newMapCommand(e *env) *cobra.Command {
	var (
		output           outputFormat
		format           string
		share            bool
		startArg, lenArg string
	)
	cmd := &cobra.Command{
		Use:   "map [--output human|json] [--start-offset N] [--max-length N] [-U] IMG",
		Short: "Show where each guest range of a QED image lives",
		Long: `Show, for each guest range, which layer of the backing chain provides it
(depth 0 is IMG) and how: data at a host offset, a zero cluster, or
unallocated (zeros, or past the end of a shorter backing file); with
--start-offset and --max-length only that part of the guest range. The JSON shape
is qemu-img map's; the human listing shows only the ranges with data. Each
file of the chain is locked read-only while it is read, as QEMU locks it: map
fails while another process writes one, unless -U (--force-share) is given.`,
		Example: `  qedtorture map disk.qed
  qedtorture map --output json disk.qed`,
		Args: argsBetween(1, 1, "IMG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(cmd, "format (-f)", format, "qed"); err != nil {
				return err
			}
			img := args[0]
			var start, length int64 = 0, -1
			for _, a := range []struct {
				flag, v string
				dst     *int64
			}{{"--start-offset", startArg, &start}, {"--max-length", lenArg, &length}} {
				if a.v == "" {
					continue
				}
				n, err := parseSize(a.flag, a.v)
				if err != nil {
					return &usageError{cmd: cmd.CommandPath(), err: err}
				}
				*a.dst = n
			}
			chain, err := openChain(e, img, share)
			if err != nil {
				return fail(err)
			}
			end := chain[0].size
			if length >= 0 && length < end-start {
				end = start + length
			}
			var entries []mapEntry
			resolveRange(chain, 0, start, end, func(m mapEntry) { entries = appendMerged(entries, m) })
			if len(entries) == 0 {
				// An empty range: qemu-img prints one empty, absent range.
				entries = []mapEntry{{Start: start, file: img}}
			}
			if output.json() {
				return writeMapJSON(e, entries)
			}
			fmt.Fprintf(e.stdout, "%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File")
			for _, m := range entries {
				if m.Data && m.Offset != nil {
					fmt.Fprintf(e.stdout, "%-16s%-16s%-16s%s\n", hex(m.Start), hex(m.Length), hex(*m.Offset), m.file)
				}
			}
			return nil
		},
	}
	cmd.Flags().Var(&output, "output", "output format: human or json")
	cmd.Flags().StringVarP(&format, "format", "f", "qed", "image format (only qed)")
	cmd.Flags().StringVar(&startArg, "start-offset", "", "first guest byte to map (default 0)")
	cmd.Flags().StringVar(&lenArg, "max-length", "", "map at most this many bytes (default: to the end)")
	cmd.Flags().BoolVarP(&share, "force-share", "U", false, "read the chain even while another process writes it (no consistency guarantee)")
	return cmd
}

// hex formats as qemu-img's %#x: "0" for zero, 0x-prefixed otherwise.
func hex(n int64) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", n)
}

// openChain maps img and each image of its backing chain (read-only).
func openChain(e *env, img string, share bool) ([]layer, error) {
	var chain []layer
	seen := map[string]bool{}
	path, fmtName := img, "qed"
	for {
		if len(chain) >= maxChainDepth {
			return nil, fmt.Errorf("%s: backing chain deeper than %d images", img, maxChainDepth)
		}
		if seen[path] {
			return nil, fmt.Errorf("%s: backing chain loops at %s", img, path)
		}
		seen[path] = true
		if fmtName == "raw" {
			size, ext, err := rawExtents(e, path, share)
			if err != nil {
				return nil, fileError(path, err)
			}
			return append(chain, layer{path: path, size: size, raw: true, extents: ext}), nil
		}
		im, err := qed.Open(e.fs, path, qed.OpenOptions{ReadOnly: true, ForceShare: share, IdleClearDelay: -1})
		if err != nil {
			return nil, fileError(path, err)
		}
		ext, err := im.Map()
		h := im.Header()
		size := im.Size()
		im.Close()
		if err != nil {
			return nil, fileError(path, err)
		}
		sort.Slice(ext, func(i, j int) bool { return ext[i].Start < ext[j].Start })
		chain = append(chain, layer{path: path, size: size, extents: ext})
		if h.Features&qed.FeatureBackingFile == 0 {
			return chain, nil
		}
		next := resolveBacking(path, h.BackingFilename)
		if h.Features&qed.FeatureBackingNoProbe != 0 {
			fmtName = "raw"
		} else if fmtName, err = probeFormat(e.fs, next); err != nil {
			return nil, failf("%s: backing file: %v", path, fileError(next, err))
		}
		path = next
	}
}

// rawExtents returns the length of the raw file at path and its data and
// hole ranges (holes as ExtentZero), found with SEEK_DATA/SEEK_HOLE where
// the filesystem supports them; otherwise the whole file is data.
func rawExtents(e *env, path string, share bool) (int64, []qed.Extent, error) {
	f, err := openRaw(e, path, false, share)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := st.Size()
	all := []qed.Extent{{Start: 0, Length: size, Kind: qed.ExtentData}}
	osf, ok := f.(*os.File)
	if !ok || size == 0 {
		return size, all, nil
	}
	var ext []qed.Extent
	for pos := int64(0); pos < size; {
		data, err := osf.Seek(pos, seekData)
		if err != nil || data >= size {
			if err != nil && !errors.Is(err, syscall.ENXIO) {
				return size, all, nil // no SEEK_DATA here: all data
			}
			data = size
		}
		if data > pos {
			ext = append(ext, qed.Extent{Start: pos, Length: data - pos, Kind: qed.ExtentZero})
		}
		if data >= size {
			break
		}
		hole, err := osf.Seek(data, seekHole)
		if err != nil || hole > size {
			hole = size
		}
		ext = append(ext, qed.Extent{Start: data, Length: hole - data, Kind: qed.ExtentData})
		pos = hole
	}
	return size, ext, nil
}

// lseek whence values for data and holes (Linux, the BSDs, Solaris).
const (
	seekData = 3
	seekHole = 4
)

// resolveRange emits the mapping of guest bytes [start, end) as seen from
// layer i of chain.
func resolveRange(chain []layer, i int, start, end int64, emit func(mapEntry)) {
	if start >= end {
		return
	}
	l := chain[i]
	if l.raw {
		for _, x := range l.extents {
			xs, xe := max(x.Start, start), min(x.Start+x.Length, end)
			if xs < xe {
				off := xs // raw: guest offset = host offset
				emit(mapEntry{Start: xs, Length: xe - xs, Depth: i, Present: true,
					Data: x.Kind == qed.ExtentData, Zero: x.Kind != qed.ExtentData, Offset: &off, file: l.path})
			}
		}
		return
	}
	unallocated := func(s, e int64) {
		if s >= e {
			return
		}
		if i+1 < len(chain) {
			bend := min(e, chain[i+1].size)
			resolveRange(chain, i+1, s, bend, emit)
			s = max(s, bend)
		}
		if s < e {
			emit(mapEntry{Start: s, Length: e - s, Depth: i, Zero: true, file: l.path})
		}
	}
	pos := start
	for _, x := range l.extents {
		xs, xe := max(x.Start, pos), min(x.Start+x.Length, end)
		if xs >= xe {
			continue
		}
		unallocated(pos, xs) // a gap in the extent list reads as unallocated
		switch x.Kind {
		case qed.ExtentData:
			off := x.HostOffset + (xs - x.Start)
			emit(mapEntry{Start: xs, Length: xe - xs, Depth: i, Present: true, Data: true, Offset: &off, file: l.path})
		case qed.ExtentZero:
			emit(mapEntry{Start: xs, Length: xe - xs, Depth: i, Present: true, Zero: true, file: l.path})
		default:
			unallocated(xs, xe)
		}
		pos = xe
	}
	unallocated(pos, end)
}

// appendMerged appends m, merging it into the last entry when it continues
// it (same layer and kind, contiguous in the host file for data).
func appendMerged(entries []mapEntry, m mapEntry) []mapEntry {
	if n := len(entries); n > 0 {
		p := &entries[n-1]
		if p.Start+p.Length == m.Start && p.Depth == m.Depth && p.Present == m.Present &&
			p.Zero == m.Zero && p.Data == m.Data && p.file == m.file &&
			(p.Offset == nil) == (m.Offset == nil) &&
			(p.Offset == nil || *p.Offset+p.Length == *m.Offset) {
			p.Length += m.Length
			return entries
		}
	}
	return append(entries, m)
}

// writeMapJSON prints entries one per line inside a JSON array, as qemu-img.
func writeMapJSON(e *env, entries []mapEntry) error {
	w := e.stdout
	fmt.Fprint(w, "[")
	for i, m := range entries {
		if i > 0 {
			fmt.Fprint(w, ",\n")
		}
		fmt.Fprintf(w, `{ "start": %d, "length": %d, "depth": %d, "present": %t, "zero": %t, "data": %t`,
			m.Start, m.Length, m.Depth, m.Present, m.Zero, m.Data)
		if m.Offset != nil {
			fmt.Fprintf(w, `, "offset": %d`, *m.Offset)
		}
		fmt.Fprint(w, "}")
	}
	_, err := fmt.Fprint(w, "]\n")
	return fail(err)
}
