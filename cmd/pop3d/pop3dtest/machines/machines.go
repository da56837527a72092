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
// dial the machines.
//
// Build and Close are the plain interface (pop3bench cluster uses them);
// New is the tests' form: it tears everything down when the test ends.
//
// It needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the ip(8), unshare(1)
// and hostname(1) programs. Without them Build returns Check's error and a
// test is skipped, except when the environment variable CI is set, where
// it fails.
package machines

import (
	"bytes"
	"errors"
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

// Check says why machines cannot be built here, or returns nil.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("test machines need root (network and UTS namespaces)")
	}
	for _, p := range []string{"ip", "unshare", "hostname"} {
		if _, err := exec.LookPath(p); err != nil {
			return errors.New(p + " is not installed")
		}
	}
	return nil
}

// Need skips (fails in CI) when machines cannot be built here.
func Need(t testing.TB) {
	t.Helper()
	err := Check()
	if err == nil {
		return
	}
	if inCI() {
		t.Fatal(err)
	}
	t.Skip(err)
}

// New builds n machines for a test and tears them down when it ends; it
// skips the test (fails it in CI) when machines cannot be built here.
func New(t testing.TB, n int) *Net {
	t.Helper()
	Need(t)
	nt, err := Build(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nt.Close(); err != nil {
			t.Error(err)
		}
	})
	return nt
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// lockFile serialises the choice of a free subnet between processes.
const lockFile = "/run/pop3svc-test-machines.lock"

// Build builds n machines. The caller tears them down with Close, also
// after an error from a later step; on an error Build removes what it
// made.
func Build(n int) (nt *Net, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if n < 1 || n > 250 {
		return nil, fmt.Errorf("machines.Build: %d machines (1..250)", n)
	}
	lf, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("ip addr: %w", err)
	}
	sub := -1
	for i := 1; i < 255; i++ {
		if !bytes.Contains(out, []byte(" "+Prefix+"."+strconv.Itoa(i)+".")) {
			sub = i
			break
		}
	}
	if sub < 0 {
		return nil, fmt.Errorf("no free %s.x.0/24 subnet", Prefix)
	}
	id := strconv.Itoa(os.Getpid()%100000) + "x" + strconv.Itoa(sub)
	nt = &Net{Bridge: "p3b" + id, HostAddr: fmt.Sprintf("%s.%d.254", Prefix, sub), id: id}
	defer func() {
		if err != nil {
			_ = nt.Close()
			nt = nil
		}
	}()
	steps := [][]string{
		{"ip", "link", "add", nt.Bridge, "type", "bridge"},
		{"ip", "addr", "add", nt.HostAddr + "/24", "dev", nt.Bridge},
		{"ip", "link", "set", nt.Bridge, "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nt, err
		}
	}
	for i := 1; i <= n; i++ {
		m := &Machine{
			Name: "m" + strconv.Itoa(i),
			Host: fmt.Sprintf("pop3test-%s-m%d", id, i),
			Addr: fmt.Sprintf("%s.%d.%d", Prefix, sub, i),
			NS:   fmt.Sprintf("p3n%s-%d", id, i),
		}
		nt.Machines = append(nt.Machines, m)
		host, peer := fmt.Sprintf("p3v%s-%d", id, i), "eth0"
		steps := [][]string{
			{"ip", "netns", "add", m.NS},
			{"ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", m.NS},
			{"ip", "link", "set", host, "master", nt.Bridge},
			{"ip", "link", "set", host, "up"},
			{"ip", "-n", m.NS, "link", "set", "lo", "up"},
			{"ip", "-n", m.NS, "addr", "add", m.Addr + "/24", "dev", peer},
			{"ip", "-n", m.NS, "link", "set", peer, "up"},
		}
		for _, s := range steps {
			if err := run(s...); err != nil {
				return nt, err
			}
		}
	}
	return nt, nil
}

// Close removes the namespaces (their veth ends go with them) and the
// bridge. It reports what it could not remove; closing twice is harmless.
func (nt *Net) Close() error {
	var errs []error
	for _, m := range nt.Machines {
		if exists("/run/netns/" + m.NS) {
			if err := run("ip", "netns", "del", m.NS); err != nil {
				errs = append(errs, err)
			}
		}
		veth := fmt.Sprintf("p3v%s-%s", nt.id, strings.TrimPrefix(m.Name, "m"))
		if exists("/sys/class/net/" + veth) {
			if err := run("ip", "link", "del", veth); err != nil && exists("/sys/class/net/"+veth) {
				errs = append(errs, err)
			}
		}
	}
	if exists("/sys/class/net/" + nt.Bridge) {
		if err := run("ip", "link", "del", nt.Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
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
