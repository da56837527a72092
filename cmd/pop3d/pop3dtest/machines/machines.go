// Package machines builds test machines on one host: each is a network
// namespace with its own address on a private bridge the package makes, its
// own host name (a UTS namespace entered for every program it runs) and its
// own programs. For the mail store's lock protocol they are different
// machines: a lock names its holder's host name, so a holder on another
// "machine" is judged by its lease, not by its process id.
//
// Addresses are 10.213.<net>.<n>/24, <net> chosen free among the bridges
// this package made on the host (a lock file serialises the choice), used
// only inside the namespaces and on the bridge it creates; the host side of
// the bridge has 10.213.<net>.254, so tests in the root namespace can
// dial the machines. Everything is torn down when the test ends.
//
// It needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the ip(8), unshare(1)
// and hostname(1) programs. Without them a test is skipped, except when
// the environment variable CI is set, where it fails.
package machines

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Prefix is the first two octets of every test machine address.
const Prefix = "10.213"

// Net is a set of machines on one bridge.
type Net struct {
	Bridge   string     // the bridge's name
	HostAddr string     // the root namespace's address on the bridge
	Machines []*Machine // in order, Machines[i].Name == fmt.Sprintf("m%d", i+1)
	id       string
}

// Machine is one test machine.
type Machine struct {
	Name string // m1, m2, ...
	Host string // its host name
	Addr string // its IPv4 address
	NS   string // its network namespace
}

// inCI reports whether a missing prerequisite is a failure.
func inCI() bool { return os.Getenv("CI") != "" }

// Need skips (fails in CI) when machines cannot be built here.
func Need(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "test machines need root (network and UTS namespaces)"
	default:
		for _, p := range []string{"ip", "unshare", "hostname"} {
			if _, err := exec.LookPath(p); err != nil {
				why = p + " is not installed"
			}
		}
	}
	if why == "" {
		return
	}
	if inCI() {
		t.Fatal(why)
	}
	t.Skip(why)
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// lockFile serialises the choice of a free subnet between test processes.
const lockFile = "/run/pop3svc-test-machines.lock"

// New builds n machines and tears them down when the test ends.
func New(t testing.TB, n int) *Net {
	t.Helper()
	Need(t)
	if n < 1 || n > 250 {
		t.Fatalf("machines.New: %d machines", n)
	}
	lf, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr: %v", err)
	}
	sub := -1
	for i := 1; i < 255; i++ {
		if !bytes.Contains(out, []byte(" "+Prefix+"."+strconv.Itoa(i)+".")) {
			sub = i
			break
		}
	}
	if sub < 0 {
		t.Fatalf("no free %s.x.0/24 subnet", Prefix)
	}
	id := strconv.Itoa(os.Getpid()%100000) + "x" + strconv.Itoa(sub)
	nt := &Net{Bridge: "p3b" + id, HostAddr: fmt.Sprintf("%s.%d.254", Prefix, sub), id: id}
	t.Cleanup(nt.teardown)
	must := func(args ...string) {
		t.Helper()
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("ip", "link", "add", nt.Bridge, "type", "bridge")
	must("ip", "addr", "add", nt.HostAddr+"/24", "dev", nt.Bridge)
	must("ip", "link", "set", nt.Bridge, "up")
	for i := 1; i <= n; i++ {
		m := &Machine{
			Name: "m" + strconv.Itoa(i),
			Host: fmt.Sprintf("pop3test-%s-m%d", id, i),
			Addr: fmt.Sprintf("%s.%d.%d", Prefix, sub, i),
			NS:   fmt.Sprintf("p3n%s-%d", id, i),
		}
		nt.Machines = append(nt.Machines, m)
		host, peer := fmt.Sprintf("p3v%s-%d", id, i), "eth0"
		must("ip", "netns", "add", m.NS)
		must("ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", m.NS)
		must("ip", "link", "set", host, "master", nt.Bridge)
		must("ip", "link", "set", host, "up")
		must("ip", "-n", m.NS, "link", "set", "lo", "up")
		must("ip", "-n", m.NS, "addr", "add", m.Addr+"/24", "dev", peer)
		must("ip", "-n", m.NS, "link", "set", peer, "up")
	}
	return nt
}

// teardown removes the namespaces (their veth ends go with them) and the bridge.
func (nt *Net) teardown() {
	for _, m := range nt.Machines {
		_ = run("ip", "netns", "del", m.NS)
		_ = run("ip", "link", "del", fmt.Sprintf("p3v%s-%s", nt.id, strings.TrimPrefix(m.Name, "m")))
	}
	_ = run("ip", "link", "del", nt.Bridge)
}

// Command returns a command that runs name with args on the machine: in
// its network namespace, under its own host name. The process started is
// the program itself (each wrapper execs the next), so signals sent to
// cmd.Process reach it.
func (m *Machine) Command(name string, args ...string) *exec.Cmd {
	script := `hostname "$0" && exec "$@"`
	full := append([]string{"netns", "exec", m.NS, "unshare", "--uts", "sh", "-c", script, m.Host, name}, args...)
	return exec.Command("ip", full...)
}
