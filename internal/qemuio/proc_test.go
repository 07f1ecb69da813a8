package qemuio

import (
	"errors"
	"testing"
)

// TestParseDump decodes qemu-io's `read -v` hex dump, including a partial
// last line whose ASCII column looks like hex, and rejects dumps that do
// not cover the requested range.
func TestParseDump(t *testing.T) {
	out := "00000003:  07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07  ................\n" +
		"00000013:  61 62 20 63  ab c\n" +
		"read 20/20 bytes at offset 3\n20 bytes, 1 ops; 00.00 sec\n"
	p := make([]byte, 20)
	if err := ParseDump(out, 3, p); err != nil {
		t.Fatal(err)
	}
	if p[0] != 7 || p[15] != 7 || string(p[16:]) != "ab c" {
		t.Fatalf("decoded %x", p)
	}
	for _, c := range []struct {
		name string
		off  int64
		n    int
	}{{"short", 3, 21}, {"long", 3, 19}, {"wrong offset", 0, 20}} {
		if err := ParseDump(out, c.off, make([]byte, c.n)); !errors.Is(err, ErrParse) {
			t.Errorf("%s: got %v, want ErrParse", c.name, err)
		}
	}
}

// TestFailed recognises qemu-io's failure reports but not dump lines.
func TestFailed(t *testing.T) {
	for out, want := range map[string]bool{
		"wrote 512/512 bytes at offset 0\n":                                              false,
		"qemu-io: Block driver does not support requested flags\n":                       true,
		"write failed: Invalid argument\n":                                               true,
		"Pattern verification failed at offset 0, 512 bytes\n":                           true,
		"00000000:  66 61 69 6c 65 64 00 00 00 00 00 00 00 00 00 00  failed..........\n": false,
	} {
		if got := Failed(out); got != want {
			t.Errorf("Failed(%q) = %v, want %v", out, got, want)
		}
	}
}
