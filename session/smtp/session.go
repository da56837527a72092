package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/store"
)

// rcpt is one accepted RCPT: the path as the client wrote it (the key of
// go-smtp's LMTP status collector) and the mailbox it names.
type rcpt struct {
	raw    string
	addr   store.Address
	quota  int64  // effective quota at RCPT time; 0: none
	remote string // a recipient of another domain (submission only): local@domain; "" for a local one
}

// session is one SMTP or LMTP connection's transaction state.
type session struct {
	s      *Service
	conn   *gosmtp.Conn
	net    transactionMarker // the network connection's budget; nil when it has none
	lmtp   bool
	remote string
	log    *slog.Logger

	// submission: a session on a submission listener (submission.go).
	submission bool

	// mu guards the transaction state below. With CHUNKING (RFC 3030)
	// go-smtp runs Data in a goroutine of its own while it goes on
	// reading commands, so an RSET or the end of the connection calls
	// Reset while Data may still be reading it. Data works on a snapshot.
	mu      sync.Mutex
	inData  chan struct{} // closed when the running Data call returns; nil: none
	fromSet bool
	from    string
	utf8    bool // MAIL FROM carried SMTPUTF8 (RFC 6531)
	rcpts   []rcpt
	// The submission session's login, kept across transactions.
	authed    bool
	user      store.Address
	authFails int
}

// txn is a snapshot of the transaction taken when the data starts.
type txn struct {
	from  string
	rcpts []rcpt
}

func (ss *session) Reset() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.fromSet = false
	ss.from = ""
	ss.utf8 = false
	ss.rcpts = nil
}

// snapshot marks a Data call as running and returns the transaction; ok
// is false without MAIL or RCPT. The caller calls the returned done.
func (ss *session) snapshot() (t txn, ok bool, done func()) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ch := make(chan struct{})
	ss.inData = ch
	done = func() {
		ss.mu.Lock()
		if ss.inData == ch {
			ss.inData = nil
		}
		ss.mu.Unlock()
		close(ch)
	}
	if !ss.fromSet || len(ss.rcpts) == 0 {
		return txn{}, false, done
	}
	return txn{from: ss.from, rcpts: append([]rcpt(nil), ss.rcpts...)}, true, done
}

// waitData waits for a Data call of an aborted BDAT transaction to
// return. go-smtp (v0.25) hands that call's result to whichever BDAT
// transaction is current when it returns, so a new transaction must not
// start before it has (the call ends promptly: its input is closed).
func (ss *session) waitData() {
	ss.mu.Lock()
	ch := ss.inData
	ss.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (ss *session) Logout() error { return nil }

func (ss *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), ss.s.o().StoreTimeout)
}

