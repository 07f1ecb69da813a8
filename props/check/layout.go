package check

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Layout says what each host byte range of a QED image file is: the
// header (and which of its fields), the L1 table (which entries), an L2
// table (which table, which entries), the data of a guest cluster, or
// nothing the tables reference. It is decoded leniently from whatever
// image it is given (an image at the end of a run, whose tables link
// every cluster written): out-of-range table offsets are ignored, never
// trusted. It labels the writes of a trace (qedtorture show, trace.txt).
type Layout struct {
	cs, headerEnd, l1, tableBytes, per uint64
	size                               uint64 // the file's length
	ok                                 bool
	l2                                 map[uint64]uint64 // L2 table host offset -> L1 index
	data                               map[uint64]uint64 // data cluster host offset -> guest cluster
}

// headerFields are the header's fields by byte offset.
var headerFields = []struct {
	off, len int
	name     string
}{
	{0, 4, "magic"}, {4, 4, "cluster_size"}, {8, 4, "table_size"}, {12, 4, "header_size"},
	{16, 8, "features"}, {24, 8, "compat_features"}, {32, 8, "autoclear_features"},
	{40, 8, "l1_table_offset"}, {48, 8, "image_size"}, {56, 4, "backing_filename_offset"},
	{60, 4, "backing_filename_size"},
}

// NewLayout decodes img's layout (a layout that labels only offsets when
// img is not a QED image).
func NewLayout(img []byte) *Layout {
	rep := Structure(img)
	h := rep.Header
	l := &Layout{}
	if h.Magic != qedMagic || h.ClusterSize < 4096 || h.ClusterSize&(h.ClusterSize-1) != 0 ||
		h.TableSize == 0 || h.TableSize > 16 || h.HeaderSize == 0 {
		return l
	}
	le := binary.LittleEndian
	l.ok, l.cs, l.size = true, uint64(h.ClusterSize), uint64(len(img))
	l.headerEnd, l.l1 = uint64(h.HeaderSize)*l.cs, h.L1TableOffset
	l.tableBytes = uint64(h.TableSize) * l.cs
	l.per = l.tableBytes / entrySize
	l.l2, l.data = map[uint64]uint64{}, map[uint64]uint64{}
	n := uint64(len(img))
	if l.l1+l.tableBytes > n {
		return l
	}
	for i := range l.per {
		t := le.Uint64(img[l.l1+i*entrySize:])
		if t == 0 || t%l.cs != 0 || t+l.tableBytes > n {
			continue
		}
		l.l2[t] = i
		for j := range l.per {
			if v := le.Uint64(img[t+j*entrySize:]); v > 1 && v%l.cs == 0 {
				l.data[v] = i*l.per + j
			}
		}
	}
	return l
}

// Label names the host range [off, off+n) of the image file.
func (l *Layout) Label(off, n int64) string {
	if !l.ok || off < 0 || n <= 0 {
		return fmt.Sprintf("bytes %#x+%#x (the image has no valid header to map it)", off, n)
	}
	o, end := uint64(off), uint64(off+n)
	switch {
	case o < l.headerEnd:
		var fs []string
		for _, f := range headerFields {
			if uint64(f.off) < end && o < uint64(f.off+f.len) {
				fs = append(fs, f.name)
			}
		}
		if end > 64 {
			fs = append(fs, "backing file name and padding")
		}
		h := "header (" + strings.Join(fs, ", ") + ")"
		if end > l.headerEnd {
			h += " and " + l.Label(int64(l.headerEnd), int64(end-l.headerEnd))
		}
		return h
	case o >= l.l1 && o < l.l1+l.tableBytes:
		return "L1 " + entries((o-l.l1)/entrySize, (min(end, l.l1+l.tableBytes)-l.l1-1)/entrySize)
	}
	for t, i := range l.l2 {
		if o >= t && o < t+l.tableBytes {
			return fmt.Sprintf("L2 table %d (L1 entry %d) %s", i, i, entries((o-t)/entrySize, (min(end, t+l.tableBytes)-t-1)/entrySize))
		}
	}
	c := o &^ (l.cs - 1)
	if g, ok := l.data[c]; ok {
		last := (end - 1) &^ (l.cs - 1)
		if last == c {
			return fmt.Sprintf("data of guest cluster %d (guest bytes %#x+%#x)", g, g*l.cs+(o-c), end-o)
		}
		return fmt.Sprintf("data of guest cluster %d and on (host clusters %#x..%#x)", g, c, last)
	}
	return fmt.Sprintf("host cluster %#x: not referenced by the tables (a table or data not linked, or freed)", c)
}

func entries(a, b uint64) string {
	if a == b {
		return fmt.Sprintf("entry %d", a)
	}
	return fmt.Sprintf("entries %d..%d", a, b)
}

// HeaderChanges names the header fields that differ between two header
// images (the file's first bytes before and after a write); nil when none
// does. A changed features field says whether NEED_CHECK was set or
// cleared.
func HeaderChanges(before, after []byte) []string {
	var out []string
	for _, f := range headerFields {
		e := f.off + f.len
		if e > len(after) {
			break
		}
		var old []byte
		if e <= len(before) {
			old = before[f.off:e]
		}
		if string(old) == string(after[f.off:e]) {
			continue
		}
		name := f.name
		if f.name == "features" && len(old) == 8 {
			was := binary.LittleEndian.Uint64(old)&featNeedCheck != 0
			now := binary.LittleEndian.Uint64(after[f.off:e])&featNeedCheck != 0
			switch {
			case now && !was:
				name += ": NEED_CHECK set"
			case was && !now:
				name += ": NEED_CHECK cleared"
			}
		}
		out = append(out, name)
	}
	return out
}

// A ClusterRole is what one host cluster of an image file is, by the
// layout: "header", "L1", "L2" (Table: the L1 entry linking it), "data"
// (Guest: the guest cluster it holds) or "unreferenced" (no table entry
// points at it).
type ClusterRole struct {
	Host  uint64
	Kind  string
	Table uint64
	Guest uint64
}

// ClusterSize is the image's cluster size (0: the image has no valid
// header, and no clusters to map).
func (l *Layout) ClusterSize() uint64 {
	if !l.ok {
		return 0
	}
	return l.cs
}

// Clusters lists what each cluster of the file is, in file order (a last
// partial cluster included), at most limit of them (limit <= 0: all); nil when
// the image has no valid header.
func (l *Layout) Clusters(limit int) []ClusterRole {
	if !l.ok {
		return nil
	}
	var out []ClusterRole
	for c := uint64(0); c < l.size; c += l.cs {
		if limit > 0 && len(out) == limit {
			break
		}
		r := ClusterRole{Host: c, Kind: "unreferenced"}
		switch {
		case c < l.headerEnd:
			r.Kind = "header"
		case c >= l.l1 && c < l.l1+l.tableBytes:
			r.Kind = "L1"
		default:
			for t, i := range l.l2 {
				if c >= t && c < t+l.tableBytes {
					r.Kind, r.Table = "L2", i
				}
			}
			if g, ok := l.data[c]; ok && r.Kind == "unreferenced" {
				r.Kind, r.Guest = "data", g
			}
		}
		out = append(out, r)
	}
	return out
}
