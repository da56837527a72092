package console

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/memstore"
)

// browser runs headless Chromium against one console server.
type browser struct {
	t   *testing.T
	bin string
	url string // the server's base URL
	out string // where screenshots go
}

func newBrowser(t *testing.T, h http.Handler) *browser {
	t.Helper()
	bin := pop3dtest.NeedTool(t, "chromium")
	srv := httptest.NewServer(h) // loopback
	t.Cleanup(srv.Close)
	out := os.Getenv("CONSOLE_SCREENSHOTS")
	if out == "" {
		out = t.TempDir()
	}
	return &browser{t: t, bin: bin, url: srv.URL, out: out}
}

// run runs Chromium with args and returns its standard output.
func (b *browser) run(args ...string) []byte {
	b.t.Helper()
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// As root (CI containers) Chromium runs only without its sandbox.
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + b.t.TempDir(), "--window-size=1280,900"}
	cmd := exec.CommandContext(cctx, b.bin, append(base, args...)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// load returns the page as the browser built it. budget, when not zero,
// is the virtual time the page's scripts run before the DOM is dumped
// (Chromium's virtual time: timers and fetches complete in order, without
// waiting in real time).
func (b *browser) load(path string, budget time.Duration, token string) *html.Node {
	b.t.Helper()
	args := []string{"--dump-dom"}
	if budget > 0 {
		args = append(args, fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()))
	}
	dom := b.run(append(args, b.url+path)...)
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		b.t.Fatalf("%s: the browser's DOM does not parse: %v", path, err)
	}
	if title := textOf(first(doc, atom.Title)); !strings.HasSuffix(title, "POP3 Service console") {
		b.t.Errorf("%s: title %q", path, title)
	}
	// Every form that changes something carries the token.
	for _, f := range all(doc, atom.Form) {
		if attr(f, "method") != "post" {
			continue
		}
		if got := hiddenValue(f, "csrf"); got != token {
			b.t.Errorf("%s: form %s has csrf %q, want the console's token", path, attr(f, "action"), got)
		}
	}
	return doc
}

// screenshot keeps a picture of the page, for a person to look at.
func (b *browser) screenshot(name, path string, height int) {
	b.t.Helper()
	png := filepath.Join(b.out, "console-"+name+".png")
	b.run(fmt.Sprintf("--window-size=1280,%d", height), "--virtual-time-budget=1000", "--screenshot="+png, b.url+path)
	data, err := os.ReadFile(png)
	if err != nil || len(data) < 1000 || !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		b.t.Errorf("%s: screenshot of %d bytes, err %v", path, len(data), err)
	}
}

