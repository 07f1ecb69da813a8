package main

import (
	"encoding/json"
	"fmt"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/cobra"
)

// infoJSON mirrors qemu-img info --output=json for one QED image. QEMU 7.2
// prints no format-specific data for QED; ours carries the header fields.
type infoJSON struct {
	VirtualSize           int64          `json:"virtual-size"`
	Filename              string         `json:"filename"`
	ClusterSize           int64          `json:"cluster-size"`
	Format                string         `json:"format"`
	ActualSize            int64          `json:"actual-size"`
	BackingFilename       string         `json:"backing-filename,omitempty"`
	FullBackingFilename   string         `json:"full-backing-filename,omitempty"`
	BackingFilenameFormat string         `json:"backing-filename-format,omitempty"`
	DirtyFlag             bool           `json:"dirty-flag"`
	FormatSpecific        formatSpecific `json:"format-specific"`
}

type formatSpecific struct {
	Type string       `json:"type"`
	Data qedSpecifics `json:"data"`
}

type qedSpecifics struct {
	TableSize          uint32   `json:"table_size"`
	HeaderSize         uint32   `json:"header_size"`
	L1TableOffset      uint64   `json:"l1_table_offset"`
	Features           uint64   `json:"features"`
	CompatFeatures     uint64   `json:"compat_features"`
	AutoclearFeatures  uint64   `json:"autoclear_features"`
	FeatureNames       []string `json:"feature_names"`
	NeedCheck          bool     `json:"need_check"`
	BackingFormatProbe bool     `json:"backing_format_probe,omitempty"`
}

// rawInfoJSON mirrors qemu-img info --output=json for a raw image (a raw
// backing file in --backing-chain).
type rawInfoJSON struct {
	VirtualSize int64  `json:"virtual-size"`
	Filename    string `json:"filename"`
	Format      string `json:"format"`
	ActualSize  int64  `json:"actual-size"`
	DirtyFlag   bool   `json:"dirty-flag"`
}

func newInfoCommand(e *env) *cobra.Command {
	var (
		output       outputFormat
		format       string
		share, chain bool
	)
	cmd := &cobra.Command{
		Use:   "info [--output human|json] [--backing-chain] [-U] IMG",
		Short: "Show a QED image's header and sizes",
		Long: `Show the geometry, sizes, backing file and feature bits of a QED image. Only
the header is read (the backing file need not exist); it is validated as a
writable open would validate it. With --backing-chain the same is shown for
every file of the backing chain in turn (a raw backing file as qemu-img shows
it), separated by a blank line, or as a JSON array; every file must then
exist. Each file is locked read-only while it is read, as QEMU locks it:
info fails while another process (a VM, qemu-io) writes it, unless -U
(--force-share) is given.`,
		Example: `  qedtorture info disk.qed
  qedtorture info --backing-chain --output json overlay.qed`,
		Args: argsBetween(1, 1, "IMG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(cmd, "format (-f)", format, "qed"); err != nil {
				return err
			}
			img := args[0]
			info, err := qedInfo(e, img, share)
			if err != nil {
				return err
			}
			if !chain {
				if output.json() {
					return writeJSON(e, info)
				}
				printInfo(e, info)
				return nil
			}
			infos := []any{info}
			seen := []string{img}
			for cur := info; cur.BackingFilename != ""; {
				if len(infos) > maxChainDepth {
					return failf("%s: backing chain deeper than %d images", img, maxChainDepth)
				}
				next := cur.FullBackingFilename
				for _, s := range seen {
					if sameFile(e, s, next) {
						return failf("%s: backing chain loops at %s", img, next)
					}
				}
				seen = append(seen, next)
				f := cur.BackingFilenameFormat
				if f == "" {
					if f, err = probeFormat(e.fs, next); err != nil {
						return failf("%s: backing file: %v", cur.Filename, fileError(next, err))
					}
				}
				if f == "raw" {
					ri, err := rawInfo(e, next, share)
					if err != nil {
						return err
					}
					infos = append(infos, ri)
					break
				}
				if cur, err = qedInfo(e, next, share); err != nil {
					return err
				}
				infos = append(infos, cur)
			}
			if output.json() {
				return writeJSON(e, infos)
			}
			for i, x := range infos {
				if i > 0 {
					fmt.Fprintln(e.stdout)
				}
				switch v := x.(type) {
				case infoJSON:
					printInfo(e, v)
				case rawInfoJSON:
					w := e.stdout
					fmt.Fprintf(w, "image: %s\nfile format: raw\n", v.Filename)
					fmt.Fprintf(w, "virtual size: %s (%d bytes)\n", humanSize(v.VirtualSize), v.VirtualSize)
					fmt.Fprintf(w, "disk size: %s\n", humanSize(v.ActualSize))
				}
			}
			return nil
		},
	}
	cmd.Flags().Var(&output, "output", "output format: human or json")
	cmd.Flags().StringVarP(&format, "format", "f", "qed", "image format (only qed)")
	cmd.Flags().BoolVar(&chain, "backing-chain", false, "show every file of the backing chain")
	cmd.Flags().BoolVarP(&share, "force-share", "U", false, "read IMG even while another process writes it (no consistency guarantee)")
	return cmd
}

