package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// exposition is one scrape of /metrics: the sample lines by series name
// (name before labels) and the HELP and TYPE lines by family.
type exposition struct {
	samples map[string][]string // series name -> label sets, as written
	help    map[string]string
	typ     map[string]string
	text    string
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? \S+$`)

func parseExposition(t *testing.T, text string) exposition {
	t.Helper()
	e := exposition{samples: map[string][]string{}, help: map[string]string{}, typ: map[string]string{}, text: text}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(l, "# HELP "); ok {
			fam, h, _ := strings.Cut(rest, " ")
			e.help[fam] = h
			continue
		}
		if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
			fam, typ, _ := strings.Cut(rest, " ")
			e.typ[fam] = typ
			continue
		}
		m := sampleLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("/metrics line not in the text format: %q", l)
		}
		e.samples[m[1]] = append(e.samples[m[1]], m[2])
	}
	return e
}

// family returns the family a series belongs to: itself, or with a
// histogram's or summary's suffix removed when that names a typed family.
func (e exposition) family(name string) string {
	if _, ok := e.typ[name]; ok {
		return name
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(name, suf); ok {
			if _, ok := e.typ[f]; ok {
				return f
			}
		}
	}
	return name
}

// scrapeBusyPop3d starts pop3d, delivers a message by SMTP, logs in,
// tops and retrieves a message (so the series made on first use exist),
// then scrapes /metrics.
func scrapeBusyPop3d(t *testing.T) exposition {
	t.Helper()
	_, e := busyPop3d(t)
	return e
}

// busyPop3d is scrapeBusyPop3d that also returns the server, with the
// session still logged in.
func busyPop3d(t *testing.T) (*pop3dtest.Server, exposition) {
	t.Helper()
	in := startPop3d(t, "", "", mailbox(2, 500))
	sendPlainSMTP(t, in.SMTP[0], "bob@example.org", testAddr.String(), testMessage(3, 300))
	cl := http.Client{Timeout: 30 * time.Second}
	scrape := func() exposition {
		resp, err := cl.Get("http://" + in.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
		}
		return parseExposition(t, string(b))
	}
	pop3dtest.WaitFor(t, 30*time.Second, "the message sent by SMTP to be delivered", func() bool {
		return scrape().samples["smtp_delivery_latency_seconds_count"] != nil
	})
	c := pop3dtest.Dial(t, in.POP3, "")
	c.Cmd("USER nobody@example.org")
	c.Cmd("PASS wrong")
	c.Cmd("USER " + testAddr.String())
	if r := c.Cmd("PASS " + testPassword); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login: %s", r)
	}
	if r := c.Cmd("TOP 1 0"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("TOP: %s", r)
	}
	c.Multi()
	if r := c.Cmd("RETR 2"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("RETR: %s", r)
	}
	c.Multi()
	return in, scrape()
}

func TestMetricsHelpAndType(t *testing.T) {
	e := scrapeBusyPop3d(t)
	if len(e.samples) < 50 {
		t.Fatalf("only %d series names on /metrics:\n%.2000s", len(e.samples), e.text)
	}
	for name := range e.samples {
		fam := e.family(name)
		h, ok := e.help[fam]
		if !ok || strings.TrimSpace(h) == "" || h == "undocumented" {
			t.Errorf("series %s (family %s) has no HELP text (%q)", name, fam, h)
		}
		switch e.typ[fam] {
		case "counter", "gauge", "histogram", "summary":
		default:
			t.Errorf("series %s (family %s) has no TYPE (%q)", name, fam, e.typ[fam])
		}
	}
	// Label values are listed in the help text.
	labelValue := regexp.MustCompile(`([a-z_]+)="([^"]*)"`)
	for name, sets := range e.samples {
		fam := e.family(name)
		if !strings.HasPrefix(fam, "pop3_") && !strings.HasPrefix(fam, "smtp_") && !strings.HasPrefix(fam, "store_") {
			continue
		}
		for _, set := range sets {
			for _, m := range labelValue.FindAllStringSubmatch(set, -1) {
				if m[1] == "vmrange" || m[1] == "le" || m[1] == "quantile" {
					continue
				}
				if !strings.Contains(e.help[fam], m[1]) || !strings.Contains(e.help[fam], m[2]) {
					t.Errorf("%s%s: the help text does not list label %s value %q: %s", name, set, m[1], m[2], e.help[fam])
				}
			}
		}
	}
	// The series the issue asked for.
	for _, want := range []string{`pop3_sessions_logged_in`, `pop3_messages_top_total`} {
		if e.samples[want] == nil {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^pop3_sessions_logged_in 1$`).MatchString(e.text) {
		t.Errorf("pop3_sessions_logged_in is not 1 with one session logged in:\n%s", grepLines(e.text, "pop3_sessions_logged_in"))
	}
	if !regexp.MustCompile(`(?m)^pop3_messages_top_total 1$`).MatchString(e.text) {
		t.Errorf("pop3_messages_top_total is not 1 after one TOP:\n%s", grepLines(e.text, "pop3_messages_top_total"))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// dashboardFile is the Grafana dashboard shipped for pop3d.
const dashboardFile = "grafana/pop3d.json"

func TestGrafanaDashboardNamesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	e := scrapeBusyPop3d(t)
	// A metric name in an expression: an identifier not followed by "("
	// (a function) and not inside a label matcher or a by/without list.
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	matcher := regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	pair := regexp.MustCompile(`([a-z_]+)="([^"]*)"`)
	exprs := 0
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no expression", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			names := 0
			stripped := regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]|(by|without) \([^)]*\)|"[^"]*"`).ReplaceAllString(tg.Expr, " ")
			for _, loc := range ident.FindAllStringIndex(stripped, -1) {
				id := stripped[loc[0]:loc[1]]
				rest := strings.TrimLeft(stripped[loc[1]:], " ")
				if strings.HasPrefix(rest, "(") || promqlWords[id] {
					continue
				}
				names++
				if e.samples[id] == nil {
					t.Errorf("panel %q: %s names %s, which pop3d does not export", p.Title, tg.Expr, id)
				}
			}
			if names == 0 {
				t.Errorf("panel %q: %s names no metric", p.Title, tg.Expr)
			}
			// A label matcher must match a series pop3d exports.
			for _, m := range matcher.FindAllStringSubmatch(tg.Expr, -1) {
				for _, kv := range pair.FindAllStringSubmatch(m[2], -1) {
					found := false
					for _, set := range e.samples[m[1]] {
						if strings.Contains(set, kv[0]) {
							found = true
						}
					}
					if !found {
						t.Errorf("panel %q: no series %s with %s", p.Title, m[1], kv[0])
					}
				}
			}
		}
	}
	if exprs < 20 {
		t.Errorf("the dashboard has %d expressions; expected the 20 panels' worth", exprs)
	}
}