// TestConsoleInBrowser loads the console's pages in headless Chromium and
// checks what a person would see: the page as the browser built it
// (--dump-dom) shows the status counters, counters and charts that change
// without a reload, the grouped settings, the domain and mailbox lists
// with their numbers, the queue and Badmail, and every form carries the
// anti-CSRF token. It keeps a screenshot of each page as well; set
// CONSOLE_SCREENSHOTS=DIR to keep them after the test.
func TestConsoleInBrowser(t *testing.T) {
	e := newConsoleEnv(t, "")
	ctx := context.Background()
	if err := e.st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateDomain(ctx, "locked.example"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.LockDomain(ctx, "locked.example"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"alice", "bob"} {
		a := store.Address{Mailbox: m, Domain: "example.com"}
		if err := e.st.CreateMailbox(ctx, a, "pw"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Deliver(ctx, a, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.SetQuota(ctx, store.Address{Mailbox: "alice", Domain: "example.com"}, 50<<20); err != nil {
		t.Fatal(err)
	}
	// Fifty minutes of history, then the first sample of this test.
	const seeded = 300
	base := seedHistory(&e.c.hist, seeded)
	atPage := Counters{Connections: 3, LoggedIn: 2, LoginsOK: base.LoginsOK + 16, LoginsFailed: base.LoginsFailed + 1,
		Retrieved: base.Retrieved + 40, Deliveries: base.Deliveries + 5}
	later := Counters{Connections: 5, LoggedIn: 4, LoginsOK: atPage.LoginsOK + 7, LoginsFailed: atPage.LoginsFailed + 3,
		Retrieved: atPage.Retrieved + 1, Deliveries: atPage.Deliveries + 1}
	e.setCounters(atPage)
	e.c.Sample()

	// Once the server page has been served, the service moves on: more
	// logins, a message queued, a new sample for the charts. Only the
	// page's own polling can bring that into the open page.
	var served atomic.Int32
	var servedPage atomic.Value
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/confirm-example" {
			// The first step of a mailbox deletion, which only a POST
			// reaches, for its picture.
			info, err := e.st.Mailbox(r.Context(), store.Address{Mailbox: "alice", Domain: "example.com"})
			if err != nil {
				t.Error(err)
			}
			e.c.render(w, http.StatusOK, "confirm", e.c.confirmPage("Delete mailbox alice@example.com?",
				[]string{fmt.Sprintf("Its %d message(s), %s, are deleted with it.", info.Messages, sizeText(info.Bytes)),
					"Mail sent to alice@example.com afterwards is refused."},
				"/console/domains/example.com", "/console/domains/example.com", "mailbox alice@example.com", []field{{"mailbox", "alice"}}))
			return
		}
		if r.URL.Path != "/console/" || served.Load() > 0 {
			e.h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		servedPage.Store(rec.Body.String())
		served.Add(1)
		e.setCounters(later)
		if _, err := e.q.Enqueue(envelope("sender@remote.example", "alice@example.com"), strings.NewReader("Subject: queued <now>\r\nFrom: sender@remote.example\r\n\r\nbody\r\n")); err != nil {
			t.Error(err)
		}
		e.c.Sample()
	})
	b := newBrowser(t, h)

	t.Run("server", func(t *testing.T) {
		doc := b.load("/console/", 3*time.Second, e.c.token)
		if p, _ := servedPage.Load().(string); !strings.Contains(p, fmt.Sprintf(`data-live="logins_ok">%d<`, atPage.LoginsOK)) {
			t.Fatalf("the page was not served with the first counters")
		}
		live := map[string]string{}
		for d := range doc.Descendants() {
			if d.Type == html.ElementNode && attr(d, "data-live") != "" {
				live[attr(d, "data-live")] = textOf(d)
			}
		}
		// Changed after the page was served: the page polled them in.
		u := func(n uint64) string { return strconv.FormatUint(n, 10) }
		for k, want := range map[string]string{"connections": "5", "logged_in": "4", "logins_ok": u(later.LoginsOK), "logins_failed": u(later.LoginsFailed),
			"retrieved": u(later.Retrieved), "deliveries": u(later.Deliveries), "queued": "1", "badmail": "0", "last-logins-0": "7", "last-logins-1": "3"} {
			if live[k] != want {
				t.Errorf("live counter %s shows %q, want %q (all: %q)", k, live[k], want, live)
			}
		}
		body := first(doc, atom.Body)
		if n, _ := strconv.Atoi(attr(body, "data-polls")); n < 1 || attr(body, "data-live-error") != "" {
			t.Errorf("body data-polls=%q data-live-error=%q: the page did not poll live.json", attr(body, "data-polls"), attr(body, "data-live-error"))
		}
		// The charts: five SVGs; the logins chart now has both samples.
		charts := map[string]*html.Node{}
		for d := range doc.Descendants() {
			if d.Type == html.ElementNode && d.Data == "svg" {
				charts[attr(d, "id")] = d
			}
		}
		for _, id := range []string{"chart-sessions", "chart-logins", "chart-retrieved", "chart-deliveries", "chart-queue"} {
			if charts[id] == nil {
				t.Errorf("no chart %s", id)
			}
		}
		if c := charts["chart-logins"]; c != nil {
			var lines []string
			for d := range c.Descendants() {
				if d.Type == html.ElementNode && d.Data == "polyline" {
					lines = append(lines, attr(d, "points"))
				}
			}
			if len(lines) != 2 || len(strings.Fields(lines[0])) != seeded+2 || !strings.HasPrefix(strings.Fields(lines[0])[seeded+1], "360.0,") {
				t.Errorf("logins chart lines %.200q, want ok and failed with %d points each, the newest at x=360", lines, seeded+2)
			}
		}
		kv := map[string]string{}
		for _, tb := range all(doc, atom.Table) {
			if attr(tb, "class") == "kv" {
				for _, r := range rows(tb) {
					if len(r) == 2 {
						kv[r[0]] = r[1]
					}
				}
			}
		}
		if kv["Process uptime"] == "" || kv["Queue (waiting for delivery)"] != "1" || kv["Badmail"] != "0" {
			t.Errorf("status table %q", kv)
		}
		// Settings: grouped, each with its value, live/restart mark and
		// description.
		settings := map[string][]string{}
		groups := 0
		for _, tb := range all(doc, atom.Table) {
			if attr(tb, "class") == "list settings" {
				groups++
				for _, r := range rows(tb)[1:] {
					settings[r[0]] = r
				}
			}
		}
		tables := map[string]bool{}
		for _, k := range config.Keys() {
			table, _, ok := strings.Cut(k, ".")
			if !ok {
				table = "" // the top level
			}
			tables[table] = true
		}
		if groups != len(tables) || len(settings) < len(config.Keys()) {
			t.Fatalf("%d settings groups with %d settings, want %d groups with %d settings", groups, len(settings), len(tables), len(config.Keys()))
		}
		for k, want := range map[string][]string{
			"logging":     {"logging", "3", "live"},
			"pop3.listen": {"pop3.listen", "", "restart"},
		} {
			r := settings[k]
			if len(r) < 4 || want[1] != "" && r[1] != want[1] || r[2] != want[2] || len(r[3]) < 10 {
				t.Errorf("setting row %s = %q, want value %q, mark %q and a description", k, r, want[1], want[2])
			}
		}
		var options []string
		for _, o := range all(doc, atom.Option) {
			options = append(options, attr(o, "value"))
		}
		for k := range settings {
			if !contains(options, k) {
				t.Errorf("setting %q is listed but cannot be chosen in the form", k)
			}
		}
	})

	t.Run("domains", func(t *testing.T) {
		doc := b.load("/console/domains", 0, e.c.token)
		got := map[string][]string{}
		for _, r := range listRows(doc) {
			got[r[0]] = r
		}
		want := map[string][]string{
			// Domain, Mailboxes, Messages, (Size), State
			"example.com":    {"example.com", "2", "2", "", "unlocked"},
			"locked.example": {"locked.example", "0", "0", "", "locked"},
		}
		for d, w := range want {
			r := got[d]
			if len(r) < 5 || r[1] != w[1] || r[2] != w[2] || r[4] != w[4] {
				t.Errorf("domain row %q = %q, want mailboxes %s, messages %s, %s", d, r, w[1], w[2], w[4])
			}
		}
		if len(got) != len(want) {
			t.Errorf("domain rows %q, want %d", got, len(want))
		}
	})

	t.Run("mailboxes", func(t *testing.T) {
		doc := b.load("/console/domains/example.com", 0, e.c.token)
		got := map[string][]string{}
		for _, r := range listRows(doc) {
			got[r[0]] = r
		}
		for _, m := range []string{"alice@example.com", "bob@example.com"} {
			// Mailbox, Messages, Size, Quota, In use, Locked, Password
			r := got[m]
			if len(r) < 7 || r[1] != "1" || r[4] != "no" || r[5] != "no" || r[6] != "yes" {
				t.Errorf("mailbox row %q = %q, want 1 message, not in use, not locked, with a password", m, r)
			}
		}
		if r := got["alice@example.com"]; len(r) < 4 || !strings.Contains(r[3], "50") {
			t.Errorf("alice's quota shows %q, want 50 MB", r)
		}
		if len(got) != 2 {
			t.Errorf("mailbox rows %q, want 2", got)
		}
	})

	// A Badmail message beside the queued one.
	bad, err := e.q.Enqueue(envelope("s@x.test", "bob@example.com"), strings.NewReader("Subject: undeliverable\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ent, err := e.q.Lock(bad)
	if err != nil {
		t.Fatal(err)
	}
	noErr(t, ent.Fail(0, "5.2.2", "mailbox full"))
	noErr(t, ent.ToBadmail("the report could not be sent: relay refused"))
	ent.Close()
	// And a submitted message in the outbound queue.
	out, err := e.oq.Enqueue(envelope("alice@example.com", "dave@remote.example", "erin@remote.example"), strings.NewReader("Subject: outbound\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}

	var queued string
	t.Run("queue", func(t *testing.T) {
		doc := b.load("/console/queue", 0, e.c.token)
		var q, bm, oq [][]string
		var outLink string
		for _, tb := range all(doc, atom.Table) {
			switch attr(tb, "id") {
			case "queue":
				q = rows(tb)[1:]
			case "badmail-list":
				bm = rows(tb)[1:]
			case "outbound-list":
				oq = rows(tb)[1:]
				if as := all(tb, atom.A); len(as) > 0 {
					outLink = attr(as[0], "href")
				}
			}
		}
		if len(oq) != 1 || len(oq[0]) != 7 || oq[0][0] != out || oq[0][2] != "<alice@example.com>" || oq[0][3] != "2" || oq[0][4] != "2" {
			t.Errorf("outbound rows %q, want %s from <alice@example.com> to 2", oq, out)
		}
		if outLink != "/console/queue/"+out+"?queue=outbound" {
			t.Errorf("outbound link %q", outLink)
		}
		// Id, Received, From, Recipients, Waiting, Size, Next attempt
		if len(q) != 1 || len(q[0]) != 7 || q[0][2] != "<sender@remote.example>" || q[0][3] != "1" || q[0][4] != "1" {
			t.Fatalf("queue rows %q", q)
		}
		queued = q[0][0]
		if len(bm) != 1 || bm[0][0] != bad || !strings.Contains(bm[0][1], "relay refused") {
			t.Errorf("Badmail rows %q, want %s", bm, bad)
		}
	})

	t.Run("message", func(t *testing.T) {
		doc := b.load("/console/queue/"+queued, 0, e.c.token)
		var header string
		for d := range doc.Descendants() {
			if d.Type == html.ElementNode && attr(d, "id") == "header" {
				header = textOf(d)
			}
		}
		if !strings.Contains(header, "Subject: queued <now>") || strings.Contains(header, "body") {
			t.Errorf("header shown: %q", header)
		}
		var buttons []string
		for _, bt := range all(doc, atom.Button) {
			buttons = append(buttons, textOf(bt))
		}
		if !contains(buttons, "Retry now") || !contains(buttons, "Delete…") {
			t.Errorf("buttons %q", buttons)
		}
	})

	// The pictures, for a person to look at.
	for _, p := range []struct {
		name, path string
		height     int
	}{
		{"server", "/console/", 2400}, {"domains", "/console/domains", 700}, {"mailboxes", "/console/domains/example.com", 700},
		{"queue", "/console/queue", 700}, {"message", "/console/queue/" + queued, 900}, {"badmail", "/console/badmail/" + bad, 900},
		{"confirm", "/confirm-example", 500},
	} {
		b.screenshot(p.name, p.path, p.height)
	}
}

// seedHistory records n samples of made-up traffic, ten seconds apart and
// ending now, and returns the counters of the last.
func seedHistory(h *history, n int) Counters {
	var c Counters
	t0 := time.Now().Add(-time.Duration(n) * HistoryInterval)
	for i := range n {
		x := float64(i)
		c.Connections = int64(20 + 15*math.Sin(x/20))
		c.LoggedIn = c.Connections * 3 / 5
		c.LoginsOK += uint64(5 + i%7)
		if i%13 == 0 {
			c.LoginsFailed += 4
		} else if i%3 == 0 {
			c.LoginsFailed++
		}
		c.Retrieved += uint64(10 + i%11)
		c.Deliveries += uint64(3 + i%5)
		h.record(t0.Add(time.Duration(i)*HistoryInterval), c, (i/30)%4, i/150)
	}
	return c
}

// TestConsoleTenThousandMailboxesInBrowser renders a domain of 10,000
// mailboxes in Chromium: the page lists the first 100 with the paging,
// and a search narrows the list. It logs the page's weight and the time
// to serve and render it. The mailboxes are in memory (store/memstore),
// as making 10,000 on disk takes minutes; CONSOLE_BIG_FILESTORE=1 makes
// them in the file store, to measure that.
func TestConsoleTenThousandMailboxesInBrowser(t *testing.T) {
	const n = 10000
	e := newConsoleEnv(t, "")
	if os.Getenv("CONSOLE_BIG_FILESTORE") == "" {
		mem, err := memstore.New(memstore.Options{Node: 1})
		if err != nil {
			t.Fatal(err)
		}
		e.st, e.c.opts.Store = mem, mem
	}
	ctx := context.Background()
	if err := e.st.CreateDomain(ctx, "big.example"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := e.st.CreateMailbox(ctx, store.Address{Mailbox: fmt.Sprintf("user%05d", i), Domain: "big.example"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	// /measure (a test page, outside the console) times in the browser
	// how long the page takes to fetch, parse, style and lay out: it reads
	// the page with a synchronous request, puts its body into the
	// document beside the console's style sheet and forces a layout.
	mux := http.NewServeMux()
	mux.Handle("/console/", e.h)
	mux.HandleFunc("/measure", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>measure · POP3 Service console</title><link rel="stylesheet" href="/console/style.css"></head><body><div id="page"></div><script>
var t0 = performance.now();
var x = new XMLHttpRequest(); x.open("GET", %q, false); x.send();
var doc = new DOMParser().parseFromString(x.responseText, "text/html");
var div = document.getElementById("page"); div.replaceChildren(...doc.body.childNodes);
var h = div.offsetHeight;
document.body.dataset.ms = (performance.now() - t0).toFixed(1);
document.body.dataset.rows = div.querySelectorAll("table.list tbody tr").length;
</script></body></html>`, r.FormValue("path"))
	})
	b := newBrowser(t, mux)

	start := time.Now()
	code, page := e.get("/console/domains/big.example")
	served := time.Since(start)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	start = time.Now()
	doc := b.load("/console/domains/big.example", 0, e.c.token)
	rendered := time.Since(start)
	if r := listRows(doc); len(r) != ConsoleMailboxesPerPage || r[0][0] != "user00000@big.example" {
		t.Fatalf("first page: %d rows from %q", len(r), r[:min(1, len(r))])
	}
	if txt := textOf(first(doc, atom.Main)); !strings.Contains(txt, "1–100 of 10000 · page 1 of 100") {
		t.Errorf("no paging shown: %.300s", txt)
	}
	// The same for an empty domain: what Chromium's start and a page
	// without rows take.
	if err := e.st.CreateDomain(ctx, "empty.example"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	b.load("/console/domains/empty.example", 0, e.c.token)
	baseline := time.Since(start)
	doc = b.load("/measure?path="+url.QueryEscape("/console/domains/big.example"), 0, e.c.token)
	inPage := attr(first(doc, atom.Body), "data-ms")
	if rows := attr(first(doc, atom.Body), "data-rows"); rows != strconv.Itoa(ConsoleMailboxesPerPage) {
		t.Errorf("the measured page has %s rows, want %d", rows, ConsoleMailboxesPerPage)
	}
	css, _ := consoleFS.ReadFile("pages/style.css")
	t.Logf("domain of %d mailboxes in %T: page %d octets + style.css %d octets; served in %v (console alone); fetched, parsed and laid out in Chromium in %s ms; Chromium run with --dump-dom %v, an empty domain's page %v (Chromium's start included in both)",
		n, e.st, len(page), len(css), served.Round(time.Millisecond), inPage, rendered.Round(time.Millisecond), baseline.Round(time.Millisecond))

	doc = b.load("/console/domains/big.example?q=user0999&page=1", 0, e.c.token)
	if r := listRows(doc); len(r) != 10 || r[0][0] != "user09990@big.example" || r[9][0] != "user09999@big.example" {
		t.Errorf("search: %d rows %q", len(r), r)
	}
	doc = b.load("/console/domains/big.example?page=100", 0, e.c.token)
	if r := listRows(doc); len(r) != 100 || r[99][0] != "user09999@big.example" {
		t.Errorf("last page: %d rows", len(r))
	}
	b.screenshot("mailboxes-10000", "/console/domains/big.example?page=42", 1100)
}

// all returns the elements a under n, in document order.
func all(n *html.Node, a atom.Atom) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && d.DataAtom == a {
			out = append(out, d)
		}
	}
	return out
}

func first(n *html.Node, a atom.Atom) *html.Node {
	if l := all(n, a); len(l) > 0 {
		return l[0]
	}
	return nil
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// textOf is the text a person reads in n, spaces collapsed.
func textOf(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
			b.WriteByte(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// rows returns the text of each cell, row by row.
func rows(table *html.Node) [][]string {
	var out [][]string
	for _, tr := range all(table, atom.Tr) {
		var r []string
		for c := tr.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && (c.DataAtom == atom.Td || c.DataAtom == atom.Th) {
				r = append(r, textOf(c))
			}
		}
		out = append(out, r)
	}
	return out
}

// listRows returns the body rows of the page's list tables.
func listRows(doc *html.Node) [][]string {
	var out [][]string
	for _, tb := range all(doc, atom.Table) {
		if attr(tb, "class") != "list" {
			continue
		}
		for _, body := range all(tb, atom.Tbody) {
			out = append(out, rows(body)...)
		}
	}
	return out
}

// hiddenValue is the value of the hidden input called name in form f.
func hiddenValue(f *html.Node, name string) string {
	for _, in := range all(f, atom.Input) {
		if attr(in, "type") == "hidden" && attr(in, "name") == name {
			return attr(in, "value")
		}
	}
	return ""
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
