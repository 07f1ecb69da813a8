package oracle

import "github.com/qedtorture/qedtorture/crashsim"

// DefaultModels are the crash models a QED oracle judges by default (the
// family "all" of --crash-model): every crashsim.Models() variant except
// the +garbage ones. A lost sector holding garbage is, by the oracle's
// rule (a byte reads its durable value or a value written since), a
// failure for any implementation without checksums, QED included: a
// garbage sector in a header or table write is undetectable by design.
// They measure the disk, not the format; ask for torn512+garbage
// explicitly to see that.
//
// The campaign, the QEMU crash checks and the state machine all take
// their default from here. The slice is new on every call.
func DefaultModels() []crashsim.Model {
	var out []crashsim.Model
	for _, m := range crashsim.Models() {
		if !m.Garbage {
			out = append(out, m)
		}
	}
	return out
}
