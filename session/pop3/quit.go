package pop3

import (
	"errors"
	"fmt"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/store"
)

// quitAuthorization answers QUIT before login (RFC 1939 section 6): there
// is nothing to update.
func (s *Session) quitAuthorization() session.Reply {
	r := line(okPrefix + " " + greetingText(s.opts.Greeting) + " signing off")
	r.Close = true
	s.state = stateUpdate
	return r
}

// quit enters the UPDATE state (RFC 1939 section 6): the deletions are
// committed and the mailbox released.
func (s *Session) quit() session.Reply {
	s.state = stateUpdate
	s.nextRenew.Store(0)
	var del []int
	for i, d := range s.deleted {
		if d {
			del = append(del, i)
		}
	}
	ctx, cancel := s.ctx()
	expired := s.expireAtQuit(ctx)
	del = append(del, expired...)
	err := s.mbox.Commit(ctx, del)
	cancel()
	var r session.Reply
	switch {
	case errors.Is(err, store.ErrLockLost):
		// Another session took the mailbox over: nothing was deleted.
		s.lost.Store(true)
		s.log.Warn("the mailbox lock was lost before QUIT; nothing deleted", "deleted", len(del), "err", err)
		r = errorReply(errLockLost)
		s.mbox.Close()
	case err != nil:
		s.log.Error("cannot commit deletions", "deleted", len(del), "err", err)
		r = errorReply(errUpdateFailed)
		s.mbox.Close()
	default:
		messagesDeleted.Add(len(del) - len(expired))
		messagesExpired.Add(len(expired))
		s.log.Info("logout", "deleted", len(del)-len(expired), "expired", len(expired))
		r = line(fmt.Sprintf("%s %s signing off (%d messages left)", okPrefix, greetingText(s.opts.Greeting), s.live-len(expired)))
	}
	r.Close = true
	return r
}
