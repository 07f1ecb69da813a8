package qemuio

import (
	"os"
	"syscall"
)

// packetPipe returns a pipe in packet mode (O_DIRECT): each write of at
// most PIPE_BUF bytes is one packet, and a read returns at most one
// packet. qemu-io reads its commands with fgets through stdio, whose
// buffer (4096 bytes on a pipe) a read fills with whatever the pipe
// holds, and then waits for the descriptor to become readable before it
// takes the next line: lines sent ahead on an ordinary pipe sit in that
// buffer unseen. With one line a packet, the buffer holds one line, and
// the lines after it keep the descriptor readable, so qemu-io runs them
// all (Proc.Pipeline). packet reports whether the pipe is one.
func packetPipe() (r, w *os.File, packet bool, err error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_DIRECT); err != nil {
		r, w, err := os.Pipe() // a kernel without packet pipes (before 3.4)
		return r, w, false, err
	}
	return os.NewFile(uintptr(fds[0]), "|0"), os.NewFile(uintptr(fds[1]), "|1"), true, nil
}
