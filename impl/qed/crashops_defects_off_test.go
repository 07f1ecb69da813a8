//go:build !qeddefects

package qed_test

import "testing"

// crashDefectFromEnv does nothing without the qeddefects tag.
func crashDefectFromEnv(t *testing.T) {}
