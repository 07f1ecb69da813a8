package childrss

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

const bigEnv = "CHILDRSS_TEST_TOUCH_MB"

// TestMain: as a child (bigEnv set), touch that many MiB and exit.
func TestMain(m *testing.M) {
	if mb := os.Getenv(bigEnv); mb != "" {
		n := 0
		for _, c := range mb {
			n = n*10 + int(c-'0')
		}
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		runtime.KeepAlive(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(t *testing.T, ctx context.Context, mb string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), bigEnv+"="+mb)
	require.NoError(t, cmd.Run())
	Record(ctx, cmd.ProcessState)
}

// TestPeakIsPerChild: each Peak hears only of the processes recorded
// under its own context, each measured on its own: a small child after a
// big one does not inherit the big one's peak (getrusage RUSAGE_CHILDREN
// would report it), nor this process's own peak (on Linux a child's
// ru_maxrss starts at least at it: it begins in this process's address
// space), and an outer Peak sees an inner one's processes.
func TestPeakIsPerChild(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no ru_maxrss here")
	}
	outer, all := Watch(context.Background())
	bigCtx, big := Watch(outer)
	runChild(t, bigCtx, "128")
	smallCtx, small := Watch(outer)
	runChild(t, smallCtx, "0")
	Record(context.Background(), nil) // no Peak, no state: nothing
	require.GreaterOrEqual(t, big.Max(), int64(128<<20), "the big child's own peak")
	require.Less(t, small.Max(), int64(64<<20), "the small child is judged by its own peak, not the big one's")
	require.Equal(t, big.Max(), all.Max(), "the outer Peak sees the inner ones' processes")
	require.Equal(t, 1, big.Processes())
	require.Equal(t, 2, all.Processes())

	// This process grows past any child here: a small child started now
	// is not charged with this process's peak.
	b := make([]byte, 256<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	afterCtx, after := Watch(context.Background())
	runChild(t, afterCtx, "0")
	runtime.KeepAlive(b)
	require.Equal(t, 1, after.Processes())
	require.Less(t, after.Max(), int64(64<<20), "a small child started by a big process is judged by its own peak")
}
