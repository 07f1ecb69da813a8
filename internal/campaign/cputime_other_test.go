//go:build !unix

package campaign

import (
	"testing"
	"time"
)

// cpuTime is -1: the process's CPU time is not read on this platform.
func cpuTime(*testing.B) time.Duration { return -1 }
