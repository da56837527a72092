// Package console is the browser console of pop3d: the administrator's
// pages (the seed's P3server.msc and Web Administration), mounted under
// /console/ on the admin listener.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/audit"
	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/internal/wiring"
	"github.com/pop3svc/pop3svc/engine"
	"github.com/pop3svc/pop3svc/session/auth/methodswitch"
	"github.com/pop3svc/pop3svc/store"
)

// Pages:
//
//	GET  /console/                   status, queue and Badmail, settings
//	POST /console/settings           change one setting (as pop3ctl set), then reload
//	GET  /console/domains            domains with their totals and lock state
//	POST /console/domains            add, delete, lock, unlock a domain
//	GET  /console/domains/{domain}   the domain's mailboxes
//	POST /console/domains/{domain}   add, delete, lock, unlock a mailbox; password; quota
//	GET  /console/live.json          the counters and charts the server page refreshes
//	GET  /console/queue              the queue and Badmail, a page at a time
//	GET  /console/queue/{id}         a queued message: envelope, progress, header
//	POST /console/queue/{id}         retry now, delete
//	                                 (?queue=outbound: an entry of the outbound queue)
//	GET  /console/badmail/{id}       a Badmail message: reason, header
//	POST /console/badmail/{id}       queue again, delete
//
// Pages are rendered on the server (html/template escapes every value) and
// load no outside asset. The server page carries a few lines of inline
// JavaScript (allowed by a per-response nonce) that poll live.json and
// update its counters and charts; without JavaScript it is a snapshot. Every change goes through the
// Mail Storage Access API and the config package, as pop3ctl's do, with
// the same one-line reasons when a request is refused.
//
// The console asks for no password: admin.listen must stay on loopback, or
// behind a proxy that authenticates. admin.console = false turns it off.
// Cross-site requests are refused: every POST carries a per-process random
// token in a hidden field, and a POST whose Origin or Referer names another
// host than the request's Host is refused. GET never changes anything.
// Deleting a mailbox or a queued or Badmail message takes a second POST
// carrying a confirmation token (confirm.go).

//go:embed pages/*.html pages/style.css
var consoleFS embed.FS

// Limits of the console.
const (
	// ConsoleMaxForm is the largest POST body the console reads.
	ConsoleMaxForm = 64 << 10
	// ConsoleMaxPassword is the longest password accepted, in octets (the
	// same limit as pop3ctl's -password-stdin line).
	ConsoleMaxPassword = 4096
	// ConsoleMailboxesPerPage is the number of mailboxes a domain's page
	// lists at a time.
	ConsoleMailboxesPerPage = 100
	// ConsoleMaxQuery is the longest mailbox search, in octets.
	ConsoleMaxQuery = 128
	// ConsoleCheckTimeout bounds the directory look-ups of an auth.method
	// switch and any other store work of one request.
	ConsoleCheckTimeout = 30 * time.Second
)

// Options are what the console works with.
type Options struct {
	ConfigPath string       // the configuration file settings are written to; "" when none is in use
	Store      store.Store  // domains, mailboxes, passwords, quotas
	Queue      store.Queue  // the inbound queue and its Badmail
	Outbound   store.Queue  // the outbound queue of submitted mail; nil: not shown
	Log        *slog.Logger // nil: slog.Default()
	Started    time.Time    // the service's start, for the uptime shown
	// Reload rereads the configuration and reloads the running service
	// after a setting changed; it calls SetConfig with what is in force.
	Reload func() (restart []string, err error)
	// Status returns the POP3 engine's status; nil, or a nil result: not shown.
	Status func() *engine.Status
	// Counters returns the counters the server page shows live and the
	// charts sample; nil: MetricCounters.
	Counters func() Counters
	// PollInterval is how often the server page asks for live.json;
	// 0: DefaultPollInterval.
	PollInterval time.Duration
}

// Console is the browser console of one pop3d process. It is an
// http.Handler for the paths under /console/.
type Console struct {
	opts  Options
	cfg   atomic.Pointer[config.Config] // the configuration in force
	token string                        // the anti-CSRF token of this process
	pages map[string]*template.Template
	mux   *http.ServeMux
	hist  history
	// confirmKey signs the confirmation tokens of deletions.
	confirmKey []byte
}

