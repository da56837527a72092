package engine

import (
	"math/rand/v2"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// handler is gnet's event handler. Every callback but OnTick runs on the
// connection's event loop.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	s := h.s
	s.eng = eng
	s.engOK.Store(true)
	backlog := s.opts.Config.ListenBacklog
	for _, la := range s.listen {
		a := la.addr
		fd, err := eng.DupListener("tcp", a)
		if err != nil {
			s.log.Error("cannot inspect listener", "addr", a, "err", err)
			continue
		}
		addr, err := boundAddr(fd)
		if err != nil {
			s.log.Error("cannot read listener address", "addr", a, "err", err)
		} else {
			s.addrs = append(s.addrs, addr)
			s.bound[addr.(*net.TCPAddr).Port] = la.tls
		}
		if backlog > 0 {
			if err := setListenBacklog(fd, backlog); err != nil {
				s.log.Warn("cannot set pop3.listen_backlog", "addr", a, "err", err)
			}
		}
		closeFD(fd)
	}
	for _, a := range s.addrs {
		s.log.Info("POP3 listening", "addr", a.String(), "tls", s.bound[a.(*net.TCPAddr).Port])
	}
	close(s.booted)
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s := h.s
	set := s.settings()
	mConnTotal.Inc()
	la, _ := c.LocalAddr().(*net.TCPAddr)
	implicitTLS := la != nil && s.bound[la.Port]
	if s.draining.Load() {
		mRefusedDraining.Inc()
		s.log.Info("connection refused", "remote", c.RemoteAddr().String(), "result", "refused", "reason", "shutting_down")
		if implicitTLS {
			return nil, gnet.Close
		}
		return replyDraining, gnet.Close
	}
	k := s.sockets.get(set)
	k.srv = s
	k.gc = c
	k.id = connIDs.Add(1)
	k.remote = c.RemoteAddr().String()
	k.local = c.LocalAddr().String()
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		k.ip = ta.IP.String()
		k.addr = ta.AddrPort().Addr().Unmap()
	} else {
		k.ip = k.remote
	}
	// refuse answers in plaintext, except on an implicit-TLS listener,
	// which never does (RFC 8314): the connection is just closed.
	refuse := func(reply []byte) ([]byte, gnet.Action) {
		s.sockets.put(k.recycled(), set)
		if implicitTLS {
			return nil, gnet.Close
		}
		return reply, gnet.Close
	}
	k.refs.Store(1) // the open connection
	res, victim := s.sockets.admit(k, set)
	if victim != nil {
		s.shed(victim)
	}
	switch res {
	case admitPerIP:
		mRefusedPerIP.Inc()
		k.logger().Info("connection refused", "result", "refused", "reason", "per_ip", "limit", set.maxPerIP)
		return refuse(replyPerIP)
	case admitPreIP:
		mRefusedPreIP.Inc()
		k.logger().Info("connection refused", "result", "refused", "reason", "prelogin_per_ip", "limit", set.preIP)
		return refuse(replyPreIP)
	case admitPreNet:
		mRefusedPreNet.Inc()
		k.logger().Info("connection refused", "result", "refused", "reason", "prelogin_per_net", "limit", set.preNet, "limit48", set.preNet48)
		return refuse(replyPreNet)
	case admitFullBacklog:
		mRefusedBacklog.Inc()
		k.logger().Info("connection refused", "result", "refused", "reason", "backlog_full")
		return refuse(replyTooMany)
	case admitHoldRefusal:
		mRefusedBacklog.Inc()
		k.logger().Debug("connection refused after refuse_delay", "result", "refused", "reason", "backlog_full")
		return s.holdRefusal(c, k, set, implicitTLS)
	case admitWait:
		k.phase.Store(phaseWaiting)
		k.waitSince.Store(s.now().UnixNano())
	case admitServe:
		k.phase.Store(phaseActive)
	}
	k.openedAt.Store(s.now().UnixNano())
	if implicitTLS {
		var tr Transport
		err := errNoTLS
		if s.opts.NewTransport != nil {
			tr, err = s.opts.NewTransport(k.info(), true)
		}
		if err != nil {
			k.logger().Warn("cannot start TLS", "err", err)
			if next := s.sockets.leave(k, set); next != nil {
				s.admitLater(next)
			}
			s.sockets.put(k.recycled(), set)
			return nil, gnet.Close
		}
		k.tr = tr
		k.tls = true
		bindTransport(k) // starts the handshake (tls.go)
	}
	// Hold the context for the rest of the callback: a greeting write
	// that fails (the peer already reset) makes gnet run OnClose from
	// inside Write, which drops the open connection's reference; the
	// context must not be finalized and recycled while OnOpen still uses
	// it. (Taken only here: the refusals above recycle the context at
	// once, and nothing before SetContext can reach OnClose.)
	k.refs.Add(1)
	defer k.release()
	k.sess = set.factory(k.info())
	s.live.Store(k, struct{}{})
	k.touch()
	c.SetContext(k)
	s.registry.add(k)
	mConnCurrent.Inc()
	if k.phase.Load() == phaseWaiting {
		k.logger().Debug("connection held in the backlog")
		return nil, gnet.None
	}
	k.logger().Debug("connection opened", "local", k.local)
	k.admit()
	if k.closed.Load() {
		return nil, gnet.Close
	}
	return nil, gnet.None
}

