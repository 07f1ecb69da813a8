//go:build !unix

package qemutool

import "os/exec"

// NewProcessGroup does nothing where process groups are not available.
func NewProcessGroup(cmd *exec.Cmd) {}

// KillGroup kills the process of cmd (a started command): without process
// groups, helpers it forked are not reached.
func KillGroup(cmd *exec.Cmd) error { return cmd.Process.Kill() }