// SetConfig makes cfg the configuration in force: the one the console
// shows, and whose admin.console turns the console on or off.
func (c *Console) SetConfig(cfg *config.Config) { c.cfg.Store(cfg) }

// Token returns the anti-CSRF token that every form of this process
// carries.
func (c *Console) Token() string { return c.token }

// New makes the console over the configuration in force.
func New(opts Options, cfg *config.Config) *Console {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Counters == nil {
		opts.Counters = MetricCounters
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	buf := make([]byte, 64)
	if _, err := rand.Read(buf); err != nil {
		panic("console: no randomness for the anti-CSRF token: " + err.Error())
	}
	c := &Console{opts: opts, token: hex.EncodeToString(buf[:32]), confirmKey: buf[32:], pages: map[string]*template.Template{}}
	c.cfg.Store(cfg)
	funcs := template.FuncMap{"yesno": yesNo, "quota": quotaText, "size": sizeText, "when": whenText,
		"viewbox": func() string { return fmt.Sprintf("0 0 %d %d", chartW, chartH) }}
	for _, p := range []string{"server", "domains", "mailboxes", "refused", "queue", "message", "confirm"} {
		c.pages[p] = template.Must(template.New("layout").Funcs(funcs).ParseFS(consoleFS, "pages/layout.html", "pages/"+p+".html"))
	}
	css, err := consoleFS.ReadFile("pages/style.css")
	if err != nil {
		panic("console: " + err.Error())
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /console/style.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(css)
	})
	m.HandleFunc("GET /console/{$}", c.serverPage)
	m.HandleFunc("POST /console/settings", c.post(c.setSetting))
	m.HandleFunc("GET /console/domains", c.domainsPage)
	m.HandleFunc("POST /console/domains", c.post(c.domainAction))
	m.HandleFunc("GET /console/domains/{domain}", c.mailboxesPage)
	m.HandleFunc("POST /console/domains/{domain}", c.post(c.mailboxAction))
	m.HandleFunc("GET /console/live.json", c.liveJSON)
	m.HandleFunc("GET /console/queue", c.queuePage)
	m.HandleFunc("GET /console/queue/{id}", c.queueEntryPage)
	m.HandleFunc("POST /console/queue/{id}", c.post(c.queueAction))
	m.HandleFunc("GET /console/badmail/{id}", c.badmailPage)
	m.HandleFunc("POST /console/badmail/{id}", c.post(c.badmailAction))
	c.mux = m
	return c
}

// nonceWriter carries the nonce of a response's inline script to render.
type nonceWriter struct {
	http.ResponseWriter
	nonce string
}

