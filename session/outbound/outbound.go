// Package outbound is the outbound delivery agent's transport: it sends a
// queued message to the servers of its recipients' domains over SMTP
// (RFC 5321), for the delivery service (session/delivery) working on the
// outbound queue.
//
// Routing:
//   - without a smarthost, each recipient domain's MX records are looked
//     up (RFC 5321 §5.1) and tried in order of preference; a domain
//     without MX records but with an address record is its own mail
//     server (the implicit MX); a domain whose only MX is "." accepts no
//     mail (null MX, RFC 7505) and fails at once with 5.1.10; a domain
//     that does not exist fails with 5.1.2. Lookups go to
//     outbound.resolver when set, else the system's resolver;
//   - with outbound.smarthost every message goes to that host, with AUTH
//     PLAIN (RFC 4954) when a user is set and implicit TLS (RFC 8314) or
//     STARTTLS when asked for.
//
// Opportunistic TLS (RFC 7435): STARTTLS (RFC 3207) is used whenever the
// server offers it, without certificate checks; a handshake that fails
// is followed by one more connection in plaintext. A smarthost with AUTH
// requires TLS.
//
// A destination (a mail server's host name, or the smarthost) has at most
// outbound.max_per_destination conversations at once; more wait for a
// free one.
//
// Replies: 2xx is delivered, 4xx (and a connection that fails or goes
// silent) temporary, 5xx permanent, each recipient with the status and
// text the server gave.
package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/session/delivery"
)

// Defaults of Options.
const (
	DefaultMXPort            = 25
	DefaultMaxPerDestination = 4
	DefaultConnectTimeout    = 30 * time.Second
	DefaultTimeout           = 10 * time.Minute
)

// TLS modes of a smarthost.
const (
	SmarthostOpportunistic = ""         // STARTTLS when offered
	SmarthostSTARTTLS      = "starttls" // STARTTLS required
	SmarthostImplicit      = "tls"      // implicit TLS (RFC 8314)
)

var (
	mConnOK      = metrics.GetOrCreateCounter(`smtp_outbound_connections_total{result="ok"}`)
	mConnFail    = metrics.GetOrCreateCounter(`smtp_outbound_connections_total{result="failed"}`)
	mTLS         = metrics.GetOrCreateCounter(`smtp_outbound_starttls_total{result="ok"}`)
	mTLSFail     = metrics.GetOrCreateCounter(`smtp_outbound_starttls_total{result="failed"}`)
	mNullMX      = metrics.GetOrCreateCounter(`smtp_outbound_lookups_total{result="null_mx"}`)
	mNoDomain    = metrics.GetOrCreateCounter(`smtp_outbound_lookups_total{result="no_domain"}`)
	mImplicitMX  = metrics.GetOrCreateCounter(`smtp_outbound_lookups_total{result="implicit_mx"}`)
	mMX          = metrics.GetOrCreateCounter(`smtp_outbound_lookups_total{result="mx"}`)
	mLookupError = metrics.GetOrCreateCounter(`smtp_outbound_lookups_total{result="error"}`)
)

// Options configure the transport.
type Options struct {
	Hostname string // EHLO name; empty: the host name
	// Resolver is "host:port" of the DNS server to ask; empty: the system's.
	Resolver string
	// MXPort is the port of mail servers found by MX look-up; 0: 25.
	MXPort int
	// Smarthost is "host:port" every message goes to; empty: MX look-up.
	Smarthost         string
	SmarthostUser     string
	SmarthostPassword string
	SmarthostTLS      string // SmarthostOpportunistic, SmarthostSTARTTLS or SmarthostImplicit
	// MaxPerDestination bounds the conversations with one server at once;
	// 0: DefaultMaxPerDestination.
	MaxPerDestination int
	ConnectTimeout    time.Duration // per connection attempt; 0: DefaultConnectTimeout
	Timeout           time.Duration // one whole conversation; 0: DefaultTimeout
	// Sign, when set, returns header fields to prepend to the message
	// (DKIM-Signature) for the sender's domain; it reads the message.
	Sign   func(from string, msg io.Reader) (string, error)
	Logger *slog.Logger // nil: discard
}

