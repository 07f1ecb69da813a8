//go:build !qeddefects

package qedtarget_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/stretchr/testify/require"
)

// TestDefects: a build without the qeddefects tag has no defect targets.
func TestDefects(t *testing.T) {
	require.Empty(t, qedtarget.Defects())
}
