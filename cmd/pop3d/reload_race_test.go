package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
)

// TestReloadWhileAuthenticating reloads the running service in a loop
// (SIGHUP and POST /api/reload, the [auth] settings changing each time)
// while clients log in with right and wrong passwords and the status
// page is read. Every login must get its usual answer throughout; run
// with -race, pop3d is built with the race detector and a data race it
// reports fails the test (pop3dtest.Start checks its log).
func TestReloadWhileAuthenticating(t *testing.T) {
	const clients = 4
	users := make([]store.Address, clients)
	for i := range users {
		users[i] = store.Address{Mailbox: fmt.Sprintf("user%d", i), Domain: "example.org"}
	}
	// fastHash: each right password is upgraded to a cheap bcrypt at its
	// first login, so that the reloads, not the hashes, are what the
	// logins run into on a loaded machine.
	authTable := func(i int) string {
		return fastHash + fmt.Sprintf("fail_delay = \"%dms\"\npenalty = \"%dms\"\npenalty_max = \"50ms\"\nban_after = %d\nban_window = \"1m\"\nban_time = \"1ms\"",
			10+i%3, i%2, 1000*(i%2))
	}
	c := integrationConfig(t, "", "", func(ctx context.Context, st store.Store) {
		if err := st.CreateDomain(ctx, "example.org"); err != nil {
			panic(err)
		}
		for _, a := range users {
			if err := st.CreateMailbox(ctx, a, testPassword); err != nil {
				panic(err)
			}
		}
	})
	c.Auth = authTable(0)
	// A loaded machine may take seconds per login: no login timeout
	// should end a session the test is still driving.
	c.POP3 = `login_timeout = "10m"`
	in := pop3dtest.Start(t, c)

	stop := make(chan struct{})
	var logins atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := loginTwice(in.POP3, users[i].String()); err != nil {
					errs <- err.Error()
					return
				}
				logins.Add(1)
			}
		}()
	}

	client := &http.Client{Timeout: 30 * time.Second}
	const reloads = 30
	for i := 1; i <= reloads; i++ {
		c.Auth = authTable(i)
		if err := os.WriteFile(in.Conf, []byte(c.Text()), 0o600); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			before := strings.Count(in.Log(), "configuration reloaded")
			if err := in.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitLog(t, in, func(l string) bool { return strings.Count(l, "configuration reloaded") > before })
		} else {
			resp, err := client.Post("http://"+in.Admin+"/api/reload", "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST /api/reload: %s", resp.Status)
			}
		}
		resp, err := client.Get("http://" + in.Admin + "/api/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Keep going until every client has logged in a few times, so that
	// logins overlapped the reloads above and ran after the last one.
	deadline := time.Now().Add(60 * time.Second)
	for start := logins.Load(); logins.Load() < start+clients; {
		if time.Now().After(deadline) {
			t.Fatal("clients stopped logging in after the reloads")
		}
		select {
		case e := <-errs:
			t.Fatal(e)
		case <-time.After(20 * time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
}

// waitLog waits until ok accepts pop3d's log.
func waitLog(t *testing.T, in *pop3dtest.Server, ok func(string) bool) {
	t.Helper()
	pop3dtest.WaitFor(t, 30*time.Second, "the log line the test waits for", func() bool { return ok(in.Log()) })
}

// loginTwice opens a session, fails one login and then logs in and quits;
// it returns what went wrong, if anything. It does not use testing.T, so
// that it can run on other goroutines than the test's.
func loginTwice(addr, user string) error {
	c, err := net.DialTimeout("tcp", addr, pop3dtest.DialTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	want := func(prefix string) error {
		l, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("after %q: %v", l, err)
		}
		if !strings.HasPrefix(l, prefix) {
			return fmt.Errorf("got %q, want %q", l, prefix)
		}
		return nil
	}
	steps := []struct{ send, want string }{
		{"", "+OK"},
		{"USER " + user + "\r\n", "+OK"},
		{"PASS wrong\r\n", "-ERR [AUTH]"},
		{"USER " + user + "\r\n", "+OK"},
		{"PASS " + testPassword + "\r\n", "+OK"},
		{"QUIT\r\n", "+OK"},
	}
	for _, st := range steps {
		if err := c.SetDeadline(time.Now().Add(pop3dtest.ReadTimeout)); err != nil {
			return err
		}
		if st.send != "" {
			if _, err := io.WriteString(c, st.send); err != nil {
				return err
			}
		}
		if err := want(st.want); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSpace(st.send), err)
		}
	}
	return nil
}
