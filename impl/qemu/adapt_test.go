package qemu

import (
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/workload"
)

// TestAdaptGrowOverLongerBacking: the grow QEMU 7.2 refuses is dropped and
// reported; ops that then fall outside the image are clipped.
func TestAdaptGrowOverLongerBacking(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=4096 table_size=1 size=8192
backing raw size=16384 fill=1
resize 0x4000
write 0x1000 0x2000 id=2
flush
`))
	if err != nil {
		t.Fatal(err)
	}
	a, ad := Adapt(w)
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(ad) != 2 || ad[0].Quirk != QuirkTableSize1 || ad[1].Quirk != QuirkGrowOverLongerBacking {
		t.Fatalf("adaptations %+v", ad)
	}
	if len(a.Ops) != 2 || a.Ops[0].Kind != workload.Write || a.Ops[0].Len != 0x1000 {
		t.Fatalf("adapted ops %v", a.Ops)
	}
}

// TestAdaptConcurrentOverlap: writes of a concurrent group that share a
// 512-byte sector with an earlier write of the group are dropped (the
// log's order of such writes need not be the file's).
func TestAdaptConcurrentOverlap(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=4096 table_size=2 size=65536
concurrent 3
  write 0x0 0x300 id=1
  write 0x3ff 0x10 id=2
  zero 0x400 0x200
`))
	if err != nil {
		t.Fatal(err)
	}
	a, ad := Adapt(w)
	if len(ad) != 1 || ad[0].Quirk != HarnessConcurrentOverlap {
		t.Fatalf("adaptations %+v", ad)
	}
	g := a.Ops[0].Group
	if len(g) != 2 || g[0].ID != 1 || g[1].Kind != workload.WriteZeroes {
		t.Fatalf("group %v", g)
	}
}

// TestAdaptReopenRO: a reopen-ro becomes a reopen and a read of its range
// (a recording cannot reopen read-only), and the recording then runs.
func TestAdaptReopenRO(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=4096 table_size=2 size=65536
write 0x0 0x1000 id=1
reopen-ro 0x800 0x1000
map
refused 2
`))
	if err != nil {
		t.Fatal(err)
	}
	a, ad := Adapt(w)
	if len(ad) != 1 || ad[0].Quirk != HarnessReadOnlyReopen {
		t.Fatalf("adaptations %+v", ad)
	}
	if len(a.Ops) != 5 || a.Ops[1].Kind != workload.Reopen || a.Ops[2].Kind != workload.Read || a.Ops[2].Off != 0x800 || a.Ops[2].Len != 0x1000 {
		t.Fatalf("adapted ops %v", a.Ops)
	}
	tool := qemutool.Require(t)
	if _, err := Record(tool, w, t.TempDir(), EndClose); err != nil {
		t.Fatal(err)
	}
}

// TestAdaptHugeImage: a grow above MaxGuest (the generator's images above
// 4 GiB) is dropped and reported; the writes past the size are dropped,
// the one that straddles it clipped.
func TestAdaptHugeImage(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=65536 table_size=2 size=65536
resize 0x100010000
write 0x10000fc00 0x400 id=1
write 0xff00 0x400 id=2
`))
	if err != nil {
		t.Fatal(err)
	}
	a, ad := Adapt(w)
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(ad) != 1 || ad[0].Quirk != HarnessHugeImage {
		t.Fatalf("adaptations %+v", ad)
	}
	if len(a.Ops) != 1 || a.Ops[0].Off != 0xff00 || a.Ops[0].Len != 0x100 {
		t.Fatalf("adapted ops %v", a.Ops)
	}
}