// holdRefusal keeps a connection refused for a full pool open and silent
// for about refuse_delay (the sweep then refuses it: refuseNow), reading and
// discarding what it sends. A client that redials as soon as it is refused
// (an attacker holding more connections than the pool) is then accepted
// and refused once per refuse_delay instead of as fast as it can dial,
// each refusal costing the event loops an accept, a registration, a reply
// and a close. At most refuse_hold are held; beyond, refusal is at once.
func (s *Server) holdRefusal(c gnet.Conn, k *conn, set *settings, implicitTLS bool) ([]byte, gnet.Action) {
	k.phase.Store(phaseRefusing)
	k.implicitTLS = implicitTLS
	now := s.now()
	k.openedAt.Store(now.UnixNano())
	// Between half and one and a half times the delay, at random: the
	// connections refused in one burst (an attacker's, opened together)
	// come back spread out instead of in a burst that holds up the loops
	// at every round.
	hold := set.refuseDelay/2 + rand.N(set.refuseDelay+1)
	k.waitSince.Store(now.Add(hold).UnixNano())
	s.live.Store(k, struct{}{})
	c.SetContext(k)
	s.registry.add(k)
	mConnCurrent.Inc()
	return nil, gnet.None
}

// shed closes an unauthenticated connection chosen by admission to make
// room for a connection from another network (on its own loop).
// admission took a reference for it.
func (s *Server) shed(v *conn) {
	mShed.Inc()
	v.post(v.shedNow, nil)
	v.release()
}

// shedNow tells a shed connection why and closes it.
func (k *conn) shedNow() {
	if k.phase.Load() == phaseClosing {
		return
	}
	k.logger().Info("shed: the socket pool is nearly full and its network holds the most unauthenticated connections")
	if k.busy {
		// A command is in flight: a reply now would corrupt its reply.
		k.phase.Store(phaseClosing)
		_ = k.gc.Close()
		return
	}
	k.write(replyShed)
	k.closeAfterFlush()
}

// recycled clears a context that never served a connection.
func (k *conn) recycled() *conn {
	k.reset()
	return k
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	k, ok := c.Context().(*conn)
	buf, _ := c.Next(-1)
	if !ok {
		return gnet.Close
	}
	mBytesReceived.Add(len(buf))
	// Hold the context for the callback: a reply written inline that
	// fails (the peer reset) runs OnClose from inside gnet's Write, which
	// drops the open connection's reference; without this one the
	// context would be finalized and recycled on a worker while this
	// callback still uses it.
	k.refs.Add(1)
	defer k.release()
	k.touch()
	if k.tr != nil {
		var err error
		if buf, err = k.tr.Inbound(buf); err != nil {
			k.logger().Debug("transport read failed", "err", err)
			return gnet.Close
		}
		if len(buf) == 0 {
			return gnet.None
		}
	}
	return k.input(buf)
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	k, ok := c.Context().(*conn)
	if !ok {
		return gnet.None
	}
	s := h.s
	k.closed.Store(true)
	abortTransport(k) // ends a TLS handshake waiting for input (tls.go)
	k.wakeSendfile()  // ends a sendfile stream waiting for room (sendfile.go)
	k.clearQueue()
	s.registry.remove(k)
	s.waker.remove(k)
	mConnCurrent.Dec()
	if err != nil {
		k.logger().Debug("connection closed", "err", err)
	} else {
		k.logger().Debug("connection closed")
	}
	if next := s.sockets.leave(k, s.settings()); next != nil {
		s.admitLater(next)
	}
	k.release()
	return gnet.None
}

// admitLater greets a connection that left the backlog, on its own loop.
// sockets.next took a reference for it.
func (s *Server) admitLater(w *conn) {
	w.post(w.admit, nil)
	w.release()
}

func (h *handler) OnTick() (time.Duration, gnet.Action) {
	s := h.s
	s.sweep(s.now())
	return s.sweepInterval(), gnet.None
}

// sweepInterval is how often the sweep runs (Options.SweepInterval).
func (s *Server) sweepInterval() time.Duration {
	if d := s.opts.SweepInterval; d > 0 {
		return d
	}
	return time.Second
}
