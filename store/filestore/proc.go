//go:build linux

package filestore

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// procIdentity names a process across servers: the host, its boot, the
// pid and the process start time (clock ticks since boot, /proc/<pid>/stat
// field 22), so that a reused pid is not taken for the original process.
type procIdentity struct {
	Node  int
	Host  string
	Boot  string
	PID   int
	Start uint64
}

func currentProcess(node int) procIdentity {
	host, _ := os.Hostname()
	pid := os.Getpid()
	start, _ := procStart(pid)
	return procIdentity{Node: node, Host: host, Boot: bootID(), PID: pid, Start: start}
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	// Without its dashes: it is written in lock names.
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
}

// procStart returns field 22 (starttime) of /proc/<pid>/stat.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, os.ErrInvalid
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 20 {
		return 0, os.ErrInvalid
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// sameMachine reports whether id ran on this machine since its last boot,
// so that its liveness can be checked in /proc.
func (p procIdentity) sameMachine(self procIdentity) bool {
	return p.Host != "" && p.Host == self.Host && p.Boot != "" && p.Boot == self.Boot
}

// alive reports whether the process p (on this machine) still runs.
func (p procIdentity) alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, err := procStart(p.PID)
	if err != nil {
		return false
	}
	return start == p.Start
}
