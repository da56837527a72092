package main

import (
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// logFields parses one key=value log line (slog's text format).
func logFields(line string) map[string]string {
	m := map[string]string{}
	for _, f := range regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`).FindAllStringSubmatch(line, -1) {
		m[f[1]] = strings.Trim(f[2], `"`)
	}
	return m
}

// waitLine waits until the log holds a line with msg and every field of
// want, and returns its fields.
func waitLine(t *testing.T, log func() string, msg string, want map[string]string) map[string]string {
	t.Helper()
	var found map[string]string
	if !pop3dtest.Eventually(30*time.Second, func() bool {
		for _, l := range strings.Split(log(), "\n") {
			f := logFields(l)
			if f["msg"] != msg {
				continue
			}
			ok := true
			for k, v := range want {
				if f[k] != v {
					ok = false
				}
			}
			if ok {
				found = f
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no log line msg=%q with %v:\n%s", msg, want, log())
	}
	return found
}

// TestLogLines checks the lines an operator greps: a delivery (queue id,
// mailbox, UID, size, result), a successful and a failed login (user,
// method, result, address; never the password), a refusal, and audit
// lines for pop3ctl (to syslog) and the admin API.
func TestLogLines(t *testing.T) {
	// A syslog socket for pop3ctl's audit lines.
	sock := filepath.Join(t.TempDir(), "syslog")
	syslog, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer syslog.Close()
	t.Setenv("POP3CTL_SYSLOG", sock)

	c := integrationConfig(t, "logging = 3", "", mailbox(0, 0))
	c.Auth += "\nban_after = 3\nban_window = \"10m\""
	in := pop3dtest.Start(t, c)

	// SMTP delivery with Python's smtplib.
	py := `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)
s.sendmail("bob@example.net", ["alice@example.org"], "Subject: logged\r\n\r\nbody\r\n")
s.quit()
print("sent")
`
	h, p, _ := net.SplitHostPort(in.SMTP[0])
	if out := runPy(t, py, h, p); !strings.Contains(out, "sent") {
		t.Fatalf("smtplib: %s", out)
	}
	queued := waitLine(t, in.Log, "message queued", nil)
	d := waitLine(t, in.Log, "delivery", map[string]string{"queue_id": queued["queue_id"], "mailbox": "alice@example.org", "result": "delivered"})
	if !regexp.MustCompile(`^\d{26}$`).MatchString(d["uid"]) || d["size"] == "" || d["size"] == "0" {
		t.Errorf("delivery line without a UID or size: %v", d)
	}

	// A login, and a failed one with a password that must not be logged.
	user := testAddr.String() + ":" + testPassword
	if out, err := runCurl(t, "--user", user, "pop3://"+in.POP3+"/1"); err != nil || !strings.Contains(out, "Subject: logged") {
		t.Fatalf("curl RETR: %v\n%s", err, out)
	}
	ok := waitLine(t, in.Log, "login", map[string]string{"user": "alice@example.org", "mech": "cram-md5", "result": "ok"})
	if !strings.HasPrefix(ok["remote"], "127.0.0.1:") {
		t.Errorf("login line without the client address: %v", ok)
	}
	const wrong = "Wr0ng-Secret-Value"
	// USER/PASS with poplib, three failures, then the ban's refusal.
	badLogins := `
import poplib, sys
for i in range(4):
    p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=30)
    p.user(sys.argv[3])
    try:
        p.pass_(sys.argv[4])
        print("accepted")
    except poplib.error_proto as e:
        print("refused", e)
    p.close()
`
	ph, pp, _ := net.SplitHostPort(in.POP3)
	if out := runPy(t, badLogins, ph, pp, testAddr.String(), wrong); strings.Contains(out, "accepted") {
		t.Fatalf("a wrong password was accepted: %s", out)
	}
	fail := waitLine(t, in.Log, "login failed", map[string]string{"user": "alice@example.org", "mech": "user", "result": "fail"})
	if !strings.HasPrefix(fail["remote"], "127.0.0.1:") {
		t.Errorf("failed-login line without the client address: %v", fail)
	}
	// The fourth came after the ban (ban_after = 3): a refusal line.
	waitLine(t, in.Log, "login refused", map[string]string{"user": "alice@example.org", "result": "refused", "reason": "banned"})
	if strings.Contains(in.Log(), wrong) || strings.Contains(in.Log(), testPassword) {
		t.Fatalf("a password is in the log:\n%s", in.Log())
	}

	// pop3ctl's change goes to syslog with who, from, old and new.
	in.Ctl(t, "", "quota", testAddr.String(), "50MB")
	syslog.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 8192)
	n, err := syslog.Read(buf)
	if err != nil {
		t.Fatalf("no audit line on the syslog socket: %v", err)
	}
	line := string(buf[:n])
	a := logFields(line)
	if !strings.Contains(line, "pop3ctl") || a["msg"] != "audit" || a["via"] != "pop3ctl" || a["who"] == "" || !strings.HasPrefix(a["from"], "local pid ") ||
		a["action"] != "quota" || a["object"] != "alice@example.org" || a["old"] != "none" || a["new"] != "50MB" {
		t.Errorf("pop3ctl's audit line %q", line)
	}
	in.Ctl(t, "", "changepwd", testAddr.String(), "-password", "N3w-Password-Here")
	syslog.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err = syslog.Read(buf)
	if err != nil || strings.Contains(string(buf[:n]), "N3w-Password-Here") || logFields(string(buf[:n]))["action"] != "password" {
		t.Errorf("pop3ctl's password audit line %q (%v)", buf[:n], err)
	}

	// The admin API's reload is audited in pop3d's log.
	if out, err := runCurl(t, "-X", "POST", "-H", "X-Remote-User: carol", "http://"+in.Admin+"/api/reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	r := waitLine(t, in.Log, "audit", map[string]string{"via": "api", "who": "carol", "action": "reload", "new": "applied"})
	if !strings.HasPrefix(r["from"], "127.0.0.1:") {
		t.Errorf("the API's audit line has no client address: %v", r)
	}
}

// TestConnectionRefusalLogged: a connection over limits.max_conns_per_ip
// gets -ERR and one log line with the address and the reason.
func TestConnectionRefusalLogged(t *testing.T) {
	c := integrationConfig(t, "logging = 3", "", nil)
	c.Tables = "[limits]\nmax_conns_per_ip = 1\n"
	in := pop3dtest.Start(t, c)
	first := pop3dtest.Dial(t, in.POP3, "")
	second := pop3dtest.DialRaw(t, in.POP3, "")
	if l, _ := second.ReadLine(); !strings.HasPrefix(l, "-ERR") {
		t.Fatalf("second connection from one address got %q, want -ERR", l)
	}
	f := waitLine(t, in.Log, "connection refused", map[string]string{"result": "refused", "reason": "per_ip"})
	if !strings.HasPrefix(f["remote"], "127.0.0.1:") {
		t.Errorf("refusal line without the address: %v", f)
	}
	first.Send("QUIT\r\n")
	first.Expect("+OK")
}