// ServeHTTP serves the console with its security headers. The only script
// allowed is the inline one carrying this response's nonce, and it may
// fetch only from the console's own origin.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	nb := make([]byte, 16)
	rand.Read(nb)
	nonce := hex.EncodeToString(nb)
	w = &nonceWriter{ResponseWriter: w, nonce: nonce}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if cfg := c.cfg.Load(); cfg == nil || !cfg.Admin.Console {
		http.Error(w, "the console is off (admin.console = false)", http.StatusNotFound)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// view is what every page template receives.
type view struct {
	Title, Nav string
	CSRF       string
	Flash      string
	Warnings   []string
	Error      string
	AuthMethod string
	MailRoot   string

	// Server page.
	Status    any
	Uptime    string
	Settings  []config.KV
	File      string
	FormKey   string
	FormValue string

	// Live counters and charts of the server page.
	Nonce  string // of the inline script
	PollMS int64  // 0: the page does not poll
	Live   *live
	Groups []settingGroup

	// Domains and mailboxes.
	Domains      []store.DomainInfo
	Domain       string
	DomainLocked bool
	Mailboxes    []store.MailboxInfo
	Query        string // the mailbox search
	Pager        pager  // the mailbox list's paging

	// Queue and Badmail.
	QueueRows  []queueRow
	BadRows    []badRow
	QueuePager pager
	BadPager   pager
	Message    *messageView

	// The outbound queue, when there is one.
	HasOutbound bool
	OutRows     []queueRow
	OutPager    pager

	// The first step of a deletion.
	Confirm *confirmView
}

// outcome is the result of a POST: a message, warnings, or the refusal.
type outcome struct {
	flash    string
	warnings []string
	err      error
	code     int // HTTP status of a refusal; 0: from err
}

// post wraps a state-changing handler: the cross-site checks, the body
// limit and the form, then the page of the result.
func (c *Console) post(do func(r *http.Request) (page string, o outcome, v *view)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if why := c.crossSite(r); why != "" {
			c.refuse(w, http.StatusForbidden, why)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, ConsoleMaxForm)
		if err := r.ParseForm(); err != nil {
			c.refuse(w, http.StatusBadRequest, "the form could not be read: "+err.Error())
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(c.token)) != 1 {
			c.refuse(w, http.StatusForbidden, "refused: the form's security token is missing or stale; reload the page and try again")
			return
		}
		page, o, v := do(r)
		v.Flash, v.Warnings = o.flash, o.warnings
		code := http.StatusOK
		if o.err != nil {
			v.Flash, v.Warnings = "", nil
			v.Error = store.Reason(o.err)
			code = o.code
			if code == 0 {
				code = statusOf(o.err)
			}
		}
		c.render(w, code, page, v)
	}
}

// crossSite returns why r looks like a cross-site request, or "".
func (c *Console) crossSite(r *http.Request) string {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return "refused: a cross-site request (Sec-Fetch-Site: " + s + ")"
	}
	for _, h := range []string{"Origin", "Referer"} {
		v := r.Header.Get(h)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Sprintf("refused: the request comes from another site (%s %q, host %q)", h, v, r.Host)
		}
	}
	return ""
}

// audit records one change made through the console (package audit).
func (c *Console) audit(r *http.Request, action, object, old, new string) {
	e := audit.FromRequest("console", r)
	e.Action, e.Object, e.Old, e.New = action, object, old, new
	audit.Record(c.opts.Log, e)
}

// refuse answers a request refused before it was looked at.
func (c *Console) refuse(w http.ResponseWriter, code int, why string) {
	c.opts.Log.Warn("console: request refused", "reason", why)
	v := c.base("Request refused", "")
	v.Error = why
	c.render(w, code, "refused", v)
}

// statusOf maps a refusal to its HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, store.ErrNoSuchDomain), errors.Is(err, store.ErrNoSuchMailbox):
		return http.StatusNotFound
	case errors.Is(err, store.ErrDomainExists), errors.Is(err, store.ErrMailboxExists),
		errors.Is(err, store.ErrDomainNotEmpty), errors.Is(err, store.ErrMailboxInUse):
		return http.StatusConflict
	}
	return http.StatusUnprocessableEntity
}

func (c *Console) base(title, nav string) *view {
	cfg := c.cfg.Load()
	return &view{Title: title, Nav: nav, CSRF: c.token, AuthMethod: cfg.Auth.Method, MailRoot: c.opts.Store.Root()}
}

