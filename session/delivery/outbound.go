package delivery

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/pop3svc/pop3svc/store"
)

// Result is what a Transport learned of one recipient.
type Result struct {
	OK     bool   // the receiving server accepted the message for the recipient
	Temp   bool   // a temporary failure (4xx, no answer): try again later
	Status string // RFC 3463 status when not OK, e.g. "5.1.1"
	Reason string // the diagnostic: the remote reply or what went wrong
	Host   string // the server that answered, when one did
}

// Transport sends a message to recipients of other domains (package
// session/outbound: MX look-up or a smarthost, SMTP). Send returns one
// Result per recipient, in order; open returns the message each time a
// server is to receive it.
type Transport interface {
	Send(ctx context.Context, from string, rcpts []string, open func() (io.ReadCloser, error)) []Result
}

// sendRemote makes one attempt at the entry's unresolved recipients
// through the Transport and records the results. temp lists the
// temporary failures; stop reports that progress could not be recorded
// or the service is stopping (the entry is left for a later attempt).
//
// A recipient whose copy the remote server accepted but whose "done" line
// was not written before a crash (kill -9 between the remote's 250 and the
// fsync of the progress log) is sent again by the next attempt: at most
// one duplicate per crash, never a loss. check is set in that case, and
// each such recipient counts in smtp_outbound_possible_duplicates_total.
func (s *Service) sendRemote(e store.QueueEntry, check bool, log *slog.Logger) (temp []string, stop bool) {
	o := s.o()
	var idx []int
	var rcpts []string
	for i, r := range e.Envelope().Rcpts {
		if !e.Rcpts()[i].Resolved() {
			idx = append(idx, i)
			rcpts = append(rcpts, r)
		}
	}
	if len(rcpts) == 0 {
		return nil, false
	}
	if check {
		s.m.duplicates.Add(len(rcpts))
		log.Warn("resending after an attempt that did not finish: the recipients may get a second copy", "rcpts", len(rcpts))
	}
	results := o.Transport.Send(s.ctx, e.Envelope().From, rcpts, e.Open)
	for k, res := range results {
		i := idx[k]
		switch {
		case res.OK:
			s.m.delivered.Inc()
			s.m.latency.UpdateDuration(e.Envelope().Received)
			uid := "remote"
			if res.Host != "" {
				uid = "remote:" + strings.Map(func(r rune) rune {
					if r <= ' ' || r >= 0x7f {
						return -1
					}
					return r
				}, res.Host)
			}
			if err := e.Done(i, uid); err != nil {
				log.Error("cannot record delivery", "err", err)
				s.setRecheck(e.ID())
				s.postpone(e)
				return nil, true
			}
			log.Info("delivered", "rcpt", rcpts[k], "host", res.Host)
		case !res.Temp:
			log.Info("delivery failed", "rcpt", rcpts[k], "status", res.Status, "reason", res.Reason)
			s.fail(e, i, res.Status, res.Reason, log)
		default:
			temp = append(temp, "<"+rcpts[k]+">: "+res.Reason)
		}
	}
	if s.ctx.Err() != nil {
		return nil, true
	}
	return temp, false
}
