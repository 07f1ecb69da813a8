package qemutool

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/qedtorture/qedtorture/internal/imagelock"
)

// Holder is a qemu-io process that keeps an image open (and locked, as
// QEMU locks images) until Release.
type Holder struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// Hold starts `qemu-io [opts...] -c 'sleep N' path`, which opens path with
// QEMU's locks and keeps it open, and returns once QEMU holds the image
// with its final permissions (on systems without the locks, after a
// second). QEMU takes its lock bytes in more than one step (the
// consistent-read byte first, the write bytes when the permissions are
// activated), so Hold waits for every byte the mode implies: the write byte
// unless -r, the not-shared write byte unless -U. opts are qemu-io's options, e.g. "-f", "qed", "-r",
// "-U". A qemu-io that exits first (the image was locked by someone else)
// is an error carrying its message.
func (t *Tool) Hold(path string, opts ...string) (*Holder, error) {
	args := append(append([]string{}, opts...), "-c", "sleep 600000", path)
	h := &Holder{cmd: exec.Command(t.IOPath, args...), done: make(chan error, 1)}
	h.cmd.Stderr = &h.stderr
	h.cmd.Stdout = &h.stderr
	h.cmd.Env = append(os.Environ(), "LC_ALL=C")
	NewProcessGroup(h.cmd)
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemutool: starting qemu-io: %w", err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	want := holdMode(opts)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-h.done:
			h.done <- err
			return nil, fmt.Errorf("qemutool: qemu-io %v exited before holding the image: %v: %s", args, err, bytes.TrimSpace(h.stderr.Bytes()))
		default:
		}
		if held, err := heldByOther(path, want); err != nil || held || time.Now().After(deadline) {
			if err == nil && !held && imagelock.Supported {
				h.Release()
				return nil, fmt.Errorf("qemutool: qemu-io %v did not lock the image within 10 s", args)
			}
			return h, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitLocked waits up to 10 s until someone holds every lock byte of want
// on path (see heldByOther): for the backing file of an image a Holder
// opened, whose bytes QEMU may take after the image's own.
func WaitLocked(path string, want imagelock.Mode) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, err := heldByOther(path, want)
		if err != nil || held {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("qemutool: %s: not locked by QEMU within 10 s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdMode is the lock bytes a qemu-io with opts holds once its image is
// open: the permissions it holds and those it does not share.
func holdMode(opts []string) imagelock.Mode {
	readOnly, forceShare := false, false
	for _, o := range opts {
		switch o {
		case "-r", "--read-only":
			readOnly = true
		case "-U", "--force-share":
			forceShare = true
		}
	}
	m := imagelock.Mode{Hold: imagelock.ConsistentRead}
	if !readOnly {
		m.Hold |= imagelock.Write
	}
	if !forceShare {
		m.Share = imagelock.All &^ imagelock.Write
	} else {
		m.Share = imagelock.All
	}
	return m
}

// heldByOther reports whether someone holds every lock byte of want on
// path: the permissions of want.Hold and the not-shared bytes of the
// permissions want.Share leaves out (always true after a second where locks
// are not supported).
func heldByOther(path string, want imagelock.Mode) (bool, error) {
	if !imagelock.Supported {
		time.Sleep(time.Second)
		return true, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	held, unshared, err := imagelock.Probe(f)
	notShared := imagelock.All &^ want.Share
	return held&want.Hold == want.Hold && unshared&notShared == notShared, err
}

// Release kills the qemu-io process (its process group) and waits for it.
func (h *Holder) Release() {
	if h == nil {
		return
	}
	_ = KillGroup(h.cmd)
	err := <-h.done
	h.done <- err
}
