package faultfs

import (
	"fmt"
	"os"
	"testing"

	"github.com/spf13/afero"
)

var benchRules = []struct{ name, rules string }{
	{"none", ""},            // empty rule set
	{"otherop", "sync:eio"}, // a rule on another operation: the lock-free fast path
	{"filtered", "write:eio@path=*.nomatch; write:short@off=1g-; read:bitflip"}, // write rules evaluated, none matches
}

// BenchmarkWriteAt measures the wrapper's overhead on WriteAt when no rule
// fires, against the bare MemMapFs (a 64 KiB file, writes at 4 KiB steps).
func BenchmarkWriteAt(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("bare/%dB", size), func(b *testing.B) {
			benchWriteAt(b, afero.NewMemMapFs(), size)
		})
		for _, c := range benchRules {
			b.Run(fmt.Sprintf("%s/%dB", c.name, size), func(b *testing.B) {
				fs, err := NewFromString(afero.NewMemMapFs(), 1, c.rules)
				if err != nil {
					b.Fatal(err)
				}
				benchWriteAt(b, fs, size)
			})
		}
	}
}

func benchWriteAt(b *testing.B, fs afero.Fs, size int) {
	f, err := fs.Create("/bench.qed")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, size)
	if _, err := f.WriteAt(make([]byte, 64<<10), 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			b.Fatal(err)
		}
	}
}

// nullFile is an afero.File whose WriteAt does nothing, to isolate the
// wrapper's own cost per call.
type nullFile struct{ afero.File }

func (nullFile) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

type nullFs struct{ afero.Fs }

func (nullFs) Create(string) (afero.File, error) { return nullFile{}, nil }

func (nullFs) OpenFile(string, int, os.FileMode) (afero.File, error) { return nullFile{}, nil }

// BenchmarkWrapperOnly is BenchmarkWriteAt over a file that does nothing:
// the difference between "bare" and the others is the wrapper's cost.
func BenchmarkWrapperOnly(b *testing.B) {
	run := func(b *testing.B, fs afero.Fs) {
		f, _ := fs.Create("/x")
		buf := make([]byte, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, nullFs{}) })
	for _, c := range benchRules {
		b.Run(c.name, func(b *testing.B) {
			fs, err := NewFromString(nullFs{}, 1, c.rules)
			if err != nil {
				b.Fatal(err)
			}
			run(b, fs)
		})
	}
}
