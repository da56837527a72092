package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// uidlScript prints, for every message, its UIDL and a digest of what
// RETR returns, with Python's poplib.
const uidlScript = `
import poplib, sys, hashlib
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=30)
p.user(sys.argv[3]); p.pass_(sys.argv[4])
for line in p.uidl()[1]:
    n, uid = line.decode().split()
    body = b"\r\n".join(p.retr(int(n))[1])
    print(uid, hashlib.sha256(body).hexdigest())
p.quit()
`

func uidls(t *testing.T, in *pop3dtest.Server) map[string]string {
	t.Helper()
	h, p, _ := net.SplitHostPort(in.POP3)
	out := runPy(t, uidlScript, h, p, testAddr.String(), testPassword)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// TestBackupWhileServing: pop3ctl backup runs while pop3d serves and SMTP
// deliveries keep coming; pop3ctl restore brings the mailbox back into an
// empty mail root served by a second pop3d; poplib compares UIDLs and
// contents. Messages delivered during the backup are either in it or
// still in the first store.
func TestBackupWhileServing(t *testing.T) {
	in := startPop3d(t, "", "", mailbox(30, 4000))
	before := uidls(t, in)
	if len(before) != 30 {
		t.Fatalf("%d messages before the backup", len(before))
	}

	// SMTP deliveries during the backup, with Python's smtplib.
	h, p, _ := net.SplitHostPort(in.SMTP[0])
	smtp := `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30)
for i in range(int(sys.argv[3])):
    s.sendmail("bob@example.net", ["alice@example.org"], "Subject: during %d\r\n\r\nbody %d\r\n" % (i, i))
s.quit()
`
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runPy(t, smtp, h, p, "20")
	}()
	file := filepath.Join(t.TempDir(), "backup.tar.gz")
	out := in.Ctl(t, "", "-json", "backup", file)
	wg.Wait()
	var rep struct{ Messages int }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Messages < 30 {
		t.Fatalf("pop3ctl backup: %v %s", err, out)
	}
	// Every delivery lands in the first store.
	// The delivery service works the queue: wait for all 50.
	var live map[string]string
	if !pop3dtest.Eventually(60*time.Second, func() bool {
		live = uidls(t, in)
		return len(live) == 50
	}) {
		t.Fatalf("%d messages in the live mailbox, want 50", len(live))
	}

	// A second service on an empty mail root; restore while it runs.
	c2 := integrationConfig(t, "", "", nil)
	in2 := pop3dtest.Start(t, c2)
	out = in2.Ctl(t, "", "-json", "restore", file)
	var rr struct {
		Messages    int  `json:"messages"`
		KeyReplaced bool `json:"key_replaced"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out[strings.Index(out, "{"):])), &rr); err != nil || rr.Messages != rep.Messages || !rr.KeyReplaced {
		t.Fatalf("pop3ctl restore: %v %s", err, out)
	}
	// The restored key takes a restart.
	in2.Stop()
	in2 = restart(t, in2)
	restored := uidls(t, in2)
	if len(restored) != rep.Messages {
		t.Fatalf("%d messages restored, the backup holds %d", len(restored), rep.Messages)
	}
	for u, sum := range before {
		if restored[u] != sum {
			t.Errorf("message %s: restored %q, was %q", u, restored[u], sum)
		}
	}
	for u, sum := range restored {
		if live[u] != sum {
			t.Errorf("restored message %s is not the live one", u)
		}
	}
	t.Logf("backup of %d messages taken while 20 were delivered; %d of them in it", rep.Messages, rep.Messages-30)

	// Restoring into the live store adds nothing and loses nothing.
	out = in.Ctl(t, "", "-json", "restore", file)
	if !strings.Contains(out, `"messages": 0`) {
		t.Fatalf("restore into the live store: %s", out)
	}
	if after := uidls(t, in); len(after) != 50 {
		t.Fatalf("%d messages after restoring into the live store, want 50", len(after))
	}
}

// restart starts pop3d again on s's mail root.
func restart(t *testing.T, s *pop3dtest.Server) *pop3dtest.Server {
	t.Helper()
	c := integrationConfig(t, "", "", nil)
	c.MailRoot = filepath.Join(s.Dir, "mailroot")
	return pop3dtest.Start(t, c)
}
