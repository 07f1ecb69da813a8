package qemuio

import (
	"bytes"
	"testing"
)

// The numbers below are qemu-io 7.2's output for the same values.
func TestCvtstr(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0 bytes", 3: "3 bytes", 326.229682: "326.229682 bytes", 512: "512 bytes",
		4096: "4 KiB", 70000: "68.359 KiB", 1 << 20: "1 MiB", 2.8 * (1 << 30): "2.800 GiB",
	} {
		if got := cvtstr(v); got != want {
			t.Errorf("cvtstr(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for a, want := range map[string]int64{"0": 0, "4096": 4096, "0x10000": 65536, "1k": 1024, "2M": 2 << 20, "1.5k": 1536, "1G": 1 << 30} {
		if got, err := ParseSize(a); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", a, got, err, want)
		}
	}
	for _, a := range []string{"", "x", "1.5", "-1", "1kb", "0x", "99999999999999999999"} {
		if _, err := ParseSize(a); err == nil {
			t.Errorf("ParseSize(%q) accepted", a)
		}
	}
}

func TestDumpBuffer(t *testing.T) {
	var b bytes.Buffer
	DumpBuffer(&b, []byte("AAAAAAAA........z \xcd\xcd\xcd\xcd0"), 0x3fe)
	want := "000003fe:  41 41 41 41 41 41 41 41 2e 2e 2e 2e 2e 2e 2e 2e  AAAAAAAA........\n" +
		"0000040e:  7a 20 cd cd cd cd 30  z.....0\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
