package workload_test

import (
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// runScript runs a workload script on t over a memory file system.
func runScript(t *testing.T, tg target.Target, script string) error {
	t.Helper()
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	e, err := workload.NewExec(tg, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	err = e.RunAll()
	if e.Disk != nil {
		require.NoError(t, e.Disk.Close())
	}
	return err
}

const inspectScript = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=65536
backing raw size=32768 fill=1
write 0x1000 0x1800 id=2
zero 0x4000 0x2000
map
reopen-ro 0x800 0x4000
refused 0
refused 1
refused 2
refused 3
refused 4
refused 5
refused 6
refused 7
refused 8
resize 0x12000
map
read 0 0x12000
reopen-ro 0 0x12000
check
`

// TestInspectOps: map, reopen-ro and every refused variant pass on
// impl/qed (backed image, zero clusters, a grow), and the reads after them
// find the guest disk unchanged.
func TestInspectOps(t *testing.T) {
	require.NoError(t, runScript(t, qedtarget.Target{}, inspectScript))
	noBacking := strings.Replace(inspectScript, "backing raw size=32768 fill=1\n", "", 1)
	noBacking = strings.Replace(noBacking, "write 0x1000 0x1800 id=2", "write 0x1000 0x1800 id=1", 1)
	require.NoError(t, runScript(t, qedtarget.Target{}, noBacking))
	empty := "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=0\nmap\nrefused 0\nrefused 2\nrefused 4\nrefused 6\nresize 0x1000\nmap\n"
	require.NoError(t, runScript(t, qedtarget.Target{}, empty))
}

// lying wraps impl/qed's target; its disks break one promise each.
type lying struct {
	qedtarget.Target
	how string
}

func (l lying) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := l.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return lyingDisk{d, l.how}, nil
}

func (l lying) ReadInfo(fs afero.Fs, path string) (target.Info, error) {
	in, err := l.Target.ReadInfo(fs, path)
	if l.how == "header-size" { // a header that lags the open image
		in.Size -= 512
	}
	return in, err
}

type lyingDisk struct {
	target.Disk
	how string
}

func (lyingDisk) RefusesInvalid() {}

func (d lyingDisk) Map() ([]target.Extent, error) {
	m, err := d.Disk.(target.Mapper).Map()
	switch d.how {
	case "map-zero": // says the whole image reads as zeros
		m = []target.Extent{{Start: 0, Length: d.Size(), Kind: target.ExtentZero}}
	case "map-gap": // leaves the last extent out
		m = m[:len(m)-1]
	}
	return m, err
}

func (d lyingDisk) Info() target.Info {
	in := d.Disk.(target.Informer).Info()
	switch d.how {
	case "info-size":
		in.Size += 512
	case "info-writable":
		in.ReadOnly = false
	}
	return in
}

func (d lyingDisk) Resize(size int64) error {
	if d.how == "accept-resize" {
		return nil
	}
	err := d.Disk.Resize(size)
	if d.how == "closed-resize" && err != nil && strings.Contains(err.Error(), "closed") {
		return nil // accepts a resize once closed
	}
	return err
}

func (d lyingDisk) Check(repair bool) (target.CheckResult, error) {
	if d.how == "ro-repair" && repair {
		return target.CheckResult{}, nil // accepts a repairing check even read-only
	}
	return d.Disk.Check(repair)
}

func (d lyingDisk) WriteAt(p []byte, off int64) (int, error) {
	if d.how == "accept-write" && off < 0 {
		return len(p), nil
	}
	return d.Disk.WriteAt(p, off)
}

// TestInspectOpsJudge: each op fails on a disk that breaks what it
// checks (its map, its refusals, its info).
func TestInspectOpsJudge(t *testing.T) {
	for how, want := range map[string]string{
		"map-zero":      "reads as zeros",
		"map-gap":       "the extents end at",
		"accept-resize": "was not refused",
		"accept-write":  "a write at a negative offset",
		"info-size":     "info: size",
		"header-size":   "info from the header",
		"ro-repair":     "a repairing check of the read-only image was not refused",
		"info-writable": "read-only: info: read-only false, want true",
		"closed-resize": "a resize on the closed image was not refused",
	} {
		err := runScript(t, lying{how: how}, inspectScript)
		require.Error(t, err, how)
		require.Contains(t, err.Error(), want, how)
	}
}

// TestMapAfterImageCommands: map and reopen-ro follow the backing file
// that rebase and commit ops leave (found by a campaign with the image
// commands drawn: after a rebase onto a file, an unallocated range reads
// the new backing file, not zeros).
func TestMapAfterImageCommands(t *testing.T) {
	require.NoError(t, runScript(t, qedtarget.Target{}, `qedtorture-workload v1
image cluster_size=16384 table_size=16 size=573440
rebase 0x4c786 0x2b47 id=1
write 0x9983 0x4a5e id=4
commit
map
reopen-ro 0x0 0x10000
`))
	require.NoError(t, runScript(t, qedtarget.Target{}, `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=65536
backing raw size=32768 fill=1
write 0x100 0x200 id=2
rebase-unsafe 700
map
reopen-ro 0x0 0x10000
rebase none
map
reopen-ro 0x0 0x10000
`))
}

// TestBackingNamesCrafted: the backing name in force before a rebase op
// of a crafted image is the crafted name (a campaign with rebase-unsafe
// drawn judged a crash state naming it a torn name, stage backing-name),
// and map judges the crafted name the same way.
func TestBackingNamesCrafted(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=4096 table_size=4 size=159744 header_size=2 backing_name=128
backing qed size=31232 cluster_size=65536 table_size=2 fill=1
map
rebase-unsafe 89
map
`))
	require.NoError(t, err)
	crafted := workload.CraftedBackingName(w.Geometry)
	require.Len(t, crafted, 128)
	require.Equal(t, crafted, w.BackingNames(0)[0])
	require.Equal(t, []string{crafted, workload.UnsafeName(1, 89)}, w.BackingNames(1))
	require.NoError(t, runScript(t, qedtarget.Target{}, w.String()))
}
