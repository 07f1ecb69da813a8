package props

import (
	"os"
	"strconv"
	"testing"
)

// envSeed returns PROPS_SEED when set (to replay a logged failure), else def.
func envSeed(t testing.TB, def uint64) uint64 {
	if s := os.Getenv("PROPS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("PROPS_SEED=%q: %v", s, err)
		}
		t.Logf("replaying PROPS_SEED=%d", v)
		return v
	}
	return def
}
