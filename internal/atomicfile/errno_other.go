//go:build !unix

package atomicfile

import "errors"

// errSyncUnsupported: directories cannot be synced on this system.
var errSyncUnsupported = errors.New("atomicfile: directory sync unsupported")
