package oracle

import (
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
)

// TestDefaultModels: every crashsim model but the +garbage ones, in
// crashsim's order, each once; a fresh slice per call.
func TestDefaultModels(t *testing.T) {
	got := DefaultModels()
	var want []string
	for _, m := range crashsim.Models() {
		if !m.Garbage {
			want = append(want, m.String())
		}
	}
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("DefaultModels() has %d models, want %d (%v)", len(got), len(want), want)
	}
	garbage := 0
	for _, m := range crashsim.Models() {
		if m.Garbage {
			garbage++
		}
	}
	if garbage == 0 {
		t.Fatal("crashsim.Models() has no +garbage model: the exclusion is untested")
	}
	for i, m := range got {
		if m.Garbage || m.String() != want[i] {
			t.Errorf("DefaultModels()[%d] = %s, want %s", i, m, want[i])
		}
	}
	got[0] = crashsim.Model{}
	if DefaultModels()[0].String() != want[0] {
		t.Error("DefaultModels shares its slice between calls")
	}
}
