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
// (its consistent-read lock byte is seen; on systems without the locks,
// after a second). opts are qemu-io's options, e.g. "-f", "qed", "-r",
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-h.done:
			h.done <- err
			return nil, fmt.Errorf("qemutool: qemu-io %v exited before holding the image: %v: %s", args, err, bytes.TrimSpace(h.stderr.Bytes()))
		default:
		}
		if held, err := heldByOther(path); err != nil || held || time.Now().After(deadline) {
			if err == nil && !held && imagelock.Supported {
				h.Release()
				return nil, fmt.Errorf("qemutool: qemu-io %v did not lock the image within 10 s", args)
			}
			return h, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heldByOther reports whether someone holds path's consistent-read lock
// byte (always true after a second where locks are not supported).
func heldByOther(path string) (bool, error) {
	if !imagelock.Supported {
		time.Sleep(time.Second)
		return true, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	held, _, err := imagelock.Probe(f)
	return held&imagelock.ConsistentRead != 0, err
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
