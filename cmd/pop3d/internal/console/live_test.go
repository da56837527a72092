package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestHistoryKeepsTheLastHour(t *testing.T) {
	var h history
	t0 := time.Unix(1e9, 0)
	for i := range HistoryLen + 5 {
		h.record(t0.Add(time.Duration(i)*HistoryInterval), Counters{Connections: int64(i), LoginsOK: uint64(3 * i)}, i, 0)
	}
	s := h.samples()
	if len(s) != HistoryLen {
		t.Fatalf("%d samples kept, want %d", len(s), HistoryLen)
	}
	if s[0].connections != 5 || s[len(s)-1].connections != int64(HistoryLen+4) {
		t.Errorf("samples run from %d to %d, want 5 to %d", s[0].connections, s[len(s)-1].connections, HistoryLen+4)
	}
	for i, x := range s {
		if x.loginsOK != 3 {
			t.Fatalf("sample %d: %d logins, want the increase 3", i, x.loginsOK)
		}
		if i > 0 && !x.at.After(s[i-1].at) {
			t.Fatalf("sample %d is not newer than the one before", i)
		}
	}
	// The very first sample counts no increase: there is nothing before it.
	var f history
	f.record(t0, Counters{LoginsOK: 40}, 0, 0)
	if s := f.samples(); len(s) != 1 || s[0].loginsOK != 0 {
		t.Errorf("first sample %+v, want no increase", s)
	}
}

func TestLiveJSONAndCharts(t *testing.T) {
	e := newConsoleEnv(t, "")
	e.setCounters(Counters{Connections: 2, LoggedIn: 1, LoginsOK: 10, LoginsFailed: 1, Retrieved: 5, Deliveries: 7})
	e.c.Sample()
	e.setCounters(Counters{Connections: 4, LoggedIn: 3, LoginsOK: 16, LoginsFailed: 3, Retrieved: 9, Deliveries: 8})
	if _, err := e.q.Enqueue(envelope("s@x.test", "a@example.com"), strings.NewReader("Subject: q\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.oq.Enqueue(envelope("a@example.com", "r@remote.example"), strings.NewReader("Subject: o\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	e.c.Sample()

	code, body := e.get("/console/live.json")
	if code != http.StatusOK {
		t.Fatalf("live.json: %d %s", code, body)
	}
	var l live
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("live.json: %v\n%s", err, body)
	}
	if l.Connections != 4 || l.LoggedIn != 3 || l.LoginsOK != 16 || l.LoginsFailed != 3 || l.Retrieved != 9 || l.Deliveries != 8 || l.Queued != 1 || l.Badmail != 0 || l.Outbound != 2 {
		t.Errorf("live.json counters %+v", l)
	}
	charts := map[string]chart{}
	for _, c := range l.Charts {
		charts[c.ID] = c
	}
	want := map[string][]float64{ // the newest value of each line
		"sessions":   {4, 3},
		"logins":     {6, 2},
		"retrieved":  {4},
		"deliveries": {1},
		"queue":      {1, 0},
	}
	for id, last := range want {
		c, ok := charts[id]
		if !ok || len(c.Lines) != len(last) {
			t.Errorf("chart %s: %+v", id, c)
			continue
		}
		for i, v := range last {
			if c.Lines[i].Last != v {
				t.Errorf("chart %s line %s: newest %v, want %v", id, c.Lines[i].Name, c.Lines[i].Last, v)
			}
			if n := len(strings.Fields(c.Lines[i].Points)); n != 2 {
				t.Errorf("chart %s line %s: %d points, want 2: %q", id, c.Lines[i].Name, n, c.Lines[i].Points)
			}
		}
	}
	// The newest point is at the right edge, scaled to the chart's top.
	if c := charts["sessions"]; c.Max != 5 || !strings.HasSuffix(c.Lines[0].Points, "360.0,18.0") {
		t.Errorf("sessions chart: top %v, points %q; want top 5 and the newest point at 360,18", c.Max, c.Lines[0].Points)
	}

	// The server page shows the same numbers, the charts as SVG, and the
	// script that refreshes them, allowed by this response's nonce only.
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/", nil))
	page := rec.Body.String()
	csp := rec.Header().Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([^']+)'`).FindStringSubmatch(csp)
	if m == nil || !strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("CSP %q allows no nonce script or no fetch of live.json", csp)
	}
	e.want(rec.Code, page, http.StatusOK, `<script nonce="`+m[1]+`">`, `data-poll-ms="300"`,
		`data-live="logins_ok">16<`, `data-live="queued">1<`, `data-live="outbound">2<`, `<svg id="chart-sessions"`, `<svg id="chart-queue"`,
		`data-line="1" points="`)
	if strings.Count(page, "<script") != 1 {
		t.Errorf("the page has %d scripts, want the one inline script", strings.Count(page, "<script"))
	}
	// Another response has another nonce.
	rec2 := httptest.NewRecorder()
	e.h.ServeHTTP(rec2, httptest.NewRequest(http.MethodGet, "/console/", nil))
	if rec2.Header().Get("Content-Security-Policy") == csp {
		t.Error("two responses share a script nonce")
	}
	// Pages without live parts carry no script.
	if _, body := e.get("/console/domains"); strings.Contains(body, "<script") {
		t.Error("the domains page carries a script")
	}
}

func TestSettingsGroupedWithDescriptions(t *testing.T) {
	e := newConsoleEnv(t, "")
	code, body := e.get("/console/")
	e.want(code, body, http.StatusOK,
		`<h3 id="settings-general">General</h3>`, `<h3 id="settings-auth">Authentication</h3>`, `<h3 id="settings-ldap">Directory (LDAP)</h3>`,
		`<td class="desc">POP3 sessions served at once.</td>`,
		`<span class="mark live">live</span>`,
		`<span class="mark restart" title="listening sockets are bound at start">restart</span>`)
	// Every setting is in exactly one group.
	var n int
	for _, g := range groupSettings(e.c.serverView("").Settings) {
		for _, s := range g.Settings {
			n++
			if s.Description == "" {
				t.Errorf("%s has no description", s.Key)
			}
			table, _, ok := strings.Cut(s.Key, ".")
			if ok && g.ID != "settings-"+table || !ok && g.ID != "settings-general" {
				t.Errorf("%s is in group %s", s.Key, g.ID)
			}
		}
	}
	if want := len(e.c.serverView("").Settings); n != want || n < 90 {
		t.Errorf("%d settings in the groups, want %d", n, want)
	}
}
