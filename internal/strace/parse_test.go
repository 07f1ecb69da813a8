package strace

import (
	"strings"
	"testing"
)

// TestParseOrder: of calls that overlap, a write takes effect at its exit
// and a sync at its entry, so a write still in flight when the sync began
// comes after it.
func TestParseOrder(t *testing.T) {
	h := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			b.WriteString(`\x`)
			b.WriteString(strings.ToLower(string("0123456789abcdef"[s[i]>>4]) + string("0123456789abcdef"[s[i]&15])))
		}
		return b.String()
	}
	img := "3<" + h("/d/img.qed") + ">"
	text := strings.Join([]string{
		`10 pwrite64(` + img + `, "` + h("AAAA") + `", 4, 0) = 4`,
		`11 pwrite64(` + img + `, "` + h("BBBB") + `", 4, 8 <unfinished ...>`,
		`10 fdatasync(` + img + ` <unfinished ...>`,
		`11 <... pwrite64 resumed>) = 4`,
		`10 <... fdatasync resumed>) = 0`,
		`10 write(1<` + h("pipe:[1]") + `>, "` + h("wrote\nqemu-io> ") + `", 15) = 15`,
		`10 pwrite64(` + img + `, "` + h("CCCC") + `", 4, 16) = -1 ENOSPC (No space left on device)`,
		`10 +++ exited with 0 +++`,
	}, "\n") + "\n"
	rec, err := Parse(strings.NewReader(text), Options{Dir: "/d", Files: map[string]int64{"/img.qed": 0}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range rec.Trace.Ops {
		got = append(got, o.String())
	}
	want := []string{"#0 write /img.qed@0+4", "#1 sync /img.qed", "#2 write /img.qed@8+4"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("trace %q, want %q", got, want)
	}
	if len(rec.Prompts) != 1 || rec.Prompts[0] != 3 {
		t.Fatalf("prompts %v, want [3]", rec.Prompts)
	}
}
