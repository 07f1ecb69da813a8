package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/spf13/afero"
	"github.com/spf13/cobra"
)

func newIOCommand(e *env) *cobra.Command {
	var (
		cmds           []string
		format         string
		readOnly       bool
		share          bool
		brokenDropSync bool
	)
	cmd := &cobra.Command{
		Use:   "io [-c CMD]... [-f qed|raw] [-r] [-U] [IMG]",
		Short: "A qemu-io-compatible shell over impl/qed",
		Long: `Run qemu-io commands on IMG with impl/qed: each -c CMD in turn, or, without
-c, the commands read from stdin (after qemu-io's "qemu-io> " prompt). The
output lines and the exit status are qemu-io 7.2's for the same script (the
numbers of the timing line aside): 1 when any command failed, else 0.

Commands: open [-r] [-U] [-o driver=qed|raw] PATH, close, read [-q] [-v]
[-P BYTE] OFF LEN, write [-q] [-f] [-z [-u]] [-P BYTE | -s FILE] OFF LEN, aio_write
[-q] [-f] [-z] [-P BYTE] OFF LEN [LEN..], aio_flush, flush, truncate SIZE,
map, info, sleep MS, abort, quit. Other qemu-io commands and options are
refused by name.

The image is opened as the other commands open it, with QEMU's image locks
(a writable open fails while QEMU or another tool uses the image; -U with
-r shares it). With -r nothing is written to any file. This is also the
tool for poking at a crashed image from a campaign artifact: 'qedtorture io
-r -c map -c "read -v 0 4096" artifact/image/img.qed' shows what a guest
would see without recovering (a writable open checks and repairs an image
whose NEED_CHECK bit is set, as QEMU does).`,
		Example: `  qedtorture io -c 'write -P 0xab 0 4096' -c 'read -P 0xab 0 4096' disk.qed
  printf 'map\nread -v 0 512\n' | qedtorture io -r disk.qed`,
		Args: argsBetween(0, 1, "IMG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" && format != "qed" && format != "raw" {
				return usagef(cmd, "-f %q: qedtorture io opens qed and raw images", format)
			}
			fsys := e.fs
			if brokenDropSync {
				fsys = dropSyncFs{fsys}
			}
			sh := &qemuio.Shell{
				Open:   func(o qemuio.OpenRequest) (qemuio.Image, error) { return openIOImage(fsys, o) },
				Stdout: e.stdout,
				Stderr: e.stderr,
				Format: format,
			}
			if len(args) == 1 {
				if err := sh.OpenImage(qemuio.OpenRequest{Path: args[0], Format: format, ReadOnly: readOnly, ForceShare: share}); err != nil {
					return &exitError{code: 1}
				}
			}
			var stdin io.Reader = os.Stdin
			if e.stdin != nil {
				stdin = e.stdin
			}
			code := sh.Run(cmds, stdin)
			if err := sh.Close(); err != nil {
				fmt.Fprintf(e.stderr, "qemu-io: close: %v\n", err)
				code = 1
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&cmds, "cmd", "c", nil, "run this qemu-io command (repeatable; without -c, commands are read from stdin)")
	f.StringVarP(&format, "format", "f", "", "image format: qed or raw (default: probed)")
	f.BoolVarP(&readOnly, "read-only", "r", false, "open the image read-only: nothing is written")
	f.BoolVarP(&share, "force-share", "U", false, "with -r, share the image with a writer (QEMU's force-share locks)")
	f.BoolVar(&brokenDropSync, "broken-drop-sync", false, "a deliberately broken variant: every fsync is dropped (to show that a black-box campaign catches it)")
	_ = f.MarkHidden("broken-drop-sync")
	return cmd
}

// openIOImage opens an image for the shell: QED through impl/qed (with
// its image locks and its repair of an image that needs a check, on a
// writable open), raw as the plain file.
func openIOImage(fsys afero.Fs, o qemuio.OpenRequest) (qemuio.Image, error) {
	if o.ForceShare && !o.ReadOnly {
		return nil, errors.New("force-share=on can only be used with read-only images")
	}
	format := o.Format
	if format == "" {
		f, err := fsys.Open(o.Path)
		if err != nil {
			return nil, couldNotOpen(o.Path, err)
		}
		magic := make([]byte, 4)
		_, err = io.ReadFull(f, magic)
		f.Close()
		format = "raw"
		if err == nil && bytes.Equal(magic, []byte("QED\x00")) {
			format = "qed"
		}
	}
	switch format {
	case "qed":
		im, err := qed.Open(fsys, o.Path, qed.OpenOptions{ReadOnly: o.ReadOnly, ForceShare: o.ForceShare})
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) && pe.Path == o.Path && errors.Is(err, os.ErrNotExist) {
				return nil, couldNotOpen(o.Path, err)
			}
			return nil, err
		}
		return qedIOImage{im}, nil
	case "raw":
		flag := os.O_RDWR
		if o.ReadOnly {
			flag = os.O_RDONLY
		}
		f, err := fsys.OpenFile(o.Path, flag, 0)
		if err != nil {
			return nil, couldNotOpen(o.Path, err)
		}
		return &rawIOImage{f: f}, nil
	}
	return nil, fmt.Errorf("unknown format %q (qed or raw)", format)
}

