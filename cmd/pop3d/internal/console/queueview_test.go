package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

func envelope(from string, rcpts ...string) store.Envelope {
	return store.Envelope{From: from, Rcpts: rcpts, Received: time.Now()}
}

// confirmToken finds the confirmation token of a confirmation page.
func confirmTokenOf(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`name="confirm" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no confirmation token:\n%s", excerpt(body))
	}
	return m[1]
}

func TestConsoleQueueViewer(t *testing.T) {
	e := newConsoleEnv(t, "")
	const msg = "Subject: <b>hello</b>\r\nFrom: s@x.test\r\n\r\nthe body is not shown\r\n"
	id, err := e.q.Enqueue(envelope("s@x.test", "a@example.com", "b@example.com"), strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	code, body := e.get("/console/queue")
	e.want(code, body, http.StatusOK, `href="/console/queue/`+id+`"`, "&lt;s@x.test&gt;", "Badmail is empty.")

	// The header, escaped; never the body.
	code, body = e.get("/console/queue/" + id)
	e.want(code, body, http.StatusOK, "Subject: &lt;b&gt;hello&lt;/b&gt;", "a@example.com", "waiting", "Retry now", "Delete…")
	if strings.Contains(body, "the body is not shown") || strings.Contains(body, "<b>hello") {
		t.Errorf("the page shows the body or an unescaped header:\n%s", excerpt(body))
	}

	// A message under a delivery attempt is shown as busy, not waited for.
	held, err := e.q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	code, body = e.get("/console/queue/" + id)
	e.want(code, body, http.StatusOK, "A delivery attempt holds this message now")
	code, body = e.get("/console/queue")
	e.want(code, body, http.StatusOK, "being delivered now")
	code, body = e.post("/console/queue/"+id, "action", "retry")
	e.want(code, body, http.StatusConflict, "busy")
	// Postpone it an hour, then "retry now" makes it due now.
	noErr(t, held.(store.QueueSchedule).Postpone(time.Now().Add(time.Hour), 2))
	held.Close()
	code, body = e.post("/console/queue/"+id, "action", "retry")
	e.want(code, body, http.StatusOK, "is due now")
	ent, err := e.q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	if next, n := ent.(store.QueueSchedule).NextAttempt(); next.After(time.Now()) || n != 2 {
		t.Errorf("after retry: next attempt %v (attempt %d), want now, attempt 2", next, n)
	}
	ent.Close()

	// Delete: two steps.
	code, body = e.post("/console/queue/"+id, "action", "delete")
	e.want(code, body, http.StatusOK, "Delete queued message "+id+"?", "a@example.com will not get this message.")
	if ids, _ := e.q.List(); len(ids) != 1 {
		t.Fatalf("the first step deleted: queue %v", ids)
	}
	tok := confirmTokenOf(t, body)
	code, body = e.post("/console/queue/"+id, "action", "delete", "confirm", tok)
	e.want(code, body, http.StatusOK, "Deleted queued message "+id+".", "The queue is empty.")
	code, body = e.get("/console/queue/" + id)
	e.want(code, body, http.StatusNotFound, "no such queue entry")
	code, body = e.get("/console/queue/..%2fetc")
	e.want(code, body, http.StatusNotFound, "invalid queue id")

	// Badmail: view, queue again, delete.
	toBad := func() string {
		id, err := e.q.Enqueue(envelope("s@x.test", "a@example.com", "b@example.com"), strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		ent, err := e.q.Lock(id)
		if err != nil {
			t.Fatal(err)
		}
		noErr(t, ent.Done(0, "00000000000000000000000001"))
		noErr(t, ent.Fail(1, "5.2.2", "mailbox full"))
		noErr(t, ent.ToBadmail("the report could not be sent"))
		ent.Close()
		return id
	}
	bad1, bad2 := toBad(), toBad()
	code, body = e.get("/console/queue")
	e.want(code, body, http.StatusOK, `href="/console/badmail/`+bad1+`"`, "the report could not be sent", "The queue is empty.")
	code, body = e.get("/console/badmail/" + bad1)
	e.want(code, body, http.StatusOK, "Recipient: &lt;b@example.com&gt; failed 5.2.2 mailbox full", "Subject: &lt;b&gt;hello", "Queue again")
	code, body = e.post("/console/badmail/"+bad1, "action", "retry")
	e.want(code, body, http.StatusOK, "Badmail message "+bad1+" is queued again as ")
	ids, _ := e.q.List()
	if len(ids) != 1 {
		t.Fatalf("queue after the retry: %v", ids)
	}
	ent, err = e.q.Lock(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if rc := ent.Envelope().Rcpts; len(rc) != 1 || rc[0] != "b@example.com" {
		t.Errorf("queued again for %v, want only b@example.com (a@example.com has its copy)", rc)
	}
	ent.Close()
	code, body = e.post("/console/badmail/"+bad2, "action", "delete")
	e.want(code, body, http.StatusOK, "Delete Badmail message "+bad2+"?")
	// The token of one message does not delete another.
	if _, err := e.q.BadmailReason(bad2); err != nil {
		t.Fatalf("the first step deleted: %v", err)
	}
	tok = confirmTokenOf(t, body)
	code, body = e.post("/console/queue/"+ids[0], "action", "delete", "confirm", tok)
	e.want(code, body, http.StatusOK, "Delete queued message "+ids[0]+"?")
	code, body = e.post("/console/badmail/"+bad2, "action", "delete", "confirm", tok)
	e.want(code, body, http.StatusOK, "Deleted Badmail message "+bad2+".", "Badmail is empty.")
	if q, b, _ := e.q.Depth(); q != 1 || b != 0 {
		t.Errorf("depth %d, %d; want 1 queued, Badmail empty", q, b)
	}

	// Every action needs the form token.
	for _, p := range []string{"/console/queue/" + ids[0], "/console/badmail/" + bad1} {
		code, _ := e.postRaw(p, url.Values{"action": {"delete"}, "confirm": {tok}}, nil)
		if code != http.StatusForbidden {
			t.Errorf("POST %s without the token: %d, want 403", p, code)
		}
	}
}

func TestConsoleQueuePaging(t *testing.T) {
	e := newConsoleEnv(t, "")
	for i := range ConsoleQueuePerPage + 3 {
		if _, err := e.q.Enqueue(envelope(fmt.Sprintf("s%d@x.test", i), "a@example.com"), strings.NewReader("Subject: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	code, body := e.get("/console/queue")
	e.want(code, body, http.StatusOK, fmt.Sprintf("1–%d of %d", ConsoleQueuePerPage, ConsoleQueuePerPage+3), `href="/console/queue?page=2"`)
	code, body = e.get("/console/queue?page=2")
	e.want(code, body, http.StatusOK, fmt.Sprintf("%d–%d of %d", ConsoleQueuePerPage+1, ConsoleQueuePerPage+3, ConsoleQueuePerPage+3))
	if n := strings.Count(body, `href="/console/queue/`); n != 3 {
		t.Errorf("page 2 lists %d messages, want 3", n)
	}
}

