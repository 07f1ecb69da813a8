package qemu

import (
	"os"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/workload"
)

func TestDumpX(t *testing.T) {
	if os.Getenv("DUMPX") == "" {
		t.Skip()
	}
	tool := qemutool.Require(t)
	w, _ := workload.Parse(strings.NewReader(os.Getenv("DUMPX")))
	rec, err := Record(tool, w, t.TempDir(), EndClose)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range rec.Trace.Ops {
		t.Logf("%s", o)
	}
	for _, p := range rec.Phases {
		t.Logf("phase op %d %s start %d", p.Op, p.What, p.Start)
	}
}