// cleanPath reports whether a path is free of control characters and
// within the length limit; it reaches headers and the queue's envelope.
func cleanPath(p string) bool {
	if len(p) > maxPath {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// asciiOnly reports whether s is 7-bit.
func asciiOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Mail, Rcpt, Data and LMTPData are go-smtp's calls: each runs the
// command and hands its outcome to reply.

func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	return ss.reply("", ss.mail(from, opts))
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if ss.submission {
		return ss.reply("", ss.submissionRcpt(to))
	}
	return ss.reply("", ss.rcpt(to))
}

func (ss *session) Data(r io.Reader) error {
	if ss.submission {
		id, err := ss.submissionData(r)
		return ss.reply(id, err)
	}
	id, err := ss.data(r)
	return ss.reply(id, err)
}

// mail starts a transaction (RFC 5321 §4.1.1.2).
func (ss *session) mail(from string, opts *gosmtp.MailOptions) error {
	ss.waitData()
	ss.Reset()
	if ss.submission {
		if err := ss.submissionMail(from); err != nil {
			return err
		}
	}
	if !cleanPath(from) || (from != "" && !strings.Contains(from, "@")) || !utf8.ValidString(from) {
		return errBadSender
	}
	smtputf8 := opts != nil && opts.UTF8
	if !smtputf8 && !asciiOnly(from) {
		return errNeedUTF8 // RFC 6531 §3.4
	}
	if opts != nil && opts.Size > ss.s.o().MaxMessageSize {
		mDataTooBig.Inc()
		return errTooBig // RFC 1870 §6.1
	}
	if ss.net != nil {
		ss.net.TransactionStarted()
	}
	ss.mu.Lock()
	ss.fromSet = true
	ss.from = from
	ss.utf8 = smtputf8
	ss.mu.Unlock()
	return nil
}

// rcpt accepts an existing mailbox of a served domain (RFC 5321 §4.1.1.3).
func (ss *session) rcpt(to string) error {
	o := ss.s.o()
	ss.mu.Lock()
	n, smtputf8 := len(ss.rcpts), ss.utf8
	ss.mu.Unlock()
	if n >= o.MaxRecipients {
		mRcptLimit.Inc()
		return errTooMany
	}
	if !cleanPath(to) || !utf8.ValidString(to) {
		mRcptUnknown.Inc()
		return errBadAddress
	}
	if !smtputf8 && !asciiOnly(to) {
		mRcptUnknown.Inc()
		return errNeedUTF8 // RFC 6531 §3.4
	}
	i := strings.LastIndexByte(to, '@')
	if i <= 0 || i == len(to)-1 {
		mRcptUnknown.Inc()
		return errBadAddress
	}
	local, dom := to[:i], strings.TrimSuffix(to[i+1:], ".")
	domain, err := store.CanonicalDomain(dom)
	if err != nil {
		// An address literal or a name no served domain can have.
		return ss.relayDenied(to)
	}
	ctx, cancel := ss.ctx()
	defer cancel()
	addr, err := store.ParseAddress(local+"@"+domain, "")
	if err != nil {
		// No mailbox can have this name; is the domain ours?
		if _, derr := ss.s.st.Domain(ctx, domain); derr != nil && !errors.Is(derr, store.ErrNoSuchDomain) {
			mRcptError.Inc()
			return fmt.Errorf("domain lookup for %s: %w", domain, derr)
		} else if derr != nil {
			return ss.relayDenied(to)
		}
		mRcptUnknown.Inc()
		return errNoMailbox
	}
	// Quota tells an unknown domain from an unknown mailbox without the
	// cost of the domain's or the mailbox's totals, and gives the quota
	// for the check at DATA.
	quota, err := ss.s.st.Quota(ctx, addr)
	if err != nil {
		switch {
		case errors.Is(err, store.ErrNoSuchDomain):
			return ss.relayDenied(to)
		case errors.Is(err, store.ErrNoSuchMailbox), errors.Is(err, store.ErrInvalidName):
			mRcptUnknown.Inc()
			return errNoMailbox
		}
		mRcptError.Inc()
		return fmt.Errorf("mailbox lookup for %s: %w", addr, err)
	}
	mRcptOK.Inc()
	if quota == 0 {
		quota = o.DomainQuotaDefault
	}
	ss.mu.Lock()
	ss.rcpts = append(ss.rcpts, rcpt{raw: to, addr: addr, quota: quota})
	ss.mu.Unlock()
	return nil
}

// relayDenied refuses a recipient of a domain not served here. On the
// SMTP listeners that is a relay attempt: counted and logged with the
// client's address (a submission session queues such recipients for
// outbound delivery instead, see submissionRcpt).
func (ss *session) relayDenied(to string) error {
	if !ss.submission {
		mRcptRelay.Inc()
		ss.log.Warn("relay attempt refused", "rcpt", sanitize(to))
	}
	return errRelayDenied
}

// data receives the message for every recipient, one reply for all
// (RFC 5321 §4.1.1.4), and returns its queue id.
func (ss *session) data(r io.Reader) (string, error) {
	t, ok, done := ss.snapshot()
	defer done()
	if !ok {
		return "", errNoRcpts
	}
	sp, size, err := ss.spool(r, t)
	if err != nil {
		return "", err
	}
	defer sp.Abort()
	rcpts := t.distinct(nil)
	if len(rcpts) == 1 {
		// A single recipient over quota is told now rather than by a report.
		if err := ss.checkQuota(rcpts[0], size); err != nil {
			return "", err
		}
	}
	return ss.commit(sp, t, rcpts)
}

// LMTPData receives the message and answers for each recipient (RFC 2033 §4.2).
func (ss *session) LMTPData(r io.Reader, status gosmtp.StatusCollector) error {
	t, ok, done := ss.snapshot()
	defer done()
	if !ok {
		return ss.reply("", errNoRcpts)
	}
	sp, size, err := ss.spool(r, t)
	if err != nil {
		return ss.reply("", err)
	}
	defer sp.Abort()
	refused := make(map[store.Address]error)
	for _, rc := range t.distinct(nil) {
		if err := ss.checkQuota(rc, size); err != nil {
			refused[rc.addr] = err
		}
	}
	rcpts := t.distinct(refused)
	var res error
	if len(rcpts) > 0 {
		res = ss.reply(ss.commit(sp, t, rcpts))
	}
	for _, rc := range t.rcpts {
		if err, ok := refused[rc.addr]; ok {
			status.SetStatus(rc.raw, ss.reply("", err))
		} else {
			status.SetStatus(rc.raw, res)
		}
	}
	return nil
}

// distinct returns the recipients, one per mailbox, minus skip.
func (t txn) distinct(skip map[store.Address]error) []rcpt {
	seen := make(map[store.Address]bool, len(t.rcpts))
	var out []rcpt
	for _, rc := range t.rcpts {
		if rc.remote != "" {
			continue
		}
		if seen[rc.addr] {
			continue
		}
		seen[rc.addr] = true
		if _, ok := skip[rc.addr]; !ok {
			out = append(out, rc)
		}
	}
	return out
}

// checkQuota refuses a message that would take a mailbox over its quota.
func (ss *session) checkQuota(rc rcpt, size int64) error {
	if rc.quota <= 0 {
		return nil
	}
	ctx, cancel := ss.ctx()
	defer cancel()
	_, used, err := ss.s.st.Usage(ctx, rc.addr)
	if err != nil {
		if errors.Is(err, store.ErrNoSuchMailbox) || errors.Is(err, store.ErrNoSuchDomain) {
			return errNoMailbox // deleted since RCPT
		}
		return fmt.Errorf("quota lookup for %s: %w", rc.addr, err)
	}
	// The copy also carries the delivery service's Return-Path and queue
	// marker headers: count them generously.
	const copyHeaders = maxPath + 100
	if used+size+copyHeaders > rc.quota {
		mDataOverQ.Inc()
		return errOverQuota
	}
	return nil
}

// spool reads the message into a queue spool, prefixed with the Received
// header, bare LF turned into CRLF. Nothing is queued unless commit runs.
func (ss *session) spool(r io.Reader, t txn) (store.Spool, int64, error) {
	sps, size, err := ss.spoolTo([]store.Queue{ss.s.q}, ss.received(t), r)
	if err != nil {
		return nil, 0, err
	}
	return sps[0], size, nil
}

// abortAll aborts spools.
func abortAll(sps []store.Spool) {
	for _, sp := range sps {
		sp.Abort()
	}
}

// spoolTo writes prefix and the message into one spool of each queue at
// once (a submitted message for local and remote recipients goes to both
// the mail queue and the outbound queue) and returns the spools and the
// size of one.
func (ss *session) spoolTo(qs []store.Queue, prefix string, r io.Reader) ([]store.Spool, int64, error) {
	o := ss.s.o()
	sps := make([]store.Spool, 0, len(qs))
	ws := make([]io.Writer, 0, len(qs))
	for _, q := range qs {
		sp, err := q.NewSpool()
		if err != nil {
			abortAll(sps)
			mDataError.Inc()
			return nil, 0, fmt.Errorf("cannot spool message: %w", err)
		}
		sps = append(sps, sp)
		ws = append(ws, sp)
	}
	var w io.Writer = ws[0]
	if len(ws) > 1 {
		w = io.MultiWriter(ws...)
	}
	sp := sps[0]
	if _, err := io.WriteString(w, prefix); err != nil {
		abortAll(sps)
		mDataError.Inc()
		return nil, 0, fmt.Errorf("cannot spool message: %w", err)
	}
	nw := &crlfWriter{w: w, limit: o.MaxMessageSize}
	buf := make([]byte, 32<<10)
	_, err := io.CopyBuffer(nw, r, buf)
	if err == nil {
		err = nw.err
	}
	if err != nil {
		abortAll(sps)
		switch {
		case errors.Is(err, errSizeLimit), errors.Is(err, gosmtp.ErrDataTooLarge):
			mDataTooBig.Inc()
			return nil, 0, errTooBig
		case errors.Is(err, gosmtp.ErrTooLongLine):
			mDataError.Inc()
			return nil, 0, errLongLine
		}
		mDataError.Inc()
		var ne net.Error
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) || errors.Is(err, gosmtp.ErrDataReset) {
			// The client went away or reset: nothing the server did wrong.
			ss.log.Info("message data cut off", "err", err)
			return nil, 0, errTemp
		}
		return nil, 0, fmt.Errorf("cannot spool message: %w", err)
	}
	return sps, sp.Size(), nil
}

