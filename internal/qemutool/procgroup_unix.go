//go:build unix

package qemutool

import (
	"os/exec"
	"syscall"
)

// NewProcessGroup makes cmd, once started, the leader of a process group
// of its own, so KillGroup also reaches any helper it forks.
func NewProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// KillGroup sends SIGKILL to the process group of cmd, a started command
// set up with NewProcessGroup.
func KillGroup(cmd *exec.Cmd) error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