// couldNotOpen is QEMU's message for a file it cannot open.
func couldNotOpen(path string, err error) error {
	return fmt.Errorf("Could not open '%s': %s", path, qemuio.Strerror(err))
}

// qedIOImage is an impl/qed image for the shell, with its map and info.
type qedIOImage struct{ *qed.Image }

func (q qedIOImage) AllocationMap() ([]qemuio.Run, error) {
	ext, err := q.Map()
	if err != nil {
		return nil, err
	}
	runs := make([]qemuio.Run, 0, len(ext))
	for _, x := range ext {
		runs = append(runs, qemuio.Run{Off: x.Start, Len: x.Length, Allocated: x.Kind != qed.ExtentUnallocated})
	}
	return runs, nil
}

func (q qedIOImage) Info() (string, int64) {
	return "qed", int64(q.Header().ClusterSize)
}

// rawIOImage is a raw file for the shell.
type rawIOImage struct{ f afero.File }

func (r *rawIOImage) ReadAt(p []byte, off int64) (int, error)  { return r.f.ReadAt(p, off) }
func (r *rawIOImage) WriteAt(p []byte, off int64) (int, error) { return r.f.WriteAt(p, off) }
func (r *rawIOImage) WriteZeroes(off, n int64) error {
	_, err := r.f.WriteAt(make([]byte, n), off)
	return err
}
func (r *rawIOImage) Flush() error { return r.f.Sync() }
func (r *rawIOImage) Close() error { return r.f.Close() }
func (r *rawIOImage) Size() int64 {
	fi, err := r.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}
func (r *rawIOImage) Resize(n int64) error  { return r.f.Truncate(n) }
func (r *rawIOImage) Info() (string, int64) { return "raw", 0 }
func (r *rawIOImage) AllocationMap() ([]qemuio.Run, error) {
	return []qemuio.Run{{Off: 0, Len: r.Size(), Allocated: true}}, nil
}

// dropSyncFs is the deliberately broken variant of io's file system: a
// file's Sync returns success without syncing (a black-box campaign over
// 'qedtorture io --broken-drop-sync' must find the lost flushes).
type dropSyncFs struct{ afero.Fs }

func (d dropSyncFs) Open(name string) (afero.File, error) {
	f, err := d.Fs.Open(name)
	if err != nil {
		return nil, err
	}
	return dropSyncFile{f}, nil
}

func (d dropSyncFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := d.Fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return dropSyncFile{f}, nil
}

func (d dropSyncFs) Create(name string) (afero.File, error) {
	f, err := d.Fs.Create(name)
	if err != nil {
		return nil, err
	}
	return dropSyncFile{f}, nil
}

type dropSyncFile struct{ afero.File }

func (dropSyncFile) Sync() error          { return nil }
func (f dropSyncFile) Unwrap() afero.File { return f.File }
