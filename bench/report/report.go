// Package report holds the bench harness's results (written as JSON) and
// renders them as one self-contained HTML page with inline SVG plots:
// sessions/s and p99 latency against concurrency, RETR MB/s, server CPU per
// session and memory per connection, each server side by side.
package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Run is one scenario run against one server.
type Run struct {
	Server      string  `json:"server"`   // "pop3d", "dovecot", or a label
	Scenario    string  `json:"scenario"` // sessions, sessions-tls, retr, retr-tls, retr-att, retr-att-tls, idle-prelogin, idle-login, smtp, loopback, loopback-file
	Round       int     `json:"round"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"` // measured wall time

	Sessions   int64  `json:"sessions,omitempty"`
	Messages   int64  `json:"messages,omitempty"`
	Bytes      int64  `json:"bytes,omitempty"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`

	SessionsPerSec float64 `json:"sessions_per_sec,omitempty"`
	MessagesPerSec float64 `json:"messages_per_sec,omitempty"`
	MBPerSec       float64 `json:"mb_per_sec,omitempty"` // 10^6 octets per second
	P50Ms          float64 `json:"p50_ms,omitempty"`
	P99Ms          float64 `json:"p99_ms,omitempty"`
	MaxMs          float64 `json:"max_ms,omitempty"`

	Conns       int     `json:"conns,omitempty"`        // idle: connections held
	OpenSeconds float64 `json:"open_seconds,omitempty"` // idle: time until every greeting arrived

	ServerCPUSec     float64 `json:"server_cpu_sec,omitempty"`
	ServerCPUPerOpMs float64 `json:"server_cpu_per_op_ms,omitempty"` // per session, message or RETR
	ServerPSSBefore  int64   `json:"server_pss_before,omitempty"`
	ServerPSSAfter   int64   `json:"server_pss_after,omitempty"`
	PSSPerConn       float64 `json:"pss_per_conn,omitempty"` // idle: (after-before)/conns, bytes
	ClientCPUSec     float64 `json:"client_cpu_sec,omitempty"`
	LoadAvg          float64 `json:"load_avg,omitempty"` // the machine's 1-minute load average at the run's end
}

// Results is one harness invocation.
type Results struct {
	Started time.Time         `json:"started"`
	Command string            `json:"command"`
	Host    string            `json:"host"`
	Notes   map[string]string `json:"notes,omitempty"`
	Runs    []Run             `json:"runs"`
}

// Load reads results from a JSON file.
func Load(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", path, err)
	}
	return &r, nil
}

// Save writes results as indented JSON.
func (r *Results) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Servers returns the server names in first-seen order.
func (r *Results) Servers() []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range r.Runs {
		if !seen[x.Server] && x.Server != Loopback && x.Server != LoopbackFile {
			seen[x.Server] = true
			out = append(out, x.Server)
		}
	}
	return out
}

// MedianValue returns the median of metric over the rounds of a server,
// scenario and concurrency (conc 0: any); with an even count, the mean of
// the middle two. ok is false when there is no run.
func (r *Results) MedianValue(server, scenario string, conc int, metric func(Run) float64) (v float64, conns int, ok bool) {
	var vs []float64
	for _, x := range r.Runs {
		if x.Server == server && x.Scenario == scenario && (conc == 0 || x.Concurrency == conc) && x.Errors < errorLimit(x) {
			vs = append(vs, metric(x))
			conns = x.Conns
		}
	}
	if len(vs) == 0 {
		return 0, 0, false
	}
	sort.Float64s(vs)
	m := len(vs) / 2
	if len(vs)%2 == 0 {
		return (vs[m-1] + vs[m]) / 2, conns, true
	}
	return vs[m], conns, true
}

// errorLimit is the error count from which a run is left out of the
// figures: a run where more than 1% of the operations failed (or that
// did nothing) measures failures, not the server.
func errorLimit(x Run) int64 {
	ops := x.Sessions + x.Messages + int64(x.Conns)
	return max(1, ops/100+1)
}

// Concurrencies returns the sorted concurrency levels of a scenario.
func (r *Results) Concurrencies(scenario string) []int {
	set := map[int]bool{}
	for _, x := range r.Runs {
		if x.Scenario == scenario {
			set[x.Concurrency] = true
		}
	}
	var out []int
	for c := range set {
		out = append(out, c)
	}
	sort.Ints(out)
	return out
}