// TestConsoleOutboundQueue lists, shows, retries and deletes (in two
// steps) a message of the outbound queue beside one of the inbound queue;
// the queue is named by a query parameter checked against the known
// queues, and every action leaves an audit line.
func TestConsoleOutboundQueue(t *testing.T) {
	e := newConsoleEnv(t, "")
	const msg = "Subject: <i>out</i>\r\nFrom: alice@example.com\r\n\r\nthe body is not shown\r\n"
	in, err := e.q.Enqueue(envelope("s@x.test", "alice@example.com"), strings.NewReader("Subject: in\r\n\r\n"))
	noErr(t, err)
	out, err := e.oq.Enqueue(envelope("alice@example.com", "bob@remote.example", "carol@remote.example"), strings.NewReader(msg))
	noErr(t, err)

	code, body := e.get("/console/queue")
	e.want(code, body, http.StatusOK, `href="/console/queue/`+in+`"`, `id="outbound-list"`,
		`href="/console/queue/`+out+`?queue=outbound"`, "&lt;alice@example.com&gt;", "1 submitted message(s)")
	if strings.Contains(body, `href="/console/queue/`+out+`"`) {
		t.Error("the outbound message is linked as an inbound one")
	}

	// Its page: envelope and header, and a form that names the queue.
	code, body = e.get("/console/queue/" + out + "?queue=outbound")
	e.want(code, body, http.StatusOK, "Outbound message "+out, "bob@remote.example", "waiting", "Subject: &lt;i&gt;out&lt;/i&gt;",
		`action="/console/queue/`+out+`?queue=outbound"`, "Retry now", "Delete…")
	if strings.Contains(body, "the body is not shown") {
		t.Errorf("the page shows the body:\n%s", excerpt(body))
	}
	// Not in the inbound queue; an unknown queue name is refused, and is
	// never taken as a path.
	code, body = e.get("/console/queue/" + out)
	e.want(code, body, http.StatusNotFound, "no such queue entry")
	for _, name := range []string{"nosuch", "..", "../outbound", "/etc"} {
		code, body = e.get("/console/queue/" + out + "?queue=" + url.QueryEscape(name))
		e.want(code, body, http.StatusNotFound, "no such queue")
		code, body = e.post("/console/queue/"+out+"?queue="+url.QueryEscape(name), "action", "retry")
		e.want(code, body, http.StatusNotFound, "no such queue")
	}

	// Retry now makes a postponed message due now.
	ent, err := e.oq.Lock(out)
	noErr(t, err)
	noErr(t, ent.(store.QueueSchedule).Postpone(time.Now().Add(time.Hour), 3))
	ent.Close()
	code, body = e.post("/console/queue/"+out+"?queue=outbound", "action", "retry")
	e.want(code, body, http.StatusOK, "Outbound message "+out+" is due now")
	ent, err = e.oq.Lock(out)
	noErr(t, err)
	if next, n := ent.(store.QueueSchedule).NextAttempt(); next.After(time.Now()) || n != 3 {
		t.Errorf("after retry: next attempt %v (attempt %d), want now, attempt 3", next, n)
	}
	ent.Close()

	// Delete: the first step deletes nothing; a token for the inbound
	// message of the same id, or for another, does not delete it.
	code, body = e.post("/console/queue/"+out+"?queue=outbound", "action", "delete")
	e.want(code, body, http.StatusOK, "Delete outbound message "+out+"?", "bob@remote.example will not get this message.",
		`action="/console/queue/`+out+`?queue=outbound"`)
	tok := confirmTokenOf(t, body)
	if ids, _ := e.oq.List(); len(ids) != 1 {
		t.Fatalf("the first step deleted: outbound queue %v", ids)
	}
	code, body = e.post("/console/queue/"+in, "action", "delete")
	e.want(code, body, http.StatusOK, "Delete queued message "+in+"?")
	inTok := confirmTokenOf(t, body)
	code, body = e.post("/console/queue/"+out+"?queue=outbound", "action", "delete", "confirm", inTok)
	e.want(code, body, http.StatusOK, "Delete outbound message "+out+"?")
	if ids, _ := e.oq.List(); len(ids) != 1 {
		t.Fatalf("another message's token deleted: outbound queue %v", ids)
	}
	// The form token is needed as for every action.
	code, _ = e.postRaw("/console/queue/"+out+"?queue=outbound", url.Values{"action": {"delete"}, "confirm": {tok}}, nil)
	if code != http.StatusForbidden {
		t.Errorf("POST without the form token: %d, want 403", code)
	}
	code, body = e.post("/console/queue/"+out+"?queue=outbound", "action", "delete", "confirm", tok)
	e.want(code, body, http.StatusOK, "Deleted outbound message "+out+".", "The outbound queue is empty.", `href="/console/queue/`+in+`"`)
	if ids, _ := e.oq.List(); len(ids) != 0 {
		t.Errorf("outbound queue after the delete: %v", ids)
	}
	if ids, _ := e.q.List(); len(ids) != 1 || ids[0] != in {
		t.Errorf("inbound queue after the outbound delete: %v, want [%s]", ids, in)
	}
	code, body = e.get("/console/queue/" + out + "?queue=outbound")
	e.want(code, body, http.StatusNotFound, "no such queue entry")

	want := []map[string]string{
		{"action": "retry", "object": "outbound " + out, "old": "waiting", "new": "due now"},
		{"action": "delete", "object": "outbound " + out, "old": "queued"},
	}
	got := auditLines(e.logs.String())
	if len(got) != len(want) {
		t.Fatalf("%d audit lines, want %d:\n%s", len(got), len(want), e.logs.String())
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("audit line %d: %s = %q, want %q (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
}

// TestConsoleOutboundPaging: the outbound queue pages on its own, and
// the links of either list keep the other's page.
func TestConsoleOutboundPaging(t *testing.T) {
	e := newConsoleEnv(t, "")
	for i := range ConsoleQueuePerPage + 2 {
		if _, err := e.oq.Enqueue(envelope(fmt.Sprintf("s%d@example.com", i), "a@remote.example"), strings.NewReader("Subject: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	code, body := e.get("/console/queue")
	e.want(code, body, http.StatusOK, "The queue is empty.", fmt.Sprintf("1–%d of %d", ConsoleQueuePerPage, ConsoleQueuePerPage+2),
		`href="/console/queue?page=1&amp;opage=2#outbound"`)
	code, body = e.get("/console/queue?page=1&opage=2")
	e.want(code, body, http.StatusOK, fmt.Sprintf("%d–%d of %d", ConsoleQueuePerPage+1, ConsoleQueuePerPage+2, ConsoleQueuePerPage+2))
	if n := strings.Count(body, `?queue=outbound"`); n != 2 {
		t.Errorf("outbound page 2 lists %d messages, want 2", n)
	}
}

// plainStore hides the optional interfaces of the store it wraps: the
// console then lists a domain with ListMailboxes.
type plainStore struct{ store.Store }

func TestConsoleMailboxPagingAndSearch(t *testing.T) {
	t.Run("names listed alone", func(t *testing.T) { testMailboxPaging(t, false) })
	t.Run("with ListMailboxes", func(t *testing.T) { testMailboxPaging(t, true) })
}

func testMailboxPaging(t *testing.T, plain bool) {
	e := newConsoleEnv(t, "")
	if _, ok := e.st.(store.MailboxLister); !ok {
		t.Fatal("the file store lists no names alone")
	}
	if plain {
		e.c.opts.Store = plainStore{e.st}
	}
	ctx := context.Background()
	if err := e.st.CreateDomain(ctx, "big.example"); err != nil {
		t.Fatal(err)
	}
	const n = 250
	for i := range n {
		if err := e.st.CreateMailbox(ctx, store.Address{Mailbox: fmt.Sprintf("user%03d", i), Domain: "big.example"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	rowsOf := func(body string) []string {
		return regexp.MustCompile(`<td>(user\d+)@big\.example</td>`).FindAllString(body, -1)
	}
	code, body := e.get("/console/domains/big.example")
	e.want(code, body, http.StatusOK, "250 in all", "1–100 of 250 · page 1 of 3", `href="/console/domains/big.example?page=2"`)
	if r := rowsOf(body); len(r) != 100 || !strings.Contains(r[0], "user000") {
		t.Errorf("page 1 lists %d mailboxes from %v", len(r), r[:min(1, len(r))])
	}
	code, body = e.get("/console/domains/big.example?page=3")
	e.want(code, body, http.StatusOK, "201–250 of 250 · page 3 of 3", `rel="prev"`)
	if r := rowsOf(body); len(r) != 50 || !strings.Contains(r[49], "user249") {
		t.Errorf("page 3 lists %d mailboxes", len(r))
	}
	code, body = e.get("/console/domains/big.example?page=99")
	e.want(code, body, http.StatusOK, "page 3 of 3")

	code, body = e.get("/console/domains/big.example?q=USER01")
	e.want(code, body, http.StatusOK, "10 matching “USER01”", "show all")
	if r := rowsOf(body); len(r) != 10 || !strings.Contains(r[0], "user010") || !strings.Contains(r[9], "user019") {
		t.Errorf("search lists %v", r)
	}
	code, body = e.get("/console/domains/big.example?q=" + url.QueryEscape("<script>"))
	e.want(code, body, http.StatusOK, "No mailbox of big.example matches “&lt;script&gt;”")
	if strings.Contains(body, "<script>") {
		t.Error("the search is echoed unescaped")
	}

	// An action on page 2 of a search comes back to that page.
	// ("1" is in 133 of the names: user1xx, 19 of user0xx, 14 of user2xx.)
	code, body = e.post("/console/domains/big.example", "action", "lock", "mailbox", "user241", "q", "1", "page", "2")
	e.want(code, body, http.StatusOK, "Locked mailbox user241@big.example.", "133 matching “1”", "101–133 of 133 · page 2 of 2")
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
