package pop3

import (
	"encoding/base64"
	"strings"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// authCmd answers AUTH (RFC 5034). Without an argument it lists the
// mechanisms, one per line, as older clients expect.
func (s *Session) authCmd(arg string) session.Reply {
	if s.opts.Auth == nil {
		return s.bad(errNoMech)
	}
	f := strings.Fields(arg)
	if len(f) == 0 {
		var b strings.Builder
		b.WriteString("+OK list of SASL mechanisms follows\r\n")
		for _, m := range s.mechanisms() {
			b.WriteString(m + "\r\n")
		}
		b.WriteString(".\r\n")
		return session.Reply{Out: []byte(b.String())}
	}
	if len(f) > 2 {
		return s.bad(errSyntax)
	}
	mech, ok := s.opts.Auth.Start(f[0], s.tls, s.opts.SPARequired, s.cb)
	if !ok {
		return s.bad(errNoMech)
	}
	x := &saslExchange{name: strings.ToLower(f[0]), mech: mech}
	var initial []byte // nil: no initial response
	if len(f) == 2 {
		// RFC 5034 section 4: "=" is an empty initial response.
		if f[1] == "=" {
			initial = []byte{}
		} else {
			b, err := base64.StdEncoding.DecodeString(f[1])
			if err != nil {
				countAuth(x.name, "fail")
				return s.bad(errAuthBadLine)
			}
			initial = b
		}
	}
	return s.saslStep(x, initial)
}

// saslContinue takes a continuation line of a SASL exchange in progress.
func (s *Session) saslContinue(l []byte) session.Reply {
	x := s.sasl
	if len(l) == 1 && l[0] == '*' {
		// RFC 5034 section 4: the client cancels the exchange.
		s.sasl = nil
		countAuth(x.name, "fail")
		return errorReply(errAuthCancelled)
	}
	max := s.opts.MaxAuthLine
	if max <= 0 {
		max = DefaultMaxAuthLine
	}
	b, err := base64.StdEncoding.DecodeString(string(l))
	if len(l) > max || err != nil {
		s.sasl = nil
		countAuth(x.name, "fail")
		return s.bad(errAuthBadLine)
	}
	return s.saslStep(x, b)
}

// saslStep feeds one response to the mechanism and sends the next
// challenge or ends the exchange with a login.
func (s *Session) saslStep(x *saslExchange, resp []byte) session.Reply {
	var (
		challenge []byte
		done      bool
		err       error
	)
	if s.opts.Auth.Banned(s.ip) {
		s.sasl = nil
		return s.loginRefused(x.name, "banned")
	} else {
		ctx, cancel := s.ctx()
		challenge, done, err = x.mech.Next(ctx, resp)
		cancel()
	}
	if !done {
		s.sasl = x
		return line("+ " + base64.StdEncoding.EncodeToString(challenge))
	}
	s.sasl = nil
	if id, ok := x.mech.(auth.Identifier); ok {
		s.tryUser = id.Identity()
	}
	if d, ok := x.mech.(auth.Deferrer); ok && err == nil {
		if pc := d.Deferred(); pc != nil {
			return s.passwordLogin(x.name, *pc)
		}
	}
	return s.login(x.name, func() (store.Address, error) {
		if err != nil {
			return store.Address{}, err
		}
		return x.mech.Address(), nil
	})
}