// Metric names a figure, how to read it from a run and whether more is better.
type Metric struct {
	Scenario string
	Conc     int // 0: any
	Name     string
	Unit     string
	Get      func(Run) float64
	Higher   bool
	Short    string // label under a bar; empty: Name
}

// What the two RETR messages are, in the rows that name them: the
// attachment message (retr-att: MIME, base64, no line to stuff) and the
// text message (retr: one line in six starts with '.', the worst case
// for dot-stuffing), both 10 MiB.
const (
	RetrAttLabel  = "10 MiB attachment (base64)"
	RetrTextLabel = "10 MiB text, 1 line in 6 dot-stuffed"
)

// retrLabels name the RETR scenarios in the rows against the loopback
// limit, in the order they are listed.
var retrLabels = []struct{ scenario, label string }{
	{"retr-att", "RETR " + RetrAttLabel},
	{"retr", "RETR " + RetrTextLabel},
	{"retr-att-tls", "RETR-TLS " + RetrAttLabel},
	{"retr-tls", "RETR-TLS " + RetrTextLabel},
}

// Goals are the figures the comparison reports, in order.
func Goals() []Metric {
	return []Metric{
		{"sessions", 64, "server CPU per full session", "ms", func(r Run) float64 { return r.ServerCPUPerOpMs }, false, ""},
		{"sessions", 64, "sessions/s at 64 clients", "/s", func(r Run) float64 { return r.SessionsPerSec }, true, ""},
		{"sessions", 64, "p99 session latency at 64 clients", "ms", func(r Run) float64 { return r.P99Ms }, false, ""},
		{"sessions", 1, "sessions/s at 1 client", "/s", func(r Run) float64 { return r.SessionsPerSec }, true, ""},
		{"sessions-tls", 64, "TLS sessions/s at 64 clients", "/s", func(r Run) float64 { return r.SessionsPerSec }, true, ""},
		{"sessions-tls", 64, "server CPU per full TLS session", "ms", func(r Run) float64 { return r.ServerCPUPerOpMs }, false, ""},
		{"retr-att", 0, "RETR " + RetrAttLabel + ", throughput", "MB/s", func(r Run) float64 { return r.MBPerSec }, true, "attachment (base64)"},
		{"retr-att", 0, "server CPU per RETR, " + RetrAttLabel, "ms", func(r Run) float64 { return r.ServerCPUPerOpMs }, false, ""},
		{"retr", 0, "RETR " + RetrTextLabel + ", throughput", "MB/s", func(r Run) float64 { return r.MBPerSec }, true, "text, dot-stuffed"},
		{"retr", 0, "server CPU per RETR, " + RetrTextLabel, "ms", func(r Run) float64 { return r.ServerCPUPerOpMs }, false, ""},
		{"retr-att-tls", 0, "TLS RETR " + RetrAttLabel + ", throughput", "MB/s", func(r Run) float64 { return r.MBPerSec }, true, "TLS attachment"},
		{"retr-tls", 0, "TLS RETR " + RetrTextLabel + ", throughput", "MB/s", func(r Run) float64 { return r.MBPerSec }, true, "TLS text"},
		{"idle-prelogin", 0, "memory per idle connection before login", "B", func(r Run) float64 { return r.PSSPerConn }, false, "before login"},
		{"idle-prelogin", 0, "time to open the idle connections", "s", func(r Run) float64 { return r.OpenSeconds }, false, ""},
		{"idle-login", 0, "memory per logged-in idle session", "B", func(r Run) float64 { return r.PSSPerConn }, false, "logged in"},
		{"smtp", 0, "SMTP deliveries/s", "/s", func(r Run) float64 { return r.MessagesPerSec }, true, ""},
		{"smtp", 0, "server CPU per delivery", "ms", func(r Run) float64 { return r.ServerCPUPerOpMs }, false, ""},
	}
}

func (m Metric) label() string {
	if m.Short != "" {
		return m.Short
	}
	return m.Name
}

// Row is one line of the comparison table.
type Row struct {
	Metric Metric
	Values []float64 // per server; NaN when missing
	Conns  []int     // idle scenarios: connections held
	Ratio  float64   // Values[0]/Values[1]; NaN when not both present
}

