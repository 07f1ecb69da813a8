package check

import (
	"fmt"
	"strings"
	"testing"
)

// TestLayoutClusters: every cluster of smallImage is named as its layout
// comment says (header, L1, L2 tables with their L1 entry, data with its
// guest cluster); a cluster no table points at is unreferenced; the limit
// cuts the list; an image without a valid header has no clusters.
func TestLayoutClusters(t *testing.T) {
	im := smallImage(t)
	im.appendClusters(1) // 0xc000: referenced by nothing
	l := NewLayout(im.buf)
	if l.ClusterSize() != 4096 {
		t.Fatalf("cluster size %d", l.ClusterSize())
	}
	var got []string
	for _, c := range l.Clusters(0) {
		s := fmt.Sprintf("%#x:%s", c.Host, c.Kind)
		switch c.Kind {
		case "L2":
			s += fmt.Sprint(c.Table)
		case "data":
			s += fmt.Sprint(c.Guest)
		}
		got = append(got, s)
	}
	want := "0x0:header 0x1000:header 0x2000:L1 0x3000:L1 0x4000:L20 0x5000:L20 0x6000:data0 0x7000:data1 0x8000:data2 " +
		"0x9000:L21 0xa000:L21 0xb000:data1024 0xc000:unreferenced"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("clusters:\n got %s\nwant %s", g, want)
	}
	if n := len(l.Clusters(3)); n != 3 {
		t.Errorf("Clusters(3) gave %d", n)
	}
	if c := NewLayout(make([]byte, 10)).Clusters(0); c != nil || NewLayout(nil).ClusterSize() != 0 {
		t.Errorf("no header: clusters %v", c)
	}
}
