package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest/machines"
)

// clusterLease is the lock lease of the servers in these tests: short, so
// that a take-over comes quickly, and long enough that the renewals (due a
// third of it after the last, run by the engine's one-second sweep) keep
// a live session's lock through a few seconds' stall of a loaded machine.
const clusterLease = 6 * time.Second

// onMachine starts pop3d on test machine m, as server node over the
// shared mail root.
func onMachine(t *testing.T, m *machines.Machine, node int, root string, setup [][]string) *pop3dtest.Server {
	t.Helper()
	return pop3dtest.Start(t, pop3dtest.Config{
		Top:      fmt.Sprintf("node = %d\nlock_lease = %q", node, clusterLease.String()),
		Host:     m.Addr,
		MailRoot: root,
		Command:  m.Command,
		Setup:    setup,
	})
}

// mailboxSetup makes alice@example.org with n messages.
func mailboxSetup(n int) [][]string {
	s := [][]string{{"add", "example.org"}, {"add", "alice@example.org", "-password", "secret"}}
	for i := 0; i < n; i++ {
		s = append(s, []string{"deliver", "alice@example.org"})
	}
	return s
}

func loginAlice(t *testing.T, addr string) (*pop3dtest.Conn, string) {
	t.Helper()
	c := pop3dtest.Dial(t, addr, "")
	c.Cmd("USER alice@example.org")
	return c, c.Cmd("PASS secret")
}

// lockFolder returns the name and mtime of alice's session lock folder.
func lockFolder(t *testing.T, root string) (string, time.Time) {
	t.Helper()
	dir := filepath.Join(root, "example.org", "P3_alice.mbx")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "kcol.") {
			fi, err := os.Lstat(filepath.Join(dir, e.Name()))
			if err == nil {
				return e.Name(), fi.ModTime()
			}
		}
	}
	return "", time.Time{}
}

func countMessages(t *testing.T, root string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "example.org", "P3_alice.mbx"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".eml") {
			n++
		}
	}
	return n
}

// waitLogin logs in on addr until the mailbox is no longer in use, and
// returns the session and how long that took.
func waitLogin(t *testing.T, addr string, within time.Duration) (*pop3dtest.Conn, time.Duration) {
	t.Helper()
	start := time.Now()
	var c *pop3dtest.Conn
	pop3dtest.WaitFor(t, within, "the mailbox to be free for a login", func() bool {
		var r string
		c, r = loginAlice(t, addr)
		if strings.HasPrefix(r, "+OK") {
			return true
		}
		if !strings.HasPrefix(r, "-ERR [IN-USE]") {
			t.Fatalf("login while the other machine holds the mailbox: %q, want +OK or -ERR [IN-USE]", r)
		}
		c.Cmd("QUIT")
		return false
	})
	return c, time.Since(start)
}

