// Package oracle judges crash states of a QED image: whether what a crash
// left on disk, recovered by the implementation under test, is a state the
// format and the reference model allow (docs/format.md, "The crash
// oracle").
//
// Judge runs the stages in order (Stage): the raw image's structure by
// the independent checker (props/check), a writable open by the target
// (its check and repair), the recovered size, every guest byte against the
// model (package model's sector rule), the structure after a clean close,
// liveness (a write, a flush, a close, a reopen that needs no repair) and
// every guest byte again through that reopen. A Verdict names the first
// stage that failed, with the checker's reports and the model's mismatch.
// Options tune how much is read back: images up to FullReadLimit (1 MiB
// by default) are read whole; above it stage 4 reads what the checker's
// map of the crashed image cannot prove (pending writes but where it maps
// nothing over the backing chain's data or zeros, flushed data, the
// backing file's range, mapped clusters) and a seeded, bounded sample of
// what it proves, and stage 7, at any size, what the closed image's map
// cannot prove and a sample of what it proves of the pending writes'
// ranges, so that the cost of a state follows what it can change rather
// than the guest size. Durable, the model's durable
// contents computed once, lets a campaign judge many states of one crash
// point without generating them again (the verdicts are the same).
// Options.BackingNames adds the image commands' header rule (stage
// backing-name: the backing name is the old or the new one, never torn),
// and RecoverCommitBase, CommitBaseModel and JudgeCommitBase the rule for
// a commit's base file (stage commit-base: recovered first, then each
// sector its old contents or the image's), which the campaign applies to
// the states that crashed during those ops.
// DefaultModels are the crash models a QED oracle judges fairly, defined
// here once for the campaign, the QEMU crash checks and the state machine.
//
// Guarantees: the oracle reaches the implementation only through
// props/target (it never imports an implementation), reads the image's
// structure only through props/check, and never takes the
// implementation's word on what it does not read back: the ranges left
// out are proven by the checker's map of the image (see Options). Stage 7
// compares the ranges recovery changed with the bytes stage 4 read there,
// which Recover made the model's contents (the model's patterns are
// generated only for bytes that differ: same verdicts). The
// model passed to Judge is recovered in place (on success it holds the
// recovered contents, so a workload can go on from it). Judge is safe for
// concurrent use on different states and models; a Durable is read-only
// and may be shared.
//
// The package imports only crashsim, model, props/check and props/target
// of this module (internal/archtest holds it to that). It was props'
// oracle.go until migration step 4 of docs/architecture.md; props keeps
// its old names as aliases (props.CheckCrashState, props.Verdict, ...).
package oracle
