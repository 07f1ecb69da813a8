//go:build !unix

package childrss

import "os"

// maxRSS is unknown here (no ru_maxrss).
func maxRSS(*os.ProcessState) (int64, bool) { return 0, false }
