package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// hashProcessCases change where password hashes run (auth.hash_processes)
// and the nice values of the hash workers; TestReloadAppliesAuthQueueKeys
// runs them with the verified-login cache off, so every login is a hash.
func hashProcessCases() []liveCase {
	return []liveCase{
		// Off: the workers started before exit, and logins start none.
		{key: "auth.hash_processes", value: "false", want: "no hash workers", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			if r := loginAs(t, in, ip, testAddr.String(), testPassword); r != "+OK" {
				t.Fatalf("login: %q", r)
			}
			// Workers stopped by the reload exit once they see their input
			// close: wait for that, up to the deadline.
			if pop3dtest.Eventually(10*time.Second, func() bool { return len(hashWorkers(t, in)) == 0 }) {
				return "no hash workers"
			}
			return fmt.Sprintf("%d hash workers", len(hashWorkers(t, in)))
		}},
		// A login's hash runs in a worker at hash_nice.
		{key: "auth.hash_nice", value: "7", want: "a worker at nice 7", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			if r := loginAs(t, in, ip, testAddr.String(), testPassword); r != "+OK" {
				t.Fatalf("login: %q", r)
			}
			return workerAtNice(t, in, 7)
		}},
		// A network with auth.net_failures (2) recent failures is suspect:
		// the next check runs in a worker at suspect_nice.
		{key: "auth.suspect_nice", value: "12", want: "a worker at nice 12", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			for range 3 {
				if r := loginAs(t, in, ip, testAddr.String(), "wrong"); r != "-ERR [AUTH]" {
					t.Fatalf("wrong password: %q", r)
				}
			}
			return workerAtNice(t, in, 12)
		}},
	}
}

// workerAtNice reports whether a hash worker of pop3d runs at nice n.
func workerAtNice(t *testing.T, in *pop3dtest.Server, n int) string {
	for _, nice := range hashWorkers(t, in) {
		if nice == n {
			return fmt.Sprintf("a worker at nice %d", n)
		}
	}
	return fmt.Sprintf("no worker at nice %d", n)
}

// hashWorkers returns pop3d's child processes (its hash workers) and the
// nice value of each.
func hashWorkers(t *testing.T, in *pop3dtest.Server) map[int]int {
	t.Helper()
	pid := strconv.Itoa(in.Cmd.Process.Pid)
	tasks, err := os.ReadDir(filepath.Join("/proc", pid, "task"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", pid, "task", task.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			stat, err := os.ReadFile(filepath.Join("/proc", f, "stat"))
			if err != nil {
				continue // exited meanwhile
			}
			s := string(stat)
			rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
			if rest[0] == "Z" {
				continue // exited, not yet reaped
			}
			// nice is the 19th field of the line, the 17th after the command.
			nice, err := strconv.Atoi(rest[16])
			if err != nil {
				t.Fatalf("stat of %s: %q", f, s)
			}
			id, _ := strconv.Atoi(f)
			out[id] = nice
		}
	}
	return out
}
