//go:build linux

package tpmtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill swtpm if the test binary dies first
// (a test timeout, a kill), so no process outlives the test run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