// render writes a whole page, or a plain 500 when the template fails.
func (c *Console) render(w http.ResponseWriter, code int, page string, v *view) {
	if nw, ok := w.(*nonceWriter); ok {
		v.Nonce = nw.nonce
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.opts.Log.Error("console: cannot render a page", "page", page, "err", err)
		http.Error(w, "the page could not be rendered; see the service log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (c *Console) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), ConsoleCheckTimeout)
}

// --- Server page -------------------------------------------------------

func (c *Console) serverPage(w http.ResponseWriter, r *http.Request) {
	v := c.serverView(r.URL.Query().Get("key"))
	c.render(w, http.StatusOK, "server", v)
}

// serverView builds the server page; key preselects a setting in the form.
func (c *Console) serverView(key string) *view {
	v := c.base("Server", "server")
	if c.opts.Status != nil {
		if st := c.opts.Status(); st != nil {
			v.Status = st
		}
	}
	v.Uptime = time.Since(c.opts.Started).Round(time.Second).String()
	cfg := c.cfg.Load()
	v.Settings = config.List(cfg)
	v.Groups = groupSettings(v.Settings)
	l := c.liveView()
	v.Live = &l
	v.PollMS = c.opts.PollInterval.Milliseconds()
	v.File = c.opts.ConfigPath
	if k, err := config.CanonicalKey(key); err == nil {
		if k == "port" {
			k = "pop3.listen"
		}
		v.FormKey = k
		if val, err := config.Get(cfg, k); err == nil && val != config.Masked {
			v.FormValue = val
		}
	}
	return v
}

// setSetting changes one setting in the file and reloads the service, as
// pop3ctl set does (including the auth.method switch check).
func (c *Console) setSetting(r *http.Request) (string, outcome, *view) {
	key, value := strings.TrimSpace(r.PostForm.Get("key")), r.PostForm.Get("value")
	force := r.PostForm.Get("force") != ""
	path := c.opts.ConfigPath
	do := func() outcome {
		if path == "" {
			return outcome{err: errors.New(config.NoFileRefusal)}
		}
		k, err := config.CanonicalKey(key)
		if err != nil {
			return outcome{err: err}
		}
		if k == "auth.method" && !force {
			cur, err := config.Load(path)
			if err != nil {
				return outcome{err: err}
			}
			method := config.NormalizeAuthMethod(value)
			if cur.Auth.Method != method {
				ctx, cancel := c.ctx(r)
				defer cancel()
				if err := methodswitch.Check(ctx, c.opts.Store, wiring.DirectoryOptionsFunc(cur.LDAP), method); err != nil {
					return outcome{err: fmt.Errorf("%w; tick \"switch authentication even if mailboxes could no longer log in\" to switch anyway", err)}
				}
			}
		}
		old := ""
		if prev, err := config.Load(path); err == nil {
			old, _ = config.Get(prev, key)
		}
		if err := config.Set(path, key, value); err != nil {
			return outcome{err: err}
		}
		cfg, err := config.Load(path)
		if err != nil {
			return outcome{err: err}
		}
		shown, err := config.Get(cfg, key)
		if err != nil {
			return outcome{err: err}
		}
		c.audit(r, "set", k, old, shown)
		o := outcome{flash: fmt.Sprintf("Set %s = %s in %s. The running service reloaded its configuration.", k, shown, path)}
		restart, err := c.opts.Reload()
		if err != nil {
			o.flash = fmt.Sprintf("Set %s = %s in %s.", k, shown, path)
			o.warnings = []string{"The running service did not apply everything: " + store.Reason(err)}
		}
		if n := config.RestartNotice(restart); n != "" {
			o.warnings = append(o.warnings, n)
		}
		return o
	}
	o := do()
	v := c.serverView(key)
	if o.err != nil {
		v.FormValue = value
		if k, err := config.CanonicalKey(key); err == nil && k != "ldap.service_password" {
			v.FormKey = k
		} else {
			v.FormValue = ""
		}
	}
	return "server", o, v
}

// --- Domains -----------------------------------------------------------

func (c *Console) domainsPage(w http.ResponseWriter, r *http.Request) {
	v := c.base("Domains", "domains")
	ctx, cancel := c.ctx(r)
	defer cancel()
	code := http.StatusOK
	ds, err := c.opts.Store.ListDomains(ctx)
	if err != nil {
		v.Error, code = store.Reason(err), http.StatusInternalServerError
	}
	v.Domains = ds
	c.render(w, code, "domains", v)
}

// domainAction adds, deletes, locks or unlocks a domain. Deleting takes
// two steps, as for a mailbox: the first POST answers with a confirmation
// page naming what goes with the domain, and only a second POST carrying
// its token deletes. The token names the number of mailboxes the page
// showed: if a mailbox was added or removed meanwhile, a new page asks
// again with the new count.
func (c *Console) domainAction(r *http.Request) (string, outcome, *view) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	action := r.PostForm.Get("action")
	var confirm *view
	do := func() outcome {
		d, err := store.CanonicalDomain(strings.TrimSpace(r.PostForm.Get("domain")))
		if err != nil {
			return outcome{err: err, code: http.StatusBadRequest}
		}
		st := c.opts.Store
		switch action {
		case "add":
			if err := st.CreateDomain(ctx, d); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "add", d, "", "domain")
			return outcome{flash: "Added domain " + d + "."}
		case "delete":
			info, err := st.Domain(ctx, d)
			if err != nil {
				return outcome{err: err}
			}
			target := fmt.Sprintf("domain %s with %d mailbox(es)", d, info.Mailboxes)
			if !c.confirmed(target, r.PostForm.Get("confirm"), time.Now()) {
				facts := []string{"It has no mailboxes."}
				if info.Mailboxes > 0 {
					facts = []string{fmt.Sprintf("Its %d mailbox(es), holding %d message(s), %s, are deleted with it.",
						info.Mailboxes, info.Messages, sizeText(info.Bytes))}
				}
				facts = append(facts, "Mail sent to "+d+" afterwards is refused.")
				confirm = c.confirmPage("Delete domain "+d+"?", facts, "/console/domains", "/console/domains", target,
					[]field{{"domain", d}})
				return outcome{}
			}
			if err := st.DeleteDomain(ctx, d, true); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "delete", d, "domain", "")
			return outcome{flash: fmt.Sprintf("Deleted domain %s with %d mailbox(es).", d, info.Mailboxes)}
		case "lock":
			if err := st.LockDomain(ctx, d); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "lock", d, "unlocked", "locked")
			return outcome{flash: "Locked domain " + d + "."}
		case "unlock":
			if err := st.UnlockDomain(ctx, d); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "unlock", d, "locked", "unlocked")
			return outcome{flash: "Unlocked domain " + d + "."}
		}
		return outcome{err: fmt.Errorf("unknown action %q", action), code: http.StatusBadRequest}
	}
	o := do()
	if confirm != nil && o.err == nil {
		return "confirm", o, confirm
	}
	v := c.base("Domains", "domains")
	ds, err := c.opts.Store.ListDomains(ctx)
	if err != nil && o.err == nil {
		o.err = err
	}
	v.Domains = ds
	return "domains", o, v
}

