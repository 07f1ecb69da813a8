package tmpfstest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestFullAndReadOnly(t *testing.T) {
	d := Mount(t, "size=64k")
	Fill(t, d)
	err := os.WriteFile(filepath.Join(d, "x"), make([]byte, 4096), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full tmpfs: %v, want ENOSPC", err)
	}
	ro := Mount(t, "ro,size=64k")
	err = os.WriteFile(filepath.Join(ro, "x"), nil, 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("create on a read-only tmpfs: %v, want EROFS", err)
	}
}