// qedInfo reads the header of the QED image img (locked read-only, or
// force-share) and describes it.
func qedInfo(e *env, img string, share bool) (infoJSON, error) {
	h, err := qed.ReadHeaderWith(e.fs, img, qed.OpenOptions{ForceShare: share})
	if err != nil {
		return infoJSON{}, fileError(img, err)
	}
	st, err := e.fs.Stat(img)
	if err != nil {
		return infoJSON{}, fileError(img, err)
	}
	info := infoJSON{
		VirtualSize: int64(h.ImageSize),
		Filename:    img,
		ClusterSize: int64(h.ClusterSize),
		Format:      "qed",
		ActualSize:  diskUsage(st),
		DirtyFlag:   h.Features&qed.FeatureNeedCheck != 0,
		FormatSpecific: formatSpecific{Type: "qed", Data: qedSpecifics{
			TableSize:         h.TableSize,
			HeaderSize:        h.HeaderSize,
			L1TableOffset:     h.L1TableOffset,
			Features:          h.Features,
			CompatFeatures:    h.CompatFeatures,
			AutoclearFeatures: h.AutoclearFeatures,
			FeatureNames:      featureNames(h.Features),
			NeedCheck:         h.Features&qed.FeatureNeedCheck != 0,
		}},
	}
	if h.Features&qed.FeatureBackingFile != 0 {
		info.BackingFilename = h.BackingFilename
		info.FullBackingFilename = resolveBacking(img, h.BackingFilename)
		if h.Features&qed.FeatureBackingNoProbe != 0 {
			info.BackingFilenameFormat = "raw"
		} else {
			info.FormatSpecific.Data.BackingFormatProbe = true
		}
	}
	return info, nil
}

// rawInfo describes the raw file path (locked read-only, or force-share).
func rawInfo(e *env, path string, share bool) (rawInfoJSON, error) {
	f, err := openRaw(e, path, false, share)
	if err != nil {
		return rawInfoJSON{}, fileError(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return rawInfoJSON{}, fileError(path, err)
	}
	return rawInfoJSON{VirtualSize: st.Size(), Filename: path, Format: "raw", ActualSize: diskUsage(st)}, nil
}

// printInfo prints info as qemu-img info does, plus the QED header fields.
func printInfo(e *env, info infoJSON) {
	w := e.stdout
	fmt.Fprintf(w, "image: %s\n", info.Filename)
	fmt.Fprintf(w, "file format: qed\n")
	fmt.Fprintf(w, "virtual size: %s (%d bytes)\n", humanSize(info.VirtualSize), info.VirtualSize)
	fmt.Fprintf(w, "disk size: %s\n", humanSize(info.ActualSize))
	fmt.Fprintf(w, "cluster_size: %d\n", info.ClusterSize)
	if info.BackingFilename != "" {
		fmt.Fprintf(w, "backing file: %s", info.BackingFilename)
		if info.FullBackingFilename != info.BackingFilename {
			fmt.Fprintf(w, " (actual path: %s)", info.FullBackingFilename)
		}
		fmt.Fprintln(w)
		if info.BackingFilenameFormat != "" {
			fmt.Fprintf(w, "backing file format: %s\n", info.BackingFilenameFormat)
		}
	}
	d := info.FormatSpecific.Data
	fmt.Fprintf(w, "Format specific information:\n")
	fmt.Fprintf(w, "    table_size: %d\n", d.TableSize)
	fmt.Fprintf(w, "    header_size: %d\n", d.HeaderSize)
	fmt.Fprintf(w, "    features: %#x %v\n", d.Features, d.FeatureNames)
	if d.CompatFeatures != 0 || d.AutoclearFeatures != 0 {
		fmt.Fprintf(w, "    compat_features: %#x\n    autoclear_features: %#x\n", d.CompatFeatures, d.AutoclearFeatures)
	}
	fmt.Fprintf(w, "    need_check: %t\n", d.NeedCheck)
}

// featureNames names the set feature bits, unknown ones in hex.
func featureNames(f uint64) []string {
	names := []string{}
	for _, b := range []struct {
		bit  uint64
		name string
	}{
		{qed.FeatureBackingFile, "backing_file"},
		{qed.FeatureNeedCheck, "need_check"},
		{qed.FeatureBackingNoProbe, "backing_format_no_probe"},
	} {
		if f&b.bit != 0 {
			names = append(names, b.name)
			f &^= b.bit
		}
	}
	if f != 0 {
		names = append(names, fmt.Sprintf("unknown:%#x", f))
	}
	return names
}

func writeJSON(e *env, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return fail(err)
	}
	b = append(b, '\n')
	if _, err := e.stdout.Write(b); err != nil {
		return fail(err)
	}
	return nil
}