// promqlWords are the PromQL keywords that are not metric names.
var promqlWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true}

// sendPlainSMTP sends one message over SMTP without STARTTLS.
func sendPlainSMTP(t *testing.T, addr, from, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatalf("RCPT TO: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}

// TestConsoleLiveCountersFromMetrics: the console's live counters are
// the series /metrics serves, read in the running pop3d.
func TestConsoleLiveCountersFromMetrics(t *testing.T) {
	in, e := busyPop3d(t)
	resp, err := http.Get("http://" + in.Admin + "/console/live.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var live map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&live); err != nil || resp.StatusCode != 200 {
		t.Fatalf("live.json: %d %v", resp.StatusCode, err)
	}
	value := func(series string) float64 {
		var sum float64
		for _, l := range strings.Split(e.text, "\n") {
			if name, v, ok := strings.Cut(l, " "); ok && regexp.MustCompile(series).MatchString(name) {
				var f float64
				fmt.Sscan(v, &f)
				sum += f
			}
		}
		return sum
	}
	for key, series := range map[string]string{
		"logged_in":     `^pop3_sessions_logged_in$`,
		"logins_ok":     `^pop3_auth_total\{.*result="ok"`,
		"logins_failed": `^pop3_auth_total\{.*result="fail"`,
		"retrieved":     `^pop3_messages_retrieved_total$`,
		"deliveries":    `^smtp_deliveries_total\{result="delivered"\}$`,
	} {
		want := value(series)
		if want < 1 {
			t.Errorf("%s: the metrics show %v; the test expected traffic", series, want)
		}
		if got, _ := live[key].(float64); got != want {
			t.Errorf("live.json %s = %v, /metrics %s = %v", key, live[key], series, want)
		}
	}
	charts, _ := live["charts"].([]any)
	if len(charts) != 5 {
		t.Errorf("live.json has %d charts, want 5", len(charts))
	}
}