func (o Options) withDefaults() Options {
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
		if o.Hostname == "" {
			o.Hostname = "localhost"
		}
	}
	if o.MXPort <= 0 {
		o.MXPort = DefaultMXPort
	}
	if o.MaxPerDestination <= 0 {
		o.MaxPerDestination = DefaultMaxPerDestination
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Transport is a delivery.Transport over SMTP. It is safe for concurrent use.
type Transport struct {
	opts atomic.Pointer[Options]

	mu   sync.Mutex
	busy map[string]int // conversations open per destination
	free *sync.Cond
}

var _ delivery.Transport = (*Transport)(nil)

// New makes a transport.
func New(opts Options) *Transport {
	t := &Transport{busy: make(map[string]int)}
	t.free = sync.NewCond(&t.mu)
	t.SetOptions(opts)
	return t
}

// SetOptions applies changed options to the conversations started afterwards.
func (t *Transport) SetOptions(opts Options) {
	o := opts.withDefaults()
	t.opts.Store(&o)
	t.mu.Lock()
	t.free.Broadcast()
	t.mu.Unlock()
}

func (t *Transport) o() *Options { return t.opts.Load() }

// Busy returns the conversations open with a destination (tests).
func (t *Transport) Busy(dest string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.busy[dest]
}

// acquire waits for a free conversation slot with dest.
func (t *Transport) acquire(ctx context.Context, dest string) error {
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		t.free.Broadcast()
		t.mu.Unlock()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.busy[dest] >= t.o().MaxPerDestination {
		if err := ctx.Err(); err != nil {
			return err
		}
		t.free.Wait()
	}
	t.busy[dest]++
	return nil
}

func (t *Transport) release(dest string) {
	t.mu.Lock()
	if t.busy[dest]--; t.busy[dest] <= 0 {
		delete(t.busy, dest)
	}
	t.free.Broadcast()
	t.mu.Unlock()
}

func (t *Transport) resolver() *net.Resolver {
	o := t.o()
	if o.Resolver == "" {
		return net.DefaultResolver
	}
	addr := o.Resolver
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// Send sends the message to each recipient's domain, one conversation per
// domain, and returns a result per recipient in order.
func (t *Transport) Send(ctx context.Context, from string, rcpts []string, open func() (io.ReadCloser, error)) []Result {
	out := make([]Result, len(rcpts))
	byDomain := make(map[string][]int)
	var order []string
	for i, r := range rcpts {
		at := strings.LastIndexByte(r, '@')
		if at < 0 {
			out[i] = Result{Status: "5.1.3", Reason: "bad recipient address"}
			continue
		}
		d := strings.ToLower(r[at+1:])
		if _, ok := byDomain[d]; !ok {
			order = append(order, d)
		}
		byDomain[d] = append(byDomain[d], i)
	}
	for _, d := range order {
		idx := byDomain[d]
		list := make([]string, len(idx))
		for k, i := range idx {
			list[k] = rcpts[i]
		}
		res := t.sendDomain(ctx, d, from, list, open)
		for k, i := range idx {
			out[i] = res[k]
		}
	}
	return out
}

// Result is delivery.Result.
type Result = delivery.Result

func all(n int, r Result) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// route is one server to try.
type route struct {
	host string
	port int
}

// routes finds the servers of a domain (RFC 5321 §5.1); a non-nil Result
// ends the attempt for all its recipients.
func (t *Transport) routes(ctx context.Context, domain string) ([]route, *Result) {
	o := t.o()
	if o.Smarthost != "" {
		h, p, _ := net.SplitHostPort(o.Smarthost)
		port, _ := strconv.Atoi(p)
		return []route{{host: h, port: port}}, nil
	}
	r := t.resolver()
	mxs, err := r.LookupMX(ctx, domain)
	if err == nil && len(mxs) > 0 {
		if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
			mNullMX.Inc()
			return nil, &Result{Status: "5.1.10", Reason: "the domain " + domain + " accepts no mail (null MX, RFC 7505)"}
		}
		mMX.Inc()
		var out []route
		for _, mx := range mxs {
			h := strings.TrimSuffix(mx.Host, ".")
			if h == "" {
				continue // a null MX beside others is ignored (RFC 7505 §3)
			}
			out = append(out, route{host: h, port: o.MXPort})
		}
		return out, nil
	}
	var de *net.DNSError
	if err != nil && !(errors.As(err, &de) && de.IsNotFound) {
		mLookupError.Inc()
		return nil, &Result{Temp: true, Status: "4.4.3", Reason: fmt.Sprintf("MX look-up for %s failed: %v", domain, err)}
	}
	// No MX records: the domain itself, if it has an address (RFC 5321 §5.1).
	ips, err := r.LookupIPAddr(ctx, domain)
	if err != nil {
		if errors.As(err, &de) && de.IsNotFound {
			mNoDomain.Inc()
			return nil, &Result{Status: "5.1.2", Reason: "the domain " + domain + " has no mail server (no MX and no address record)"}
		}
		mLookupError.Inc()
		return nil, &Result{Temp: true, Status: "4.4.3", Reason: fmt.Sprintf("address look-up for %s failed: %v", domain, err)}
	}
	if len(ips) == 0 {
		mNoDomain.Inc()
		return nil, &Result{Status: "5.1.2", Reason: "the domain " + domain + " has no mail server"}
	}
	mImplicitMX.Inc()
	return []route{{host: domain, port: o.MXPort}}, nil
}

// sendDomain delivers to the recipients of one domain, trying its servers
// in order until one gives answers.
func (t *Transport) sendDomain(ctx context.Context, domain, from string, rcpts []string, open func() (io.ReadCloser, error)) []Result {
	routes, res := t.routes(ctx, domain)
	if res != nil {
		return all(len(rcpts), *res)
	}
	last := Result{Temp: true, Status: "4.4.1", Reason: "no mail server of " + domain + " could be reached"}
	for _, rt := range routes {
		if ctx.Err() != nil {
			break
		}
		dest := net.JoinHostPort(rt.host, strconv.Itoa(rt.port))
		if err := t.acquire(ctx, dest); err != nil {
			break
		}
		out, next := t.converse(ctx, dest, rt.host, from, rcpts, open, true)
		if next && out[0].Status == statusTLS {
			// A STARTTLS handshake that failed: once more in plaintext (RFC 7435 §4).
			out, next = t.converse(ctx, dest, rt.host, from, rcpts, open, false)
		}
		t.release(dest)
		if !next {
			return out
		}
		last = out[0]
	}
	return all(len(rcpts), last)
}

// statusTLS marks a failed opportunistic STARTTLS in converse's answer.
const statusTLS = "4.7.5-starttls"

// replyResult turns a server's reply into a Result.
func replyResult(err error, host string) Result {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		st := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		if se.EnhancedCode == gosmtp.NoEnhancedCode || se.EnhancedCode[0] == 0 {
			st = fmt.Sprintf("%d.0.0", se.Code/100)
		}
		return Result{
			Temp:   se.Code < 500,
			Status: st,
			Reason: fmt.Sprintf("%s said: %d %s %s", host, se.Code, st, se.Message),
			Host:   host,
		}
	}
	return Result{Temp: true, Status: "4.4.2", Reason: fmt.Sprintf("conversation with %s failed: %v", host, err), Host: host}
}

