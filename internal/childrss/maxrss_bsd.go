//go:build unix && !linux

package childrss

// maxrssBytes converts wait4's ru_maxrss: bytes on Darwin (kilobytes on
// the BSDs; taken as bytes there, which only loosens the bound).
func maxrssBytes(v int64) int64 { return v }