// commit queues the spooled message for addrs, wakes the delivery
// service and returns the queue id.
func (ss *session) commit(sp store.Spool, t txn, list []rcpt) (string, error) {
	if len(list) == 0 {
		return "", errNoRcpts
	}
	rcpts := make([]string, len(list))
	for i, rc := range list {
		rcpts[i] = rc.addr.String()
	}
	env := store.Envelope{
		From:     t.from,
		Rcpts:    rcpts,
		Received: time.Now(),
		Helo:     sanitize(ss.conn.Hostname()),
		Remote:   ss.remote,
	}
	id, err := sp.Commit(env)
	if err != nil {
		mDataError.Inc()
		return "", fmt.Errorf("cannot queue message: %w", err)
	}
	mReceived.Inc()
	mDataOK.Inc()
	ss.log.Info("message queued", "queue_id", id, "from", t.from, "rcpts", len(rcpts))
	ss.s.notify(id)
	return id, nil
}

// received builds the trace header (RFC 5321 §4.4, RFC 5322 §3.6.7):
// from the client's EHLO name and address, by this host, with the protocol
// (RFC 3848), for the single recipient, and the date.
func (ss *session) received(t txn) string {
	o := ss.s.o()
	helo := sanitize(ss.conn.Hostname())
	if helo == "" {
		helo = "unknown"
	}
	ip := ss.remote
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	proto := "ESMTP"
	if ss.lmtp {
		proto = "LMTP"
	}
	if _, ok := ss.conn.TLSConnectionState(); ok && !ss.lmtp {
		proto = "ESMTPS"
	}
	ss.mu.Lock()
	authed := ss.authed
	ss.mu.Unlock()
	if ss.submission && authed {
		proto += "A" // RFC 3848 §3: ESMTPA, ESMTPSA
	}
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(helo)
	if ip != "" {
		b.WriteString(" ([" + ip + "])")
	}
	b.WriteString("\r\n\tby " + o.Hostname + " with " + proto)
	// One mailbox named twice (say in two spellings) is one recipient.
	if d := t.distinct(nil); len(d) == 1 && len(t.remotes()) == 0 {
		b.WriteString("\r\n\tfor <" + d[0].addr.String() + ">")
	} else if r := t.remotes(); len(r) == 1 && len(d) == 0 {
		b.WriteString("\r\n\tfor <" + r[0] + ">")
	}
	b.WriteString("; " + time.Now().Format(time.RFC1123Z) + "\r\n")
	return b.String()
}

// sanitize keeps a client-supplied name safe for a header: printable
// ASCII without spaces, at most 255 octets.
func sanitize(s string) string {
	if len(s) > 255 {
		s = s[:255]
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' {
			return -1
		}
		return r
	}, s)
}

var errSizeLimit = errors.New("message size limit")

// crlfWriter turns bare LF into CRLF (the store keeps CRLF line endings,
// RFC 5322 §2.3) and stops past limit octets. It keeps its state across
// writes, so a CR at the end of one chunk pairs with a LF at the start of
// the next.
type crlfWriter struct {
	w      io.Writer
	limit  int64
	n      int64
	prevCR bool
	err    error
	out    []byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.out = c.out[:0]
	for _, b := range p {
		if b == '\n' && !c.prevCR {
			c.out = append(c.out, '\r')
		}
		c.out = append(c.out, b)
		c.prevCR = b == '\r'
	}
	c.n += int64(len(c.out))
	if c.limit > 0 && c.n > c.limit {
		c.err = errSizeLimit
		return 0, c.err
	}
	if _, err := c.w.Write(c.out); err != nil {
		c.err = err
		return 0, err
	}
	return len(p), nil
}
