package pop3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// Retention is an EXPIRE policy (RFC 2449 section 6.7): how long a
// retrieved message stays in the mailbox, counted from its first
// retrieval.
type Retention struct {
	// Never: messages are never expired (EXPIRE NEVER).
	Never bool
	// Days is the least number of days a retrieved message is kept; 0:
	// it is deleted when the session that retrieved it ends (EXPIRE 0).
	Days int
}

// ParseRetention reads "never" or a number of days.
func ParseRetention(s string) (Retention, error) {
	if strings.EqualFold(strings.TrimSpace(s), "never") {
		return Retention{Never: true}, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 36500 {
		return Retention{}, fmt.Errorf("%q is neither never nor a number of days 0..36500", s)
	}
	return Retention{Days: n}, nil
}

// String is the EXPIRE argument: NEVER or the days.
func (r Retention) String() string {
	if r.Never {
		return "NEVER"
	}
	return strconv.Itoa(r.Days)
}

// less orders retentions by how long they keep mail; NEVER keeps it longest.
func (r Retention) less(o Retention) bool {
	switch {
	case r.Never:
		return false
	case o.Never:
		return true
	}
	return r.Days < o.Days
}

// Policy is the service's RFC 2449 policies, per server, domain and
// mailbox. Domain keys are A-labels in lower case as the store keeps them;
// mailbox keys are mailbox@domain. A nil *Policy has none.
type Policy struct {
	// Expire is the server's retention; nil: messages of mailboxes without
	// a domain or mailbox retention are never expired, and when no
	// retention is configured at all EXPIRE is not advertised.
	Expire          *Retention
	ExpireDomains   map[string]Retention
	ExpireMailboxes map[string]Retention
	// LoginDelay is the least time between two logins of a mailbox
	// (LOGIN-DELAY, RFC 2449 section 6.8), in seconds; 0: none.
	LoginDelay        int
	LoginDelayDomains map[string]int
}

// expireConfigured reports whether any retention is set.
func (p *Policy) expireConfigured() bool {
	return p != nil && (p.Expire != nil || len(p.ExpireDomains) > 0 || len(p.ExpireMailboxes) > 0)
}

// RetentionFor returns the retention of a mailbox: its own, else its
// domain's, else the server's, else NEVER.
func (p *Policy) RetentionFor(a store.Address) Retention {
	if p == nil {
		return Retention{Never: true}
	}
	if r, ok := p.ExpireMailboxes[a.String()]; ok {
		return r
	}
	if r, ok := p.ExpireDomains[a.Domain]; ok {
		return r
	}
	if p.Expire != nil {
		return *p.Expire
	}
	return Retention{Never: true}
}

// expireAdvert is the EXPIRE argument before login: the one retention
// when all mailboxes share it, else the shortest followed by USER.
func (p *Policy) expireAdvert() string {
	all := Retention{Never: true}
	if p.Expire != nil {
		all = *p.Expire
	}
	low, varies := all, false
	for _, m := range []map[string]Retention{p.ExpireDomains, p.ExpireMailboxes} {
		for _, r := range m {
			if r != all {
				varies = true
			}
			if r.less(low) {
				low = r
			}
		}
	}
	if varies {
		return low.String() + " USER"
	}
	return low.String()
}

// loginDelayConfigured reports whether any login delay is set.
func (p *Policy) loginDelayConfigured() bool {
	if p == nil {
		return false
	}
	if p.LoginDelay > 0 {
		return true
	}
	for _, d := range p.LoginDelayDomains {
		if d > 0 {
			return true
		}
	}
	return false
}

// LoginDelayFor returns a mailbox's login delay in seconds: its domain's,
// else the server's.
func (p *Policy) LoginDelayFor(a store.Address) int {
	if p == nil {
		return 0
	}
	if d, ok := p.LoginDelayDomains[a.Domain]; ok {
		return d
	}
	return p.LoginDelay
}

// loginDelayAdvert is the LOGIN-DELAY argument before login: the one
// delay when all domains share it, else the shortest followed by USER.
func (p *Policy) loginDelayAdvert() string {
	low, varies := p.LoginDelay, false
	for _, d := range p.LoginDelayDomains {
		if d != p.LoginDelay {
			varies = true
		}
		low = min(low, d)
	}
	if varies {
		return strconv.Itoa(low) + " USER"
	}
	return strconv.Itoa(low)
}

// policyStore reports whether the store keeps what the policies need;
// without it neither EXPIRE nor LOGIN-DELAY is advertised or enforced.
func (s *Session) policyStore() bool {
	_, ok := s.opts.Store.(store.PolicyStore)
	return ok
}

// policyLines returns the EXPIRE and LOGIN-DELAY lines of CAPA: before
// login the service-wide form, after it the user's own values.
func (s *Session) policyLines() string {
	p := s.opts.Policy
	if !s.policyStore() {
		return ""
	}
	var b strings.Builder
	if p.expireConfigured() {
		if s.state == stateTransaction {
			fmt.Fprintf(&b, "EXPIRE %s\r\n", p.RetentionFor(s.addr))
		} else {
			fmt.Fprintf(&b, "EXPIRE %s\r\n", p.expireAdvert())
		}
	}
	if p.loginDelayConfigured() {
		if s.state == stateTransaction {
			fmt.Fprintf(&b, "LOGIN-DELAY %d\r\n", p.LoginDelayFor(s.addr))
		} else {
			fmt.Fprintf(&b, "LOGIN-DELAY %s\r\n", p.loginDelayAdvert())
		}
	}
	return b.String()
}

// checkLoginDelay enforces LOGIN-DELAY on a mailbox just opened: a login
// sooner than the delay after the last one is refused; otherwise this
// login is recorded in the store, where every server sharing it sees it.
func (s *Session) checkLoginDelay(addr store.Address, mbox store.MailboxSession) *Error {
	delay := s.opts.Policy.LoginDelayFor(addr)
	ps, ok := mbox.(store.PolicyState)
	if delay <= 0 || !ok {
		return nil
	}
	now := s.now()
	if last := ps.LastLogin(); !last.IsZero() && now.Sub(last) < time.Duration(delay)*time.Second && now.Sub(last) > -time.Minute {
		return errLoginDelay
	}
	if err := ps.RecordLogin(now); err != nil {
		// The login goes on; the next one is judged by the older record.
		s.log.Error("cannot record the login for LOGIN-DELAY", "user", addr.String(), "err", err)
	}
	return nil
}

// expireAtQuit records the retrievals of this session and returns the
// messages whose retention has passed, to be deleted with the client's.
func (s *Session) expireAtQuit(ctx context.Context) []int {
	ps, ok := s.mbox.(store.PolicyState)
	if !ok || !s.opts.Policy.expireConfigured() {
		return nil
	}
	ret := s.opts.Policy.RetentionFor(s.addr)
	if ret.Never {
		return nil
	}
	now := s.now()
	keep := time.Duration(ret.Days) * 24 * time.Hour
	var expired, fresh []int
	for i, m := range s.msgs {
		if s.deleted[i] {
			continue
		}
		at := m.Retrieved
		if at.IsZero() && s.retrieved[i] {
			at = now
		}
		switch {
		case at.IsZero():
		case now.Sub(at) >= keep:
			expired = append(expired, i)
		case m.Retrieved.IsZero():
			fresh = append(fresh, i)
		}
	}
	if len(fresh) > 0 {
		if err := ps.MarkRetrieved(ctx, fresh, now); err != nil {
			// The messages stay until a later session retrieves them again.
			s.log.Error("cannot record retrieved messages for EXPIRE", "messages", len(fresh), "err", err)
		}
	}
	return expired
}

// SweepReport counts what one SweepExpired did.
type SweepReport struct {
	Mailboxes int // mailboxes looked at
	Skipped   int // in use or locked: their next session or sweep expires them
	Expired   int // messages deleted
}

// SweepExpired deletes, through the store, the retrieved messages whose
// retention has passed in every mailbox that is not in use: the messages
// of mailboxes nobody logs in to any more. Sessions expire messages at
// QUIT; the sweep does the same for mailboxes between sessions.
func SweepExpired(ctx context.Context, st store.Store, p *Policy, now time.Time, owner string, log *slog.Logger) (SweepReport, error) {
	var rep SweepReport
	if _, ok := st.(store.PolicyStore); !ok || !p.expireConfigured() {
		return rep, nil
	}
	domains, err := st.ListDomains(ctx)
	if err != nil {
		return rep, err
	}
	for _, d := range domains {
		boxes, err := st.ListMailboxes(ctx, d.Name)
		if errors.Is(err, store.ErrNoSuchDomain) {
			continue
		}
		if err != nil {
			return rep, err
		}
		for _, mb := range boxes {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			ret := p.RetentionFor(mb.Address)
			if ret.Never || mb.Messages == 0 || mb.InUse || mb.Locked {
				continue
			}
			rep.Mailboxes++
			n, err := sweepMailbox(ctx, st, mb.Address, ret, now, owner)
			switch {
			case errors.Is(err, store.ErrMailboxInUse), errors.Is(err, store.ErrMailboxLocked),
				errors.Is(err, store.ErrDomainLocked), errors.Is(err, store.ErrNoSuchMailbox),
				errors.Is(err, store.ErrNoSuchDomain):
				rep.Skipped++
			case err != nil:
				log.Warn("expire sweep: cannot expire messages", "user", mb.Address.String(), "err", err)
			default:
				rep.Expired += n
			}
		}
	}
	messagesExpired.Add(rep.Expired)
	return rep, nil
}

func sweepMailbox(ctx context.Context, st store.Store, a store.Address, ret Retention, now time.Time, owner string) (int, error) {
	ms, err := st.OpenSession(ctx, a, owner)
	if err != nil {
		return 0, err
	}
	keep := time.Duration(ret.Days) * 24 * time.Hour
	var expired []int
	for i, m := range ms.Messages() {
		if !m.Retrieved.IsZero() && now.Sub(m.Retrieved) >= keep {
			expired = append(expired, i)
		}
	}
	if len(expired) == 0 {
		return 0, ms.Close()
	}
	if err := ms.Commit(ctx, expired); err != nil {
		ms.Close()
		return 0, err
	}
	return len(expired), nil
}

// ParseRetentions reads "NAME=DAYS" or "NAME=never" entries: NAME is a
// domain, or with mailboxes set a mailbox@domain.
func ParseRetentions(entries []string, mailboxes bool) (map[string]Retention, error) {
	out := make(map[string]Retention, len(entries))
	for _, e := range entries {
		name, val, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not NAME=DAYS or NAME=never", e)
		}
		key, err := policyName(name, mailboxes)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e, err)
		}
		r, err := ParseRetention(val)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e, err)
		}
		out[key] = r
	}
	return out, nil
}

// ParseDelays reads "DOMAIN=SECONDS" entries.
func ParseDelays(entries []string) (map[string]int, error) {
	out := make(map[string]int, len(entries))
	for _, e := range entries {
		name, val, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not DOMAIN=SECONDS", e)
		}
		key, err := policyName(name, false)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e, err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || n < 0 || n > 31*24*3600 {
			return nil, fmt.Errorf("%q: the delay must be 0..2678400 seconds", e)
		}
		out[key] = n
	}
	return out, nil
}

// policyName returns the canonical domain or mailbox@domain.
func policyName(name string, mailbox bool) (string, error) {
	name = strings.TrimSpace(name)
	if mailbox {
		if !strings.Contains(name, "@") {
			return "", errors.New("a mailbox is named mailbox@domain")
		}
		a, err := store.ParseAddress(name, "")
		if err != nil {
			return "", err
		}
		return a.String(), nil
	}
	return store.CanonicalDomain(name)
}
