package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// process makes one delivery attempt for a queue entry.
func (s *Service) process(id string) {
	o := s.o()
	log := o.Logger.With("queue_id", id)
	e, err := s.q.Lock(id)
	switch {
	case errors.Is(err, store.ErrQueueNotFound):
		s.removed(id)
		return
	case errors.Is(err, store.ErrQueueBusy):
		return // another process delivers it; a later scan looks again
	case errors.Is(err, store.ErrQueueDamaged):
		// Retrying cannot mend it: keep it in Badmail for the operator.
		if qerr := s.q.Quarantine(id, "damaged queue entry: "+err.Error()); qerr != nil {
			log.Error("cannot move a damaged queue entry to Badmail", "err", err, "move_err", qerr)
			s.deferEntry(id)
			return
		}
		log.Error("damaged queue entry moved to Badmail", "err", err)
		s.m.badmail.Inc()
		s.removed(id)
		return
	case err != nil:
		log.Error("cannot open queue entry", "err", err)
		s.deferEntry(id)
		return
	}
	defer e.Close()
	if e.MovedToBadmail() {
		if err := e.Remove(); err != nil {
			log.Error("cannot remove entry moved to Badmail", "err", err)
		}
		s.removed(id)
		return
	}
	if sch, ok := e.(store.QueueSchedule); ok {
		if next, _ := sch.NextAttempt(); time.Now().Before(next) {
			// Postponed (by this server or another sharing the queue):
			// one attempt per period in the whole cluster.
			s.schedule(id, next)
			return
		}
	}
	expired := time.Since(e.Envelope().Received) >= o.RetryFor

	published := false
	if !e.Resolved() {
		check := s.needsCheck(e)
		if err := e.Start(s.token); err != nil {
			log.Error("cannot record delivery attempt", "err", err)
			s.postpone(e)
			return
		}
		var temp []string
		if o.Transport != nil {
			var stop bool
			temp, stop = s.sendRemote(e, check, log)
			if stop {
				return
			}
		}
		for i, rcpt := range e.Envelope().Rcpts {
			if o.Transport != nil {
				break
			}
			if e.Rcpts()[i].Resolved() {
				continue
			}
			if err := s.ctx.Err(); err != nil {
				return // stopping: the next start goes on
			}
			addr, err := store.ParseAddress(rcpt, "")
			if err != nil {
				log.Info("delivery", "mailbox", rcpt, "result", "failed", "status", "5.1.3", "err", err)
				s.fail(e, i, "5.1.3", "bad recipient address: "+err.Error(), log)
				continue
			}
			if check {
				uid, found, err := s.findCopy(addr, id)
				if err != nil && !expired {
					temp = append(temp, fmt.Sprintf("<%s>: cannot check for an earlier copy: %v", rcpt, err))
					continue
				}
				// Past RetryFor a mailbox that cannot be checked gets
				// its copy anyway: a possible duplicate, never a loss.
				if found {
					log.Info("delivery", "mailbox", addr.String(), "uid", uid, "result", "delivered_earlier")
					if err := e.Done(i, uid); err != nil {
						log.Error("cannot record delivery", "err", err)
						s.postpone(e)
						return
					}
					continue
				}
			}
			uid, size, err := s.deliverCopy(e, i, addr)
			if err == nil {
				log.Info("delivery", "mailbox", addr.String(), "uid", uid, "size", size, "result", "delivered")
				s.m.delivered.Inc()
				s.m.latency.UpdateDuration(e.Envelope().Received)
				if err := e.Done(i, uid); err != nil {
					log.Error("cannot record delivery", "err", err)
					s.postpone(e)
					return
				}
				continue
			}
			if st, why := permanent(err); st != "" {
				log.Info("delivery", "mailbox", rcpt, "result", "failed", "status", st, "err", err)
				s.fail(e, i, st, why, log)
				continue
			}
			// A temporary error does not prove that nothing was stored.
			s.setRecheck(id)
			if s.ctx.Err() != nil {
				return
			}
			log.Info("delivery", "mailbox", rcpt, "result", "deferred", "err", err)
			temp = append(temp, fmt.Sprintf("<%s>: %v", rcpt, err))
		}
		// Staged copies appear now, also for the recipients that wait
		// for a retry.
		if err := s.publishDone(e); err != nil {
			log.Error("cannot publish a delivered copy", "err", err)
			s.postpone(e)
			return
		}
		published = true
		if len(temp) > 0 {
			if !expired {
				s.m.deferred.Add(len(temp))
				d := s.postpone(e)
				log.Warn("delivery deferred", "errors", strings.Join(temp, "; "), "retry_in", d)
				return
			}
			for i := range e.Envelope().Rcpts {
				if !e.Rcpts()[i].Resolved() {
					s.fail(e, i, "5.4.7", "delivery time expired: "+strings.Join(temp, "; "), log)
				}
			}
		}
	}
	if !e.Resolved() {
		s.postpone(e)
		return
	}
	if !published {
		// Every recipient was resolved by an earlier attempt that may
		// have died before publishing.
		if err := s.publishDone(e); err != nil {
			log.Error("cannot publish a delivered copy", "err", err)
			s.postpone(e)
			return
		}
	}
	if len(e.Failed()) > 0 && e.NDR() == "" {
		done, err := s.bounce(e, expired)
		if err != nil {
			s.m.deferred.Inc()
			d := s.postpone(e)
			log.Warn("non-delivery report deferred", "err", err, "retry_in", d)
			return
		}
		if done {
			s.removed(id) // moved to Badmail
			return
		}
	}
	if err := e.Remove(); err != nil {
		log.Error("cannot remove delivered entry", "err", err)
		s.postpone(e)
		return
	}
	s.removed(id)
}