// Table computes the comparison rows for the servers, first one first.
func (r *Results) Table(servers []string) []Row {
	var rows []Row
	for _, m := range Goals() {
		row := Row{Metric: m, Ratio: math.NaN()}
		any := false
		for _, s := range servers {
			med, conns, ok := r.MedianValue(s, m.Scenario, m.Conc, m.Get)
			v := math.NaN()
			if ok && med != 0 {
				v, any = med, true
			}
			row.Values = append(row.Values, v)
			row.Conns = append(row.Conns, conns)
		}
		if !any {
			continue
		}
		if len(row.Values) >= 2 && !math.IsNaN(row.Values[0]) && !math.IsNaN(row.Values[1]) && row.Values[1] != 0 {
			row.Ratio = row.Values[0] / row.Values[1]
		}
		rows = append(rows, row)
	}
	return rows
}

// connsLabel names the connections held in an idle row: " (19000)", or
// " (10000/2000)" when the servers held different numbers.
func (row Row) connsLabel() string {
	var parts []string
	same := true
	for _, c := range row.Conns {
		if c > 0 {
			parts = append(parts, strconv.Itoa(c))
			same = same && c == row.Conns[0]
		}
	}
	switch {
	case len(parts) == 0:
		return ""
	case same:
		return " (" + parts[0] + ")"
	}
	return " (" + strings.Join(parts, "/") + ")"
}

