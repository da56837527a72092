// Package proc measures a server's whole process tree from /proc (Linux):
// CPU time (utime+stime of every live process, plus cutime+cstime, which
// hold the time of children already reaped) and memory (PSS from
// /proc/<pid>/smaps_rollup, summed over the tree).
package proc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ticks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times; 100
// on every Linux architecture Go supports.
const ticks = 100

// stat holds the fields of /proc/<pid>/stat the harness uses.
type stat struct {
	ppid int
	cpu  int64 // utime+stime+cutime+cstime in ticks
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// The command name is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4; utime..cstime are 14..17.
	if len(f) < 15 {
		return stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var s stat
	s.ppid, _ = strconv.Atoi(f[1])
	for _, k := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return stat{}, fmt.Errorf("/proc/%d/stat field %d: %w", pid, k+3, err)
		}
		s.cpu += v
	}
	return s, nil
}

// Tree returns root and every live descendant of it.
func Tree(root int) ([]int, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", root)); err != nil {
		return nil, fmt.Errorf("process %d: %w", root, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[s.ppid] = append(children[s.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// CPU returns the CPU time used so far by the tree under root, including
// reaped children.
func CPU(root int) (time.Duration, error) {
	pids, err := Tree(root)
	if err != nil {
		return 0, err
	}
	var t int64
	for _, p := range pids {
		s, err := readStat(p)
		if err != nil {
			if p == root {
				return 0, err
			}
			continue
		}
		t += s.cpu
	}
	return time.Duration(t) * time.Second / ticks, nil
}

// PSS returns the proportional set size of the tree under root, in bytes.
func PSS(root int) (int64, error) {
	pids, err := Tree(root)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range pids {
		v, err := pss(p)
		if err != nil {
			if p == root {
				return 0, err
			}
			continue
		}
		total += v
	}
	return total, nil
}

func pss(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Pss:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb << 10, nil
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup: no Pss line", pid)
}

// Self returns the CPU time used by this process. Reaped children are not
// counted: the servers under test may be children of the harness too; the
// harness adds its worker processes' times itself.
func Self() time.Duration {
	var s syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &s)
	return time.Duration(s.Utime.Nano()) + time.Duration(s.Stime.Nano())
}

// LoadAvg returns the machine's one-minute load average (/proc/loadavg),
// reported next to every figure: on a shared machine it says how much
// else ran.
func LoadAvg() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/loadavg is empty")
	}
	return strconv.ParseFloat(f[0], 64)
}
