package props

import "github.com/qedtorture/qedtorture/impl/qed/qedtarget"

// QEDTarget is impl/qed's adapter under the name these tests knew it by
// (it moved to impl/qed/qedtarget in migration step 3; props itself no
// longer imports an implementation, its tests may).
type QEDTarget = qedtarget.Target