// FormatValue prints a figure with a sensible precision.
func FormatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "—"
	}
	switch {
	case unit == "B" && v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case unit == "B" && v >= 1024:
		return fmt.Sprintf("%.2f KiB", v/1024)
	case unit == "B":
		return fmt.Sprintf("%.0f B", v)
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

// WriteText prints the comparison table: each figure with its ratio.
func (r *Results) WriteText(w io.Writer) {
	servers := r.Servers()
	rows := r.Table(servers)
	width := 42
	for _, row := range rows {
		width = max(width, len(row.Metric.Name+row.connsLabel()))
	}
	fmt.Fprintf(w, "%-*s", width, "figure")
	for _, s := range servers {
		fmt.Fprintf(w, " %14s", s)
	}
	if len(servers) >= 2 {
		fmt.Fprintf(w, " %9s", "ratio")
	}
	fmt.Fprintln(w)
	for _, row := range rows {
		name := row.Metric.Name + row.connsLabel()
		fmt.Fprintf(w, "%-*s", width, name)
		for _, v := range row.Values {
			fmt.Fprintf(w, " %14s", FormatValue(v, row.Metric.Unit))
		}
		if !math.IsNaN(row.Ratio) {
			fmt.Fprintf(w, " %8.2fx", row.Ratio)
		}
		fmt.Fprintln(w)
	}
	r.writeLimits(w)
}

// Loopback is the server name of the machine-limit runs: a plain sender
// and reader over a TCP loopback connection, measured in the same run.
const Loopback = "loopback"

// LoopbackFile is the server name of the diagnostic loopback runs beside
// Loopback: the same reader, but the sender sends a 10 MiB message from a
// file with sendfile, as a server does, so the reader copies pages that
// are not in the CPU's cache. No bar is held against it.
const LoopbackFile = "loopback-file"

// Limit is a figure held against a bar: RETR as a fraction of the loopback
// limit measured in the same run, or server CPU per session as a ratio to
// the peer's. Load is the median one-minute load average of the runs it
// comes from.
type Limit struct {
	Name   string
	Value  float64
	Bar    float64
	Higher bool // the bar is a floor (fractions), not a ceiling (ratios)
	Load   float64
	Detail string
}

// Met reports whether the figure passes its bar (a figure without a bar
// passes).
func (l Limit) Met() bool {
	switch {
	case l.Bar == 0:
		return true
	case l.Higher:
		return l.Value >= l.Bar
	}
	return l.Value <= l.Bar
}

// Bars of issue 18: CPU per full session against the peer's, RETR against
// the machine's loopback limit.
const (
	BarCPUPlain  = 1.0 / 5
	BarCPUTLS    = 1.0 / 4
	BarRETRShare = 0.75
)

// medianLoad is the median load average of the runs a median came from.
func (r *Results) medianLoad(server, scenario string, conc int) float64 {
	v, _, _ := r.MedianValue(server, scenario, conc, func(x Run) float64 { return x.LoadAvg })
	return v
}

// Limits computes ours against the machine's limit and against peer.
func (r *Results) Limits(ours, peer string) []Limit {
	var out []Limit
	cpu := func(x Run) float64 { return x.ServerCPUPerOpMs }
	mbs := func(x Run) float64 { return x.MBPerSec }
	for _, sc := range []struct {
		scenario, label string
		bar             float64
	}{{"sessions", "plaintext", BarCPUPlain}, {"sessions-tls", "TLS", BarCPUTLS}} {
		concs := r.Concurrencies(sc.scenario)
		if len(concs) == 0 || peer == "" {
			continue
		}
		c := concs[len(concs)-1]
		a, _, okA := r.MedianValue(ours, sc.scenario, c, cpu)
		b, _, okB := r.MedianValue(peer, sc.scenario, c, cpu)
		if !okA || !okB || a == 0 || b == 0 {
			continue
		}
		out = append(out, Limit{Name: fmt.Sprintf("server CPU per full %s session, %s/%s", sc.label, ours, peer),
			Value: a / b, Bar: sc.bar, Load: (r.medianLoad(ours, sc.scenario, c) + r.medianLoad(peer, sc.scenario, c)) / 2,
			Detail: fmt.Sprintf("%.2f ms / %.2f ms at %d clients", a, b, c)})
	}
	if lb, _, ok := r.MedianValue(Loopback, Loopback, 0, mbs); ok && lb != 0 {
		out = r.limitsLoopback(out, ours, peer, lb)
	}
	// The diagnostic reference: how much of the gap to the loopback limit
	// the machine itself leaves when the data comes from a file's pages.
	lf, _, ok := r.MedianValue(LoopbackFile, LoopbackFile, 0, mbs)
	if !ok || lf == 0 {
		return out
	}
	out = append(out, Limit{Name: "loopback from a file (plain Go sendfile of the 10 MiB message and reader)", Value: lf,
		Load: r.medianLoad(LoopbackFile, LoopbackFile, 0), Detail: "MB/s"})
	for _, s := range []string{ours, peer} {
		v, _, ok := r.MedianValue(s, "retr-att", 0, mbs)
		if !ok || s == "" {
			continue
		}
		out = append(out, Limit{Name: fmt.Sprintf("%s RETR %s / loopback from a file (sendfile)", s, RetrAttLabel), Value: v / lf, Higher: true,
			Load: r.medianLoad(s, "retr-att", 0), Detail: fmt.Sprintf("%.0f MB/s of %.0f MB/s", v, lf)})
	}
	return out
}

// limitsLoopback appends the loopback limit lb and each server's RETR
// held against it (ours with issue 18's bar) to out.
func (r *Results) limitsLoopback(out []Limit, ours, peer string, lb float64) []Limit {
	mbs := func(x Run) float64 { return x.MBPerSec }
	out = append(out, Limit{Name: "loopback limit (plain Go sender and reader)", Value: lb, Load: r.medianLoad(Loopback, Loopback, 0),
		Detail: "MB/s"})
	for _, s := range []string{ours, peer} {
		for _, sc := range retrLabels {
			v, _, ok := r.MedianValue(s, sc.scenario, 0, mbs)
			if !ok || s == "" {
				continue
			}
			l := Limit{Name: fmt.Sprintf("%s %s / loopback", s, sc.label), Value: v / lb, Higher: true,
				Load: r.medianLoad(s, sc.scenario, 0), Detail: fmt.Sprintf("%.0f MB/s of %.0f MB/s", v, lb)}
			if s == ours && (sc.scenario == "retr" || sc.scenario == "retr-att") {
				l.Bar = BarRETRShare
			}
			out = append(out, l)
		}
	}
	return out
}

// writeLimits prints the limits: each figure, its bar and the load average.
func (r *Results) writeLimits(w io.Writer) {
	servers := r.Servers()
	if len(servers) == 0 {
		return
	}
	peer := ""
	if len(servers) >= 2 {
		peer = servers[1]
	}
	ls := r.Limits(servers[0], peer)
	if len(ls) == 0 {
		return
	}
	fmt.Fprintf(w, "\nagainst the machine and the peer (same run; load = 1-minute load average)\n")
	width := 52
	for _, l := range ls {
		width = max(width, len(l.Name))
	}
	for _, l := range ls {
		v := fmt.Sprintf("%.3f", l.Value)
		if l.Detail == "MB/s" {
			v = fmt.Sprintf("%.0f MB/s", l.Value)
		}
		bar := ""
		if l.Bar > 0 {
			op, verdict := "<=", "met"
			if l.Higher {
				op = ">="
			}
			if !l.Met() {
				verdict = "NOT met"
			}
			bar = fmt.Sprintf("  bar %s %.2f: %s", op, l.Bar, verdict)
		}
		detail := ""
		if l.Detail != "MB/s" {
			detail = " (" + l.Detail + ")"
		}
		fmt.Fprintf(w, "%-*s %10s%s  load %.1f%s\n", width, l.Name, v, detail, l.Load, bar)
	}
}

// palette colours the servers: ours first.
var palette = []string{"#1f6fd1", "#d1571f", "#2a9d3a", "#8a3ad1"}

// lineChart plots y against concurrency for each server.
func lineChart(r *Results, title, scenario, unit string, get func(Run) float64) template.HTML {
	concs := r.Concurrencies(scenario)
	if len(concs) == 0 {
		return ""
	}
	const W, H, L, B, T, R = 460, 260, 60, 40, 30, 110
	servers := r.Servers()
	maxY := 0.0
	type pt struct{ x, y float64 }
	series := map[string][]pt{}
	for _, s := range servers {
		for i, c := range concs {
			if v, _, ok := r.MedianValue(s, scenario, c, get); ok {
				series[s] = append(series[s], pt{float64(i), v})
				maxY = math.Max(maxY, v)
			}
		}
	}
	if maxY == 0 {
		return ""
	}
	maxY = niceCeil(maxY)
	px := func(i float64) float64 {
		if len(concs) == 1 {
			return L + float64(W-L-R)/2
		}
		return L + i*float64(W-L-R)/float64(len(concs)-1)
	}
	py := func(v float64) float64 { return float64(H-B) - v/maxY*float64(H-B-T) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`, W, H)
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>`, L, template.HTMLEscapeString(title))
	for k := 0; k <= 4; k++ {
		v := maxY * float64(k) / 4
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			L, W-R, y, y, L-4, y+4, short(v))
	}
	for i, c := range concs {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`, px(float64(i)), H-B+14, c)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">concurrent clients</text>`, (L+W-R)/2, H-8)
	fmt.Fprintf(&b, `<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, (H-B+T)/2, (H-B+T)/2, template.HTMLEscapeString(unit))
	for si, s := range servers {
		col := palette[si%len(palette)]
		var pts []string
		for _, p := range series[s] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, px(p.x), py(p.y), col)
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, col, strings.Join(pts, " "))
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`,
			W-R+10, T+si*16, col, W-R+24, T+si*16+9, template.HTMLEscapeString(s))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barChart draws one bar per server and metric group.
func barChart(r *Results, title, unit string, groups []Metric) template.HTML {
	servers := r.Servers()
	type bar struct {
		group  string
		server int
		v      float64
	}
	var bars []bar
	maxY := 0.0
	var names []string
	for _, m := range groups {
		has := false
		for si, s := range servers {
			if v, _, ok := r.MedianValue(s, m.Scenario, m.Conc, m.Get); ok && v > 0 {
				bars = append(bars, bar{m.label(), si, v})
				maxY = math.Max(maxY, v)
				has = true
			}
		}
		if has {
			names = append(names, m.label())
		}
	}
	if len(bars) == 0 {
		return ""
	}
	maxY = niceCeil(maxY)
	const H, L, B, T, R, bw, gap = 260, 60, 40, 30, 110, 28, 70
	W := L + R + len(names)*(len(servers)*bw+gap)
	py := func(v float64) float64 { return float64(H-B) - v/maxY*float64(H-B-T) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`, W, H)
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>`, L, template.HTMLEscapeString(title))
	for k := 0; k <= 4; k++ {
		v := maxY * float64(k) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			L, W-R, py(v), py(v), L-4, py(v)+4, short(v))
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, (H-B+T)/2, (H-B+T)/2, template.HTMLEscapeString(unit))
	for gi, g := range names {
		x0 := L + gap/2 + gi*(len(servers)*bw+gap)
		for _, br := range bars {
			if br.group != g {
				continue
			}
			x := x0 + br.server*bw
			val := template.HTMLEscapeString(FormatValue(br.v, unit))
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s</title></rect>`,
				x, py(br.v), bw-4, float64(H-B)-py(br.v), palette[br.server%len(palette)], val)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle" font-size="9">%s</text>`, x+(bw-4)/2, py(br.v)-3, val)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, x0+len(servers)*bw/2, H-B+14, template.HTMLEscapeString(g))
	}
	for si, s := range servers {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`,
			W-R+10, T+si*16, palette[si%len(palette)], W-R+24, T+si*16+9, template.HTMLEscapeString(s))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>POP3 bench report</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:1em}pre{background:#f4f4f4;padding:8px;white-space:pre-wrap}</style></head>
<body><h1>POP3 bench report</h1>
<p>Started {{.R.Started.Format "2006-01-02 15:04:05 MST"}} on {{.R.Host}}.</p>
<pre>{{.R.Command}}</pre>
{{range $k, $v := .R.Notes}}<p><b>{{$k}}</b>: {{$v}}</p>{{end}}
<h2>Figures (median over rounds)</h2>
<table><tr><th>figure</th>{{range .Servers}}<th>{{.}}</th>{{end}}{{if .Two}}<th>ratio</th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Name}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}{{if $.Two}}<td>{{.Ratio}}</td>{{end}}</tr>
{{end}}</table>
{{if .Limits}}<h2>Against the machine and the peer</h2><pre>{{.Limits}}</pre>{{end}}
<h2>Plots</h2><div class="plots">{{range .Plots}}<div>{{.}}</div>{{end}}</div>
<h2>Every run</h2>
<table><tr><th>server</th><th>scenario</th><th>round</th><th>conc</th><th>s</th><th>sessions/s</th><th>p99 ms</th><th>MB/s</th><th>server CPU/op ms</th><th>client CPU s</th><th>load</th><th>conns</th><th>PSS/conn</th><th>errors</th></tr>
{{range .R.Runs}}<tr><td>{{.Server}}</td><td>{{.Scenario}}</td><td>{{.Round}}</td><td>{{.Concurrency}}</td><td>{{printf "%.1f" .Seconds}}</td><td>{{printf "%.1f" .SessionsPerSec}}</td><td>{{printf "%.1f" .P99Ms}}</td><td>{{printf "%.0f" .MBPerSec}}</td><td>{{printf "%.2f" .ServerCPUPerOpMs}}</td><td>{{printf "%.1f" .ClientCPUSec}}</td><td>{{printf "%.1f" .LoadAvg}}</td><td>{{.Conns}}</td><td>{{printf "%.0f" .PSSPerConn}}</td><td title="{{.FirstError}}">{{.Errors}}</td></tr>
{{end}}</table></body></html>
`))