// needsCheck reports whether copies (and the report) of the entry may
// have landed without their progress record: an attempt by another process
// was recorded, or one of this process's failed ambiguously.
func (s *Service) needsCheck(e store.QueueEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.NeedsCheck(s.token) || s.recheck[e.ID()]
}

func (s *Service) setRecheck(id string) {
	s.mu.Lock()
	s.recheck[id] = true
	s.mu.Unlock()
}

func (s *Service) fail(e store.QueueEntry, i int, status, reason string, log interface {
	Error(string, ...any)
}) {
	s.m.failed.Inc()
	if err := e.Fail(i, status, reason); err != nil {
		log.Error("cannot record failure", "err", err)
	}
}

// copyHeader is what each copy starts with: the Return-Path (RFC 5321
// §4.4) and the queue marker.
func copyHeader(from, id string) string {
	return "Return-Path: <" + headerSafe(from) + ">\r\n" + MarkerHeader + ": " + id + "\r\n"
}

// headerSafe drops control characters from an envelope value bound for a
// header: the SMTP service refuses them, but an entry dropped into the
// queue by another program is not checked, and a CR or LF would open a
// header line of its own (RFC 5322 §2.2).
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// deliverCopy stores the copy of the entry's message for recipient i;
// size is the octets handed to the store (the message with the copy's
// header lines).
// With a store that stages copies (store.StagedDelivery) the copy stays
// invisible until publishDone, after its "done" record: a crash in
// between leaves it staged, where no session can take it, so recovery
// never needs to find a copy that a session may already have deleted.
func (s *Service) deliverCopy(e store.QueueEntry, i int, addr store.Address) (uid string, size int64, err error) {
	f, err := e.Open()
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	r := &countingReader{r: io.MultiReader(strings.NewReader(copyHeader(e.Envelope().From, e.ID())), f)}
	if st, ok := s.st.(store.StagedDelivery); ok {
		uid, err = st.Stage(s.ctx, addr, stageKey(e.ID(), i), r)
	} else {
		uid, err = s.st.Deliver(s.ctx, addr, r)
	}
	return uid, r.n, err
}

// countingReader counts the octets read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// stageKey names the staged copy of recipient i of entry id.
func stageKey(id string, i int) string { return id + "." + strconv.Itoa(i) }

// publishDone publishes the staged copy of every recipient recorded done
// (a no-op for a copy published before, and for a store that does not
// stage). A mailbox deleted since gets nothing.
func (s *Service) publishDone(e store.QueueEntry) error {
	st, ok := s.st.(store.StagedDelivery)
	if !ok || s.o().Transport != nil {
		return nil // the outbound agent stages nothing: its copies are on other servers
	}
	for i, r := range e.Rcpts() {
		if !r.Done {
			continue
		}
		addr, err := store.ParseAddress(e.Envelope().Rcpts[i], "")
		if err != nil {
			continue
		}
		if err := st.Publish(s.ctx, addr, stageKey(e.ID(), i), r.UID); err != nil &&
			!errors.Is(err, store.ErrNoSuchMailbox) && !errors.Is(err, store.ErrNoSuchDomain) {
			return err
		}
	}
	return nil
}

