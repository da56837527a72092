package engine

import (
	"sync"
	"time"

	"github.com/pop3svc/pop3svc/session"
)

// registry holds every open connection, sharded to keep the loops'
// OnOpen/OnClose from contending with the sweep.
type registry struct {
	shards [registryShards]shard
}

const registryShards = 64

type shard struct {
	mu sync.Mutex
	m  map[*conn]struct{}
}

func (r *registry) init() {
	for i := range r.shards {
		r.shards[i].m = make(map[*conn]struct{})
	}
}

func (r *registry) add(k *conn) {
	sh := &r.shards[k.id%registryShards]
	sh.mu.Lock()
	sh.m[k] = struct{}{}
	sh.mu.Unlock()
	k.shard = sh
}

func (r *registry) remove(k *conn) {
	sh := k.shard
	if sh == nil {
		return
	}
	sh.mu.Lock()
	delete(sh.m, k)
	sh.mu.Unlock()
	k.shard = nil
}

func (r *registry) count() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// each calls f for every connection with its shard locked: f must not
// block; posting to a loop is fine (the connection cannot be finalized
// while it is registered).
func (r *registry) each(f func(k *conn)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			f(k)
		}
		sh.mu.Unlock()
	}
}

// renew runs a session's lease renewal on a worker (it touches the disk),
// holding a reference so that the session is not closed meanwhile. The
// sweep asks every authenticated connection, idle, busy or streaming, so
// a lease lives as long as its connection whatever the client does.
func (s *Server) renew(k *conn, r session.Renewer) {
	k.refs.Add(1)
	mRenewals.Inc()
	task := func() {
		defer k.release()
		r.Renew()
	}
	if err := s.submit(task); err != nil {
		go task() // every worker busy: a renewal must not wait for them
	}
}

// sweep ends connections not authenticated within login_deadline of
// connecting, connections idle beyond login_timeout (before
// authentication) or idle_timeout (after; RFC 1939 §3 asks for at least
// ten minutes), and backlogged connections that waited beyond
// backlog_wait. Activity is input received, a reply written, or output
// drained to the client.
func (s *Server) sweep(now time.Time) {
	set := s.settings()
	t := now.UnixNano()
	s.registry.each(func(k *conn) {
		if k.expiring.Load() {
			return
		}
		switch k.phase.Load() {
		case phaseRefusing:
			// waitSince holds the time of the refusal. One due before the
			// next sweep (within a second at most) is refused at its time,
			// not with every other one due in that interval: refusals in a burst would hold up the
			// loops once a sweep, and the clients redialling after them
			// would come back in a burst too.
			switch due := k.waitSince.Load() - t; {
			case due <= 0:
				k.expiring.Store(true)
				k.post(k.refuseNow, nil)
			case due < int64(min(s.sweepInterval(), time.Second)):
				k.expiring.Store(true)
				k.refs.Add(1) // held until the timer posted the refusal
				time.AfterFunc(time.Duration(due), func() {
					k.post(k.refuseNow, nil)
					k.release()
				})
			}
		case phaseWaiting:
			if set.backlogWait > 0 && t-k.waitSince.Load() > int64(set.backlogWait) {
				k.expiring.Store(true)
				k.post(k.backlogExpire, nil)
			}
		default:
			authed := k.authed.Load()
			if !authed && set.loginDeadline > 0 && t-k.openedAt.Load() > int64(set.loginDeadline) {
				k.expiring.Store(true)
				k.post(k.deadlineExpire, nil)
				return
			}
			limit := set.loginTimeout
			if authed {
				limit = set.idleTimeout
				if r, ok := k.sess.(session.Renewer); ok && r.RenewDue(now) {
					s.renew(k, r)
				}
			}
			if limit > 0 && t-k.lastActive.Load() > int64(limit) {
				k.expiring.Store(true)
				k.post(k.expire, nil)
			}
		}
	})
}
