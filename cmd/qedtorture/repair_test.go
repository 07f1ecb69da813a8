package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/racetest"
)

// TestRepairCommandImplQED: qedtorture repair on impl/qed's repair paths
// alone finds no broken rule (exit 0) and prints its counts.
func TestRepairCommandImplQED(t *testing.T) {
	r := runWant(t, 0, "repair", "--no-qemu", "--images", "2", "--seed", "5", "--dir", t.TempDir())
	if !strings.Contains(r.stdout, "plants ") || !strings.Contains(r.stdout, "impl/qed check -r all:") {
		t.Errorf("no counts in the output:\n%s", r.stdout)
	}
}

// TestRepairCommandQEMU: with QEMU the repair mode finds QEMU's known
// repair findings (docs/findings.md F4 and F5) and nothing else: every
// failure is a QEMU path leaving a double reference with NEED_CHECK clear
// (claims-clean, or an open that reports nothing, also when QEMU reopens
// what impl/qed left with NEED_CHECK set) or accepting header_size 0. The first seed's images include double references.
func TestRepairCommandQEMU(t *testing.T) {
	racetest.Heavy(t)
	qemutool.Require(t)
	r := runWant(t, 1, "repair", "--images", "3", "--seed", "1", "--dir", t.TempDir())
	fails := regexp.MustCompile(`(?m)^FAIL .*$`).FindAllString(r.stdout, -1)
	if len(fails) == 0 {
		t.Fatalf("no failure found; F4 fixed in QEMU? output:\n%s", r.stdout)
	}
	known := regexp.MustCompile(`: (qemu open|qemu open \(after [^)]*\)|qemu-img check -r all): (claims-clean|unrepaired-unreported|reopen-claims-clean): .*(double-ref|bad-header-size)`)
	for _, f := range fails {
		if !known.MatchString(f) {
			t.Errorf("unexpected failure: %s", f)
		}
	}
}

// TestRepairCommandTargets: the repair paths come from --target's drivers
// (campaign.RepairDriver): a black-box program's writable open (here
// qemu-io itself, exec:qemu-io) is judged beside impl/qed's paths and
// breaks only the rules QEMU's own open breaks (F4, F5); a bad target
// name and --no-qemu with --target are usage errors.
func TestRepairCommandTargets(t *testing.T) {
	racetest.Heavy(t)
	r := runWant(t, 2, "repair", "--target", "impl/qed,nonsense", "--images", "1", "--dir", t.TempDir())
	if !strings.Contains(r.stderr, `invalid --target: unknown target "nonsense"`) {
		t.Errorf("stderr %q", r.stderr)
	}
	runWant(t, 2, "repair", "--no-qemu", "--target", "impl/qed", "--images", "1", "--dir", t.TempDir())
	qemutool.Require(t)
	r = runWant(t, 1, "repair", "--target", "impl/qed,exec:qemu-io", "--images", "2", "--seed", "1", "--dir", t.TempDir())
	if !strings.Contains(r.stdout, "  exec:qemu-io open: ") {
		t.Errorf("no counts of the program's open:\n%s", r.stdout)
	}
	known := regexp.MustCompile(`: exec:qemu-io open( \(after [^)]*\))?: (claims-clean|unrepaired-unreported|reopen-claims-clean): .*(double-ref|bad-header-size)`)
	for _, f := range regexp.MustCompile(`(?m)^FAIL .*$`).FindAllString(r.stdout, -1) {
		if !known.MatchString(f) {
			t.Errorf("unexpected failure: %s", f)
		}
	}
}