// --- Mailboxes of a domain ------------------------------------------------

func (c *Console) mailboxesPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	v, err := c.mailboxesView(ctx, r.PathValue("domain"), r.FormValue("q"), pageArg(r))
	code := http.StatusOK
	if err != nil {
		v.Error, code = store.Reason(err), statusOf(err)
		if errors.Is(err, store.ErrInvalidName) {
			code = http.StatusNotFound
		}
	}
	c.render(w, code, "mailboxes", v)
}

// mailboxesView builds a page of a domain's mailboxes, those whose name
// contains query (any case) when it is not empty; on error the view holds
// what it can.
func (c *Console) mailboxesView(ctx context.Context, name, query string, page int) (*view, error) {
	v := c.base("Mailboxes", "domains")
	d, err := store.CanonicalDomain(name)
	if err != nil {
		return v, err
	}
	v.Domain = d
	v.Title = "Mailboxes of " + d
	info, err := c.opts.Store.Domain(ctx, d)
	if err != nil {
		return v, err
	}
	v.DomainLocked = info.Locked
	query = strings.TrimSpace(query)
	if len(query) > ConsoleMaxQuery {
		query = query[:ConsoleMaxQuery]
	}
	v.Query = query
	q := strings.ToLower(query)
	link := func(n int) string {
		u := url.Values{"page": {strconv.Itoa(n)}}
		if query != "" {
			u.Set("q", query)
		}
		return "/console/domains/" + d + "?" + u.Encode()
	}
	// A store that lists names alone is asked to describe only the
	// mailboxes of the page shown.
	if l, ok := c.opts.Store.(store.MailboxLister); ok {
		names, err := l.ListMailboxNames(ctx, d)
		if err != nil {
			return v, err
		}
		if q != "" {
			kept := names[:0]
			for _, n := range names {
				if strings.Contains(n, q) {
					kept = append(kept, n)
				}
			}
			names = kept
		}
		lo, hi, p := paginate(len(names), page, ConsoleMailboxesPerPage, link)
		v.Pager = p
		for _, n := range names[lo:hi] {
			mi, err := c.opts.Store.Mailbox(ctx, store.Address{Mailbox: n, Domain: d})
			if errors.Is(err, store.ErrNoSuchMailbox) {
				continue // deleted since the listing
			}
			if err != nil {
				return v, err
			}
			v.Mailboxes = append(v.Mailboxes, mi)
		}
		return v, nil
	}
	ms, err := c.opts.Store.ListMailboxes(ctx, d)
	if q != "" {
		kept := ms[:0]
		for _, m := range ms {
			if strings.Contains(strings.ToLower(m.Address.Mailbox), q) {
				kept = append(kept, m)
			}
		}
		ms = kept
	}
	lo, hi, p := paginate(len(ms), page, ConsoleMailboxesPerPage, link)
	v.Pager = p
	v.Mailboxes = ms[lo:hi]
	return v, err
}

