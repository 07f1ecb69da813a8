//go:build qeddefects

package qed_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
)

// crashDefectFromEnv switches on the seeded defect QED_CRASHOPS_DEFECT
// names (a number), for the child processes of TestCrashOpsFindDefects.
func crashDefectFromEnv(t *testing.T) {
	s := os.Getenv("QED_CRASHOPS_DEFECT")
	if s == "" {
		return
	}
	d, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("QED_CRASHOPS_DEFECT=%q", s)
	}
	prev := qed.SetDefect(qed.Defect(d))
	t.Cleanup(func() { qed.SetDefect(prev) })
}

// TestCrashOpsFindDefects: the crash tests of rebase, commit and resize
// find the seeded defects that break the orderings those operations rely
// on. Each defect runs in a child process (the tests stop at their first
// failure), which must fail. (DefectNoSyncL2BeforeL1Link is not among
// them: a new L2 table lost under a durable L1 entry reads as unallocated,
// which for a rebase's copies is the old view, and the header switches
// only after a sync.)
func TestCrashOpsFindDefects(t *testing.T) {
	if os.Getenv("QED_CRASHOPS_DEFECT") != "" {
		t.Skip("child process")
	}
	for _, c := range []struct {
		d    qed.Defect
		test string
	}{
		{qed.DefectNoSyncDataBeforeL2Link, "TestCrashRebase"},
		{qed.DefectNeedCheckNeverSet, "TestCrashCommit"},
		{qed.DefectResizeExposesBacking, "TestCrashResize"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^"+c.test+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), "QED_CRASHOPS_DEFECT="+strconv.Itoa(int(c.d)))
		out, err := cmd.CombinedOutput()
		name := ""
		for _, i := range qed.DefectCatalogue {
			if i.Defect == c.d {
				name = i.Name
			}
		}
		if err == nil {
			t.Errorf("%s with defect %s: passed, want a failure", c.test, name)
			continue
		}
		first := ""
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "crash state") || strings.Contains(l, "crashops_test.go") {
				first = strings.TrimSpace(l)
				break
			}
		}
		t.Logf("%s found %s: %.200s", c.test, name, first)
	}
}
