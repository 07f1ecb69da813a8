package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qemu"
	"github.com/qedtorture/qedtorture/internal/qemutool"
)

// TestQEMUCommandCampaign runs a short real campaign against QEMU under
// the prefix model (which QEMU 7.2 passes: see docs/findings.md) and checks
// the report.
func TestQEMUCommandCampaign(t *testing.T) {
	qemutool.Require(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")
	args := []string{"qemu", "--iterations", "3", "--seed", "9", "--crash-model", "prefix,drop", "--qemu-states", "4",
		"--out", filepath.Join(dir, "art"), "--report", report, "--progress", "none", "--minimize", "-1"}
	r := qt(t, args...)
	if r.code != exitOK {
		t.Fatalf("qedtorture %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "seed 9") {
		t.Errorf("seed not printed: %q", r.stderr)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep qemu.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Workloads != 3 || rep.CrashStates == 0 || rep.QEMUChecked == 0 || rep.QEDChecked == 0 || rep.DiffRuns != 3 || rep.Target != "qemu" {
		t.Errorf("report %+v", rep)
	}
	if rep.Ends["close"] != 1 || rep.Ends["abort"] != 1 || rep.Ends["kill"] != 1 {
		t.Errorf("ends %v, want one of each", rep.Ends)
	}
}

func TestQEMUCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"qemu", "--ends", "explode"},
		{"qemu", "--crash-model", "nope"},
		{"qemu", "--workers", "0"},
		{"qemu", "stray"},
	} {
		runWant(t, exitUsage, args...)
	}
}