// mailboxAction adds, deletes, locks or unlocks a mailbox, changes its
// password or sets its quota.
func (c *Console) mailboxAction(r *http.Request) (string, outcome, *view) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	cfg := c.cfg.Load()
	action := r.PostForm.Get("action")
	var confirm *view
	do := func() outcome {
		d, err := store.CanonicalDomain(r.PathValue("domain"))
		if err != nil {
			return outcome{err: err, code: http.StatusNotFound}
		}
		a, err := store.ParseAddress(strings.TrimSpace(r.PostForm.Get("mailbox"))+"@"+d, "")
		if err != nil {
			return outcome{err: err, code: http.StatusBadRequest}
		}
		pw := r.PostForm.Get("password")
		if len(pw) > ConsoleMaxPassword {
			return outcome{err: fmt.Errorf("the password is longer than %d octets", ConsoleMaxPassword), code: http.StatusBadRequest}
		}
		st := c.opts.Store
		switch action {
		case "add":
			if err := st.CreateMailbox(ctx, a, pw); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "add", a.String(), "", "mailbox")
			o := outcome{flash: "Added mailbox " + a.String() + "."}
			if pw == "" && cfg.Auth.Method == "passwordfile" {
				o.warnings = []string{a.String() + " has no password; with auth.method = passwordfile it cannot log in until its password is set"}
			}
			return o
		case "delete":
			target := "mailbox " + a.String()
			if !c.confirmed(target, r.PostForm.Get("confirm"), time.Now()) {
				info, err := st.Mailbox(ctx, a)
				if err != nil {
					return outcome{err: err}
				}
				confirm = c.confirmPage("Delete mailbox "+a.String()+"?",
					[]string{fmt.Sprintf("Its %d message(s), %s, are deleted with it.", info.Messages, sizeText(info.Bytes)),
						"Mail sent to " + a.String() + " afterwards is refused."},
					"/console/domains/"+d, "/console/domains/"+d, target,
					[]field{{"mailbox", a.Mailbox}})
				return outcome{}
			}
			if err := st.DeleteMailbox(ctx, a); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "delete", a.String(), "mailbox", "")
			return outcome{flash: "Deleted mailbox " + a.String() + "."}
		case "lock":
			if err := st.LockMailbox(ctx, a); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "lock", a.String(), "unlocked", "locked")
			return outcome{flash: "Locked mailbox " + a.String() + "."}
		case "unlock":
			if err := st.UnlockMailbox(ctx, a); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "unlock", a.String(), "locked", "unlocked")
			return outcome{flash: "Unlocked mailbox " + a.String() + "."}
		case "password":
			if pw == "" {
				return outcome{err: errors.New("the password is empty"), code: http.StatusBadRequest}
			}
			if _, err := st.Mailbox(ctx, a); err != nil {
				return outcome{err: err}
			}
			if err := st.SetPassword(ctx, a, pw); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "password", a.String(), audit.Hidden, audit.Hidden)
			o := outcome{flash: "Changed the password of " + a.String() + "."}
			if cfg.Auth.Method != "passwordfile" {
				o.warnings = []string{"auth.method is " + cfg.Auth.Method + ": the password-file password is not used for logins"}
			}
			return o
		case "quota":
			in := strings.TrimSpace(r.PostForm.Get("quota"))
			var bytes int64
			if !strings.EqualFold(in, "none") {
				z, err := config.ParseSize(in)
				if err != nil {
					return outcome{err: fmt.Errorf("quota: %w", err), code: http.StatusBadRequest}
				}
				bytes = int64(z)
			}
			oldQuota, err := st.Quota(ctx, a)
			if err != nil {
				return outcome{err: err}
			}
			if err := st.SetQuota(ctx, a, bytes); err != nil {
				return outcome{err: err}
			}
			c.audit(r, "quota", a.String(), quotaText(oldQuota), quotaText(bytes))
			_, used, err := st.Usage(ctx, a)
			if err != nil {
				return outcome{err: err}
			}
			return outcome{flash: fmt.Sprintf("Quota of %s set to %s (%d bytes used).", a, quotaText(bytes), used)}
		}
		return outcome{err: fmt.Errorf("unknown action %q", action), code: http.StatusBadRequest}
	}
	o := do()
	if confirm != nil && o.err == nil {
		return "confirm", o, confirm
	}
	v, err := c.mailboxesView(ctx, r.PathValue("domain"), r.PostForm.Get("q"), pageArg(r))
	if err != nil && o.err == nil {
		o.err = err
	}
	return "mailboxes", o, v
}