// converse runs one SMTP conversation. next reports that the server gave
// no per-recipient answer (unreachable, refused the session or the
// sender temporarily): the next server may be tried; out[0] then says why
// (Status "tls" asks for a retry without STARTTLS).
func (t *Transport) converse(ctx context.Context, dest, host, from string, rcpts []string, open func() (io.ReadCloser, error), tryTLS bool) (out []Result, next bool) {
	o := t.o()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	d := net.Dialer{Timeout: o.ConnectTimeout, Resolver: t.resolver()}
	conn, err := d.DialContext(ctx, "tcp", dest)
	if err != nil {
		mConnFail.Inc()
		return []Result{{Temp: true, Status: "4.4.1", Reason: fmt.Sprintf("cannot connect to %s: %v", dest, err)}}, true
	}
	mConnOK.Inc()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	smarthost := o.Smarthost != ""
	tlsCfg := &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // opportunistic TLS, RFC 7435
	if smarthost && o.SmarthostTLS == SmarthostImplicit {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			mTLSFail.Inc()
			return []Result{{Temp: true, Status: "4.7.5", Reason: fmt.Sprintf("TLS with %s failed: %v", dest, err)}}, true
		}
		conn = tc
	}
	isTLS := smarthost && o.SmarthostTLS == SmarthostImplicit
	if !isTLS {
		// go-smtp's client (v0.25) has no STARTTLS of its own after EHLO:
		// the greeting, EHLO and STARTTLS happen here, and the client then
		// starts on the connection as it is (see greetedConn).
		pc, tlsOn, res := t.prelude(ctx, conn, dest, host, tlsCfg, tryTLS, smarthost && o.SmarthostTLS == SmarthostSTARTTLS)
		if res != nil {
			conn.Close()
			return []Result{*res}, true
		}
		conn, isTLS = pc, tlsOn
	}
	c := gosmtp.NewClient(conn)
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		c.CommandTimeout, c.SubmissionTimeout = left, left
	}
	if err := c.Hello(o.Hostname); err != nil {
		r := replyResult(err, host)
		return []Result{r}, true
	}
	if smarthost && o.SmarthostUser != "" {
		if !isTLS {
			return []Result{{Temp: true, Status: "4.7.5", Reason: "no TLS with " + dest + ": the smarthost password is not sent in the clear"}}, true
		}
		if err := c.Auth(gosasl.NewPlainClient("", o.SmarthostUser, o.SmarthostPassword)); err != nil {
			r := replyResult(err, host)
			r.Temp = true // a refused login is the operator's to mend; the mail waits
			return []Result{r}, true
		}
	}
	if err := c.Mail(from, nil); err != nil {
		r := replyResult(err, host)
		if r.Temp {
			return []Result{r}, true
		}
		return all(len(rcpts), r), false
	}
	out = make([]Result, len(rcpts))
	var accepted []int
	for i, rc := range rcpts {
		if err := c.Rcpt(rc, nil); err != nil {
			out[i] = replyResult(err, host)
			if !errors.As(err, new(*gosmtp.SMTPError)) {
				// The connection broke: everything left is temporary.
				for j := i; j < len(rcpts); j++ {
					out[j] = out[i]
				}
				for _, a := range accepted {
					out[a] = out[i]
				}
				return out, false
			}
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		_ = c.Quit()
		return out, false
	}
	r, err := open()
	if err != nil {
		res := Result{Temp: true, Status: "4.3.0", Reason: fmt.Sprintf("cannot read the queued message: %v", err)}
		for _, a := range accepted {
			out[a] = res
		}
		return out, false
	}
	defer r.Close()
	w, err := c.Data()
	if err == nil {
		err = t.writeMessage(w, from, r, open)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	res := Result{OK: true, Host: host}
	if err != nil {
		res = replyResult(err, host)
	}
	for _, a := range accepted {
		out[a] = res
	}
	if err == nil {
		// The server took responsibility with its reply to DATA (RFC 5321
		// §6.1): a failed QUIT changes nothing.
		_ = c.Quit()
	}
	return out, false
}

// writeMessage writes the message, prefixed with the signature fields
// when signing is on (the signer reads the message once more).
func (t *Transport) writeMessage(w io.Writer, from string, r io.Reader, open func() (io.ReadCloser, error)) error {
	o := t.o()
	if o.Sign != nil {
		sr, err := open()
		if err != nil {
			return err
		}
		sig, err := o.Sign(from, bufio.NewReader(sr))
		sr.Close()
		if err != nil {
			o.Logger.Warn("cannot sign the message; sending it unsigned", "err", err)
		} else if _, err := io.WriteString(w, sig); err != nil {
			return err
		}
	}
	_, err := io.Copy(w, r)
	return err
}

// prelude reads the greeting, sends EHLO and, when the server offers it
// and tryTLS is set, runs STARTTLS (RFC 3207). It returns the connection
// for go-smtp's client, which reads a greeting first: a copy of the
// server's is replayed to it, and its own EHLO follows (a second EHLO is
// allowed, RFC 5321 §4.1.4). A non-nil Result ends the conversation.
func (t *Transport) prelude(ctx context.Context, conn net.Conn, dest, host string, cfg *tls.Config, tryTLS, required bool) (net.Conn, bool, *Result) {
	o := t.o()
	tp := textproto.NewConn(conn)
	code, msg, err := tp.ReadResponse(220)
	if err != nil {
		r := protoResult(code, msg, err, host)
		return nil, false, &r
	}
	greeting := fmt.Sprintf("220 %s\r\n", strings.ReplaceAll(strings.SplitN(msg, "\n", 2)[0], "\r", ""))
	if err := tp.PrintfLine("EHLO %s", o.Hostname); err != nil {
		r := protoResult(0, "", err, host)
		return nil, false, &r
	}
	_, msg, err = tp.ReadResponse(250)
	offered := false
	if err == nil {
		for _, l := range strings.Split(msg, "\n") {
			if strings.EqualFold(strings.TrimSpace(l), "STARTTLS") {
				offered = true
			}
		}
	}
	if required && !offered {
		return nil, false, &Result{Temp: true, Status: "4.7.5", Reason: dest + " does not offer STARTTLS"}
	}
	if !offered || !tryTLS {
		return &greetedConn{Conn: conn, r: io.MultiReader(strings.NewReader(greeting), tp.R)}, false, nil
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		r := protoResult(0, "", err, host)
		return nil, false, &r
	}
	if code, msg, err = tp.ReadResponse(220); err != nil {
		mTLSFail.Inc()
		st := statusTLS
		if required {
			st = "4.7.5"
		}
		return nil, false, &Result{Temp: true, Status: st, Reason: fmt.Sprintf("%s refused STARTTLS: %d %s", dest, code, msg)}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		mTLSFail.Inc()
		o.Logger.Info("STARTTLS handshake failed", "host", dest, "err", err)
		st := statusTLS
		if required {
			st = "4.7.5"
		}
		return nil, false, &Result{Temp: true, Status: st, Reason: fmt.Sprintf("STARTTLS with %s failed: %v", dest, err)}
	}
	mTLS.Inc()
	return &greetedConn{Conn: tc, r: io.MultiReader(strings.NewReader(greeting), tc)}, true, nil
}

// protoResult turns a reply read by net/textproto into a Result.
func protoResult(code int, msg string, err error, host string) Result {
	if code >= 400 {
		return replyResult(&gosmtp.SMTPError{Code: code, Message: msg}, host)
	}
	return replyResult(err, host)
}

// greetedConn replays the greeting, then reads the connection.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }
