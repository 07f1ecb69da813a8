package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
)

// checkJSONOf runs check --output json with extra args and decodes it.
func checkJSONOf(t *testing.T, code int, args ...string) (checkJSON, map[string]any) {
	t.Helper()
	r := runWant(t, code, append([]string{"check", "--output", "json"}, args...)...)
	var c checkJSON
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatalf("check JSON: %v\n%s", err, r.stdout)
	}
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatal(err)
	}
	return c, raw
}

func TestCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	opts := qed.CreateOptions{Size: 1 << 20}
	writes := map[int64]byte{0: 0xab, 256 << 10: 0xcd}

	// Clean: exit 0, qemu-img's field names, zero counts left out.
	clean := newImage(t, dir, "clean.qed", opts, writes)
	c, raw := checkJSONOf(t, exitOK, clean)
	if c.Corruptions != 0 || c.Leaks != 0 || c.AllocatedClusters != 2 || c.TotalClusters != 16 || c.Format != "qed" {
		t.Errorf("clean: %+v", c)
	}
	for _, k := range []string{"filename", "format", "check-errors", "total-clusters", "allocated-clusters"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("clean check JSON lacks %q: %v", k, raw)
		}
	}
	for _, k := range []string{"corruptions", "leaks", "corruptions-fixed", "leaks-fixed"} {
		if _, ok := raw[k]; ok {
			t.Errorf("clean check JSON has %q, qemu-img leaves it out: %v", k, raw)
		}
	}
	if r := runWant(t, exitOK, "check", clean); !strings.Contains(r.stdout, "No errors were found") {
		t.Errorf("clean human output %q", r.stdout)
	}

	// Leaks only: exit 3.
	leaky := newImage(t, dir, "leaky.qed", opts, writes)
	appendZeros(t, leaky, 3*65536)
	c, _ = checkJSONOf(t, exitCheckLeaks, leaky)
	if c.Leaks != 3 || c.Corruptions != 0 {
		t.Errorf("leaky: %+v", c)
	}
	// -r leaks and -r all cannot reclaim leaks: still exit 3, and like
	// qemu-img no zero *-fixed counts are printed.
	c, raw = checkJSONOf(t, exitCheckLeaks, "-r", "leaks", leaky)
	if _, ok := raw["leaks-fixed"]; c.Leaks != 3 || ok {
		t.Errorf("leaky -r leaks: %+v %v", c, raw)
	}
	runWant(t, exitCheckLeaks, "check", "-r", "all", leaky)

	// An invalid L2 entry (past the end of the file): exit 2; -r all
	// clears it; the image is then clean.
	bad := newImage(t, dir, "bad.qed", opts, writes)
	l2 := int64(readU64(t, bad, 65536)) // L1[0]
	writeU64(t, bad, l2+8*5, 0x4000000)
	c, _ = checkJSONOf(t, exitCheckCorrupt, bad)
	if c.Corruptions != 1 {
		t.Errorf("bad: %+v", c)
	}
	if r := runWant(t, exitCheckCorrupt, "check", bad); !strings.Contains(r.stdout, "1 errors were found") ||
		!strings.Contains(r.stdout, "ERROR ") || !strings.Contains(r.stdout, "0x4000000") {
		t.Errorf("bad human output %q", r.stdout)
	}
	// -r leaks repairs nothing (QED has no leak repair).
	checkJSONOf(t, exitCheckCorrupt, "-r", "leaks", bad)
	c, _ = checkJSONOf(t, exitOK, "-r", "all", bad)
	if c.Corruptions != 0 || c.CorruptionsFixed != 1 {
		t.Errorf("bad -r all: %+v", c)
	}
	runWant(t, exitOK, "check", bad)

	// A cluster referenced twice cannot be repaired: exit 2 before and after.
	dup := newImage(t, dir, "dup.qed", opts, writes)
	l2 = int64(readU64(t, dup, 65536))
	writeU64(t, dup, l2+8*7, readU64(t, dup, l2))
	c, _ = checkJSONOf(t, exitCheckCorrupt, dup)
	if c.Corruptions != 1 {
		t.Errorf("dup: %+v", c)
	}
	c, _ = checkJSONOf(t, exitCheckCorrupt, "-r", "all", dup)
	if c.Corruptions != 1 || c.CorruptionsFixed != 0 {
		t.Errorf("dup -r all: %+v", c)
	}

	// The check cannot run (unknown incompatible feature): exit 1.
	unk := newImage(t, dir, "unk.qed", opts, nil)
	writeU64(t, unk, offFeatures, 0x80)
	if r := runWant(t, exitRuntime, "check", unk); !strings.Contains(r.stderr, "check failed") {
		t.Errorf("unknown feature: %q", r.stderr)
	}
}

func TestCheckNeedCheck(t *testing.T) {
	dir := t.TempDir()
	img := newImage(t, dir, "nc.qed", qed.CreateOptions{Size: 1 << 20}, map[int64]byte{0: 1})
	l2 := int64(readU64(t, img, 65536))
	writeU64(t, img, l2+8, 0x7fff0000) // invalid: past EOF, as after a crash
	writeU64(t, img, offFeatures, qed.FeatureNeedCheck)
	// Without -r the image is opened read-only: reported, not repaired.
	c, _ := checkJSONOf(t, exitCheckCorrupt, img)
	if c.Corruptions != 1 {
		t.Errorf("need-check image: %+v", c)
	}
	if readU64(t, img, offFeatures)&qed.FeatureNeedCheck == 0 {
		t.Fatal("a check without -r cleared NEED_CHECK")
	}
	// -r all repairs (in QED's open-time repair or in the check) and
	// reports what it fixed; NEED_CHECK is then clear.
	c, _ = checkJSONOf(t, exitOK, "-r", "all", img)
	if c.Corruptions != 0 || c.CorruptionsFixed != 1 {
		t.Errorf("need-check -r all: %+v", c)
	}
	if f := readU64(t, img, offFeatures); f&qed.FeatureNeedCheck != 0 {
		t.Errorf("features %#x after repair: NEED_CHECK still set", f)
	}
}