// --- Formatting -------------------------------------------------------------

// settingGroup is one table of the configuration file on the server page.
type settingGroup struct {
	ID, Title, Intro string
	Settings         []config.KV
}

// settingTables names the tables of the file, in file order.
var settingTables = map[string][2]string{
	"":           {"General", "The mail root, the node number, logging and the greeting."},
	"auth":       {"Authentication", "How logins are checked, slowed down and banned; password hashes and the auth queue."},
	"pop3":       {"POP3 service", "Listeners, the session and worker pools, and the time limits of a session."},
	"smtp":       {"SMTP and delivery", "Listeners that take mail in, their limits, and the delivery service."},
	"tls":        {"TLS", "The certificate and the handshake of POP3S, STLS and SMTP STARTTLS."},
	"admin":      {"Administration", "The admin listener with this console, /metrics and the API."},
	"limits":     {"Protocol limits", "Per-connection and per-network limits of the POP3 service."},
	"quota":      {"Quotas", "Defaults for mailboxes without a quota of their own."},
	"ldap":       {"Directory (LDAP)", "The directory of auth.method = directory."},
	"submission": {"Submission", "Listeners and limits for the service's own users sending mail (SMTP AUTH)."},
	"outbound":   {"Outbound delivery", "The agent that sends submitted mail to other domains: MX or smarthost, retries, DKIM."},
	"oauth":      {"OAuth bearer tokens", "The issuer whose signed tokens OAUTHBEARER and XOAUTH2 accept."},
}

// groupSettings splits the settings by table, in file order.
func groupSettings(kv []config.KV) []settingGroup {
	var out []settingGroup
	for _, s := range kv {
		table, _, ok := strings.Cut(s.Key, ".")
		if !ok {
			table = ""
		}
		if len(out) == 0 || out[len(out)-1].ID != "settings-"+table {
			t := settingTables[table]
			if t[0] == "" {
				t = [2]string{"[" + table + "]", ""}
			}
			out = append(out, settingGroup{ID: "settings-" + table, Title: t[0], Intro: t[1]})
		}
		g := &out[len(out)-1]
		g.Settings = append(g.Settings, s)
	}
	if len(out) > 0 && out[0].ID == "settings-" {
		out[0].ID = "settings-general"
	}
	return out
}

// whenText writes a time for the queue viewer; the zero time is "—".
func whenText(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func quotaText(q int64) string {
	if q == 0 {
		return "none"
	}
	return config.Size(q).String()
}

// sizeText writes an octet count for people: 1.5 MB.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "KMGTP"[exp])
}