// WriteHTML renders the report page.
func (r *Results) WriteHTML(w io.Writer) error {
	servers := r.Servers()
	type row struct {
		Name  string
		Cells []string
		Ratio string
	}
	var rows []row
	for _, t := range r.Table(servers) {
		x := row{Name: t.Metric.Name + t.connsLabel()}
		for _, v := range t.Values {
			x.Cells = append(x.Cells, FormatValue(v, t.Metric.Unit))
		}
		if !math.IsNaN(t.Ratio) {
			x.Ratio = fmt.Sprintf("%.2f×", t.Ratio)
		}
		rows = append(rows, x)
	}
	var plots []template.HTML
	add := func(h template.HTML) {
		if h != "" {
			plots = append(plots, h)
		}
	}
	add(lineChart(r, "Sessions per second", "sessions", "sessions/s", func(x Run) float64 { return x.SessionsPerSec }))
	add(lineChart(r, "p99 session latency", "sessions", "ms", func(x Run) float64 { return x.P99Ms }))
	add(lineChart(r, "Server CPU per session", "sessions", "ms", func(x Run) float64 { return x.ServerCPUPerOpMs }))
	add(lineChart(r, "TLS sessions per second", "sessions-tls", "sessions/s", func(x Run) float64 { return x.SessionsPerSec }))
	g := Goals()
	pick := func(names ...string) []Metric {
		var out []Metric
		for _, m := range g {
			for _, n := range names {
				if m.Name == n {
					out = append(out, m)
				}
			}
		}
		return out
	}
	var retrs []Metric
	for _, m := range g {
		if strings.HasPrefix(m.Scenario, "retr") && m.Unit == "MB/s" {
			retrs = append(retrs, m)
		}
	}
	add(barChart(r, "RETR of a 10 MiB message", "MB/s", retrs))
	add(barChart(r, "Memory per connection", "B", pick("memory per idle connection before login", "memory per logged-in idle session")))
	var limits strings.Builder
	r.writeLimits(&limits)
	return page.Execute(w, map[string]any{"R": r, "Servers": servers, "Two": len(servers) >= 2, "Rows": rows, "Plots": plots,
		"Limits": strings.TrimSpace(limits.String())})
}