// TestFencingAcrossMachines: a session on machine 1 keeps its lock while
// it renews it (machine 2 is refused well past the lease); frozen past
// its lease (SIGSTOP), machine 2 takes the mailbox over; thawed, the
// first session serves nothing more and its QUIT answers [IN-USE] and
// deletes nothing. Then machine 2's pop3d is killed with SIGKILL holding
// the mailbox, and machine 1 gets it back after the lease.
func TestFencingAcrossMachines(t *testing.T) {
	nt := machines.New(t, 2)
	root := filepath.Join(t.TempDir(), "mailroot")
	s1 := onMachine(t, nt.Machines[0], 1, root, mailboxSetup(3))
	s2 := onMachine(t, nt.Machines[1], 2, root, nil)

	c1, r := loginAlice(t, s1.POP3)
	if !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login on machine 1: %q", r)
	}
	for _, n := range []string{"1", "2"} {
		if r := c1.Cmd("DELE " + n); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("DELE %s: %q", n, r)
		}
	}
	// Renewals: the lock folder's mtime moves past the time in its name
	// twice, and more than a lease has passed since login; machine 2 is
	// still refused.
	name, since := lockFolder(t, root)
	if name == "" {
		t.Fatal("no session lock folder while logged in")
	}
	login := time.Now()
	last, renewals := since, 0
	pop3dtest.WaitFor(t, 20*clusterLease, "two renewals of the lock and a whole lease since the login", func() bool {
		if _, m := lockFolder(t, root); m.After(last) {
			last = m
			renewals++
		}
		return renewals >= 2 && time.Since(login) > clusterLease
	})
	if c, r := loginAlice(t, s2.POP3); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Fatalf("login on machine 2 while machine 1 renews its lock: %q, want -ERR [IN-USE]", r)
	} else {
		c.Cmd("QUIT")
	}
	if n, _ := lockFolder(t, root); n != name {
		t.Fatalf("the lock changed hands while renewed: %s, then %s", name, n)
	}

	// Freeze machine 1's pop3d past its lease: machine 2 takes over.
	if err := s1.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	c2, waited := waitLogin(t, s2.POP3, 20*clusterLease)
	t.Logf("machine 2 got the mailbox %v after machine 1 froze (lease %v)", waited.Round(time.Millisecond), clusterLease)
	if r := c2.Cmd("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Fatalf("STAT on machine 2: %q, want 3 messages", r)
	}
	if err := s1.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	const lost = "-ERR [IN-USE] mailbox lock lost to another session; no message deleted"
	if r := c1.Cmd("RETR 3"); r != lost {
		t.Fatalf("RETR on machine 1 after the take-over: %q, want %q", r, lost)
	}
	if r := c1.Cmd("QUIT"); r != lost {
		t.Fatalf("QUIT on machine 1 after the take-over: %q, want %q", r, lost)
	}
	if n := countMessages(t, root); n != 3 {
		t.Fatalf("%d messages after machine 1's fenced QUIT, want 3", n)
	}
	if r := c2.Cmd("DELE 3"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("DELE on machine 2: %q", r)
	}
	if r := c2.Cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("QUIT on machine 2: %q", r)
	}
	if n := countMessages(t, root); n != 2 {
		t.Fatalf("%d messages after machine 2's QUIT, want 2", n)
	}

	// Machine 2 dies holding the mailbox: machine 1 gets it after the lease.
	_, r = loginAlice(t, s2.POP3)
	if !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login on machine 2: %q", r)
	}
	if err := s2.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s2.Wait(pop3dtest.StopTimeout)
	c1, waited = waitLogin(t, s1.POP3, 20*clusterLease)
	t.Logf("machine 1 got the mailbox %v after machine 2 was killed (lease %v)", waited.Round(time.Millisecond), clusterLease)
	if r := c1.Cmd("STAT"); !strings.HasPrefix(r, "+OK 2 ") {
		t.Fatalf("STAT on machine 1: %q, want 2 messages", r)
	}
	c1.Cmd("QUIT")
}

// TestFullStoreLoginDeleteQuit: on a mail root whose file system is full,
// a user can still log in, DELE and QUIT, and so free space.
func TestFullStoreLoginDeleteQuit(t *testing.T) {
	machines.Need(t)
	root := filepath.Join(t.TempDir(), "mailroot")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", root).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot mount a small file system: %v: %s", err, out)
		}
		t.Skipf("cannot mount a small file system: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", root).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", root, err, out)
		}
	})
	s := pop3dtest.Start(t, pop3dtest.Config{MailRoot: root, Setup: mailboxSetup(3)})
	// Fill the file system.
	f, err := os.Create(filepath.Join(root, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte("x"), 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the file system: %v", err)
			}
			break
		}
	}
	f.Close()
	if out, err := s.TryCtl("a message that does not fit\n", "deliver", "alice@example.org"); err == nil {
		t.Fatalf("a delivery to the full store succeeded: %s", out)
	}
	for round := 0; round < 2; round++ {
		c, r := loginAlice(t, s.POP3)
		if !strings.HasPrefix(r, "+OK") {
			t.Fatalf("login on the full store: %q", r)
		}
		if r := c.Cmd("DELE 1"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("DELE on the full store: %q", r)
		}
		if r := c.Cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("QUIT on the full store: %q", r)
		}
		if n := countMessages(t, root); n != 2-round {
			t.Fatalf("%d messages after QUIT, want %d", n, 2-round)
		}
	}
}
