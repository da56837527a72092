package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestSelf(t *testing.T) {
	pid := os.Getpid()
	before, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	after, err := CPU(pid)
	if err != nil || after < before {
		t.Fatalf("CPU went from %v to %v, err %v", before, after, err)
	}
	if Self() <= 0 {
		t.Error("Self() reported no CPU time")
	}
	p, err := PSS(pid)
	if err != nil || p < 1<<20 {
		t.Fatalf("PSS(self) = %d, %v; want at least 1 MiB", p, err)
	}
}

func TestTreeSeesChild(t *testing.T) {
	// cat runs until its stdin closes: the child lives as long as the
	// test needs it.
	cmd := exec.Command("cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal("cannot start cat:", err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	pids, err := Tree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pids {
		found = found || p == cmd.Process.Pid
	}
	if !found {
		t.Errorf("Tree(self) = %v, misses child %d", pids, cmd.Process.Pid)
	}
	if _, err := CPU(1 << 30); err == nil {
		t.Error("CPU of a missing process gave no error")
	}
}
