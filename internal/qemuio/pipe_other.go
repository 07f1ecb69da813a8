//go:build !linux

package qemuio

import "os"

// packetPipe returns an ordinary pipe: packet pipes are Linux's, and
// Proc.Pipeline then sends one line at a time.
func packetPipe() (r, w *os.File, packet bool, err error) {
	r, w, err = os.Pipe()
	return r, w, false, err
}
