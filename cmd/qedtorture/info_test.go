package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
)

func TestInfo(t *testing.T) {
	dir := t.TempDir()
	img := newImage(t, dir, "i.qed", qed.CreateOptions{Size: 3<<20 + 1536, ClusterSize: 4096, TableSize: 2}, map[int64]byte{0: 1})
	r := runWant(t, exitOK, "info", img)
	for _, want := range []string{
		"image: " + img, "file format: qed", "virtual size: 3 MiB (3147264 bytes)",
		"cluster_size: 4096", "table_size: 2", "need_check: false",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("info output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runWant(t, exitOK, "info", "--output", "json", img)
	var got infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("info JSON: %v\n%s", err, r.stdout)
	}
	if got.VirtualSize != 3<<20+1536 || got.ClusterSize != 4096 || got.Format != "qed" || got.Filename != img ||
		got.DirtyFlag || got.FormatSpecific.Type != "qed" || got.FormatSpecific.Data.TableSize != 2 ||
		got.FormatSpecific.Data.NeedCheck || got.ActualSize <= 0 || got.BackingFilename != "" {
		t.Errorf("info JSON %+v", got)
	}
	for _, key := range []string{`"virtual-size"`, `"cluster-size"`, `"actual-size"`, `"dirty-flag"`, `"format-specific"`} {
		if !strings.Contains(r.stdout, key) {
			t.Errorf("info JSON lacks %s", key)
		}
	}
}

func TestInfoBackingAndNeedCheck(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	writeFile(t, base, make([]byte, 1<<20))
	ov := newImage(t, dir, "ov.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "base.raw", BackingFormat: "raw"}, nil)
	writeU64(t, ov, offFeatures, qed.FeatureBackingFile|qed.FeatureBackingNoProbe|qed.FeatureNeedCheck)
	r := runWant(t, exitOK, "info", "--output=json", ov)
	var got infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	d := got.FormatSpecific.Data
	if got.BackingFilename != "base.raw" || got.FullBackingFilename != base || got.BackingFilenameFormat != "raw" ||
		!got.DirtyFlag || !d.NeedCheck || d.Features != 7 || strings.Join(d.FeatureNames, ",") != "backing_file,need_check,backing_format_no_probe" {
		t.Errorf("info JSON %+v", got)
	}
	// Unknown incompatible feature: info refuses, naming the bits.
	writeU64(t, ov, offFeatures, qed.FeatureBackingFile|0x100)
	r = runWant(t, exitRuntime, "info", ov)
	if !strings.Contains(r.stderr, "0x100") {
		t.Errorf("unknown feature error %q does not name 0x100", r.stderr)
	}
}
