package qed

import "testing"

// TestDefectCatalogue: one entry per defect, in order, named and classified;
// in the default build every hook is off.
func TestDefectCatalogue(t *testing.T) {
	if len(DefectCatalogue) != int(numDefects)-1 {
		t.Fatalf("catalogue has %d entries, want %d", len(DefectCatalogue), numDefects-1)
	}
	seen := map[string]bool{}
	for i, info := range DefectCatalogue {
		if info.Defect != Defect(i+1) {
			t.Errorf("entry %d is %v", i, info.Defect)
		}
		if info.Name == "" || info.Class == "" || info.What == "" || seen[info.Name] {
			t.Errorf("entry %d (%v) incomplete or duplicate: %+v", i, info.Defect, info)
		}
		seen[info.Name] = true
		if info.Defect.String() != info.Name {
			t.Errorf("%d: String %q", i, info.Defect.String())
		}
		if !DefectsCompiled && defect(info.Defect) {
			t.Errorf("%v is active in the default build", info.Name)
		}
	}
	if Defect(99).String() != "Defect(99)" || DefectNone.String() != "none" {
		t.Error("String of out-of-range defects")
	}
}
