// Package archtest holds the architecture gates of the migration plan in
// docs/architecture.md (step 0). It has no code: its tests state
//
//   - the project packages each package may import (the "Package layout"
//     table of the target design), and the few standard or third-party
//     imports that matter (testing, gopter, and nothing but the standard
//     library in the independent checker);
//   - that cmd/qedtorture's transitive dependencies contain neither testing
//     nor gopter;
//   - that no file of the repository cites a document outside it.
//
// Today's code does not yet have the target layout: every violation of
// today is listed as a known exception, with the migration step that
// removes it. An exception that is no longer needed fails the test too, so
// the list stays true and each step deletes its own lines.
package archtest