// findCopy looks in a mailbox for a copy of entry id, newest first. It
// reads the mailbox without its session lock when the store can
// (store.Snapshots), so it works while a POP3 session holds the mailbox;
// otherwise it opens a session. A mailbox that is gone has no copy.
func (s *Service) findCopy(addr store.Address, id string) (uid string, found bool, err error) {
	var sess store.MailboxSnapshot
	if sn, ok := s.st.(store.Snapshots); ok {
		sess, err = sn.Snapshot(s.ctx, addr)
	} else {
		var ms store.MailboxSession
		ms, err = s.st.OpenSession(s.ctx, addr, "pop3d delivery service (recovery check) "+s.token)
		if err == nil {
			defer ms.Close()
			sess = ms
		}
	}
	if errors.Is(err, store.ErrNoSuchMailbox) || errors.Is(err, store.ErrNoSuchDomain) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	want := []byte("\r\n" + MarkerHeader + ": " + id + "\r\n")
	msgs := sess.Messages()
	buf := make([]byte, maxMarkerScan)
	for i := len(msgs) - 1; i >= 0; i-- {
		rc, err := sess.Open(i)
		if err != nil {
			if errors.Is(err, store.ErrNoSuchMessage) {
				continue
			}
			return "", false, err
		}
		n, err := io.ReadFull(rc, buf)
		rc.Close()
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return "", false, err
		}
		head := buf[:n]
		if end := bytes.Index(head, []byte("\r\n\r\n")); end >= 0 {
			head = head[:end+2]
		}
		if bytes.Contains(head, want) {
			return msgs[i].UID, true, nil
		}
	}
	return "", false, nil
}

// bounce handles the non-delivery report of an entry with failed
// recipients. done reports that the entry went to Badmail (and is gone);
// an error is temporary.
func (s *Service) bounce(e store.QueueEntry, expired bool) (done bool, err error) {
	o := s.o()
	badmail := func(reason string) (bool, error) {
		if err := e.ToBadmail(reason); err != nil {
			return false, err
		}
		s.m.badmail.Inc()
		o.Logger.Warn("message moved to Badmail", "queue_id", e.ID(), "reason", reason)
		return true, nil
	}
	// RFC 3464 §2 / RFC 5321 §4.5.5: never a report about a report, nor
	// to the null reverse-path.
	if e.Envelope().Report || e.Envelope().From == "" {
		return badmail("the non-delivery report cannot be sent: the sender is the null reverse-path <>")
	}
	report, err := s.buildReport(e)
	if err != nil {
		return false, err
	}
	if addr, perr := store.ParseAddress(e.Envelope().From, ""); perr == nil {
		_, err := s.st.Mailbox(s.ctx, addr)
		switch {
		case err == nil:
			rid := reportID(e.ID())
			if s.needsCheck(e) {
				// An earlier attempt may have queued the report and died
				// before recording it, and the report may since have been
				// delivered and left the queue: look for it first.
				_, found, err := s.findCopy(addr, rid)
				if err != nil {
					return false, fmt.Errorf("cannot check for an earlier report: %w", err)
				}
				if found {
					return false, e.RecordNDR("local " + rid + " (found delivered)")
				}
			}
			env := store.Envelope{
				ID:       rid,
				Rcpts:    []string{addr.String()},
				Received: time.Now(),
				Report:   true,
			}
			rq, notify := s.q, s.Notify
			if o.Reports != nil {
				rq, notify = o.Reports, o.ReportNotify
			}
			id, err := rq.Enqueue(env, bytes.NewReader(report))
			if err != nil && !errors.Is(err, store.ErrQueueExists) {
				return false, err
			}
			if err := e.RecordNDR("local " + id); err != nil {
				s.setRecheck(e.ID())
				return false, err
			}
			s.m.ndr.Inc()
			if notify != nil {
				notify(id)
			}
			return false, nil
		case errors.Is(err, store.ErrNoSuchDomain):
			// a remote sender: relay below
		case errors.Is(err, store.ErrNoSuchMailbox):
			return badmail(fmt.Sprintf("the non-delivery report cannot be sent: the sender <%s> is in a served domain but has no mailbox", e.Envelope().From))
		default:
			return false, err
		}
	}
	if o.Relay == "" {
		return badmail(fmt.Sprintf("the non-delivery report cannot be sent: the sender <%s> is remote and no relay is configured (smtp.relay)", e.Envelope().From))
	}
	ctx, cancel := context.WithTimeout(s.ctx, o.RelayTimeout)
	defer cancel()
	err = sendRelay(ctx, o.Relay, o.Hostname, e.Envelope().From, report)
	if err == nil {
		if err := e.RecordNDR("relayed via " + o.Relay); err != nil {
			return false, err
		}
		s.m.ndr.Inc()
		return false, nil
	}
	if isPermanent(err) || expired {
		return badmail(fmt.Sprintf("the non-delivery report to <%s> was refused by the relay %s: %v", e.Envelope().From, o.Relay, err))
	}
	return false, err
}

// reportID is the queue id of the report about entry id: derived from it,
// so that a report queued by an attempt that died before recording it is
// not queued twice.
func reportID(id string) string {
	if r := id + "-ndr"; store.ValidQueueID(r) {
		return r
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:20]) + "-ndr"
}
