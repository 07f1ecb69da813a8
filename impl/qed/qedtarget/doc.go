// Package qedtarget is impl/qed's adapter to the suite's door
// (props/target): Target drives impl/qed through target.Target, and the
// deliberately broken and seeded-defect wrappers around it are targets
// too, so that a campaign (and the tests of the suite) can show that a bug
// is caught.
//
// The adapter is a package of its own, not part of impl/qed, so that the
// implementation stays free of the suite, and the suite (the oracle, the
// campaign engine) never imports an implementation: only cmd/qedtorture,
// the composition root, maps --target names to these values
// (cmd/qedtorture/targets.go).
//
// The targets:
//
//   - Target: impl/qed itself, with the idle NEED_CHECK clear off by
//     default (a run is faster than its 5 s delay, and a real timer would
//     make runs differ); Name "impl/qed".
//   - Broken(): impl/qed behind a wrapper that breaks one durability
//     promise: "broken:nosync" (every file sync is acknowledged and
//     dropped), "broken:noflush" (a guest flush returns success without
//     flushing anything).
//   - Defects(): in builds with the qeddefects tag, one target
//     "defect:NAME" per entry of qed.DefectCatalogue: impl/qed with that
//     defect switched on (a process-wide switch: one campaign runs one
//     defect at a time) and a one-table L2 cache, so that the small images
//     of a campaign evict tables (where the cache defects live). A defect
//     meant to be judged with a small oracle full-read limit implements
//     target.ReadLimiter. Without the tag Defects returns nil.
//
// conformance_test.go runs impl/qed through props.TestTarget, exactly as
// another implementation's module would.
package qedtarget
