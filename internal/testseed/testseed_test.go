package testseed

import "testing"

// TestSeedFromEnv: the variable's value is the seed, in decimal or hex;
// unset, two calls draw different seeds.
func TestSeedFromEnv(t *testing.T) {
	t.Setenv("TESTSEED_X", "12345")
	if got := Seed(t, "TESTSEED_X"); got != 12345 {
		t.Errorf("Seed = %d, want 12345", got)
	}
	t.Setenv("TESTSEED_X", "0x10")
	if got := Seed(t, "TESTSEED_X"); got != 16 {
		t.Errorf("Seed = %d, want 16", got)
	}
	t.Setenv("TESTSEED_X", "")
	if a, b := Seed(t, "TESTSEED_X"), Seed(t, "TESTSEED_X"); a == b {
		t.Errorf("two fresh seeds are both %d", a)
	}
}
