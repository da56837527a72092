package engine

import (
	"container/list"
	"sync"
)

// admit decides what happens to a new connection.
type admitResult int

const (
	admitServe       admitResult = iota // a slot is free: greet
	admitWait                           // held silent in the backlog until a slot frees
	admitFullBacklog                    // beyond socketmax+socketbacklog: refuse
	admitHoldRefusal                    // beyond socketmax+socketbacklog: hold silent for refuse_delay, then refuse
	admitPerIP                          // the address has max_conns_per_ip connections: refuse
	admitPreIP                          // the address has prelogin_per_ip unauthenticated connections: refuse
	admitPreNet                         // its network has prelogin_per_net(48) unauthenticated connections: refuse
)

// SocketStats is the socket pool's state.
type SocketStats struct {
	InUse   int64 `json:"in_use"`  // connections being served
	Waiting int64 `json:"waiting"` // connections held in the backlog
	Free    int64 `json:"free"`    // prepared connection contexts not in use
	// Refusing is the connections refused for a full pool and held
	// silent until their refusal (pop3.refuse_delay).
	Refusing int64 `json:"refusing"`
}

// sockets is the socket pool: admission control (socketmax, socketbacklog,
// max_conns_per_ip) and the free list of prepared connection contexts
// (socketmin, socketthreshold). See the package documentation.
type sockets struct {
	mu      sync.Mutex
	inUse   int
	waiting list.List // of *conn, FIFO
	perIP   map[string]int
	free    []*conn
	pre     prelogin
	held    int // connections held for a delayed refusal (refuse_delay)
}

func (p *sockets) init(min int) {
	p.perIP = make(map[string]int)
	p.pre.init()
	p.free = make([]*conn, 0, min)
	for range min {
		p.free = append(p.free, new(conn))
	}
}

// prepare brings the free list to the settings of a reload: up to
// socketmin prepared contexts (never more than socketmax in use plus
// free), and at most socketmin+socketthreshold kept.
func (p *sockets) prepare(lim *settings) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.free) < lim.socketMin && p.inUse+len(p.free) < lim.socketMax {
		p.free = append(p.free, new(conn))
	}
	if keep := lim.socketMin + lim.socketThreshold; len(p.free) > keep {
		clear(p.free[keep:])
		p.free = p.free[:keep]
	}
}

// get returns a prepared context, refilling the free list when it falls to
// threshold: threshold more contexts are built, never more than max in all
// (in use plus free).
func (p *sockets) get(lim *settings) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var k *conn
	if n := len(p.free); n > 0 {
		k = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
	} else {
		k = new(conn)
	}
	if th := lim.socketThreshold; th > 0 && len(p.free) <= th {
		room := lim.socketMax - p.inUse - 1 - len(p.free)
		for i := 0; i < th && i < room; i++ {
			p.free = append(p.free, new(conn))
		}
	}
	return k
}

// put returns a context whose connection is finished; the free list keeps
// at most socketmin+socketthreshold.
func (p *sockets) put(k *conn, lim *settings) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < lim.socketMin+lim.socketThreshold {
		p.free = append(p.free, k)
	}
}

// admit registers a new connection. When the pool holds shedAt or more
// served connections, a connection from a network other than the one
// holding the most unauthenticated connections sheds the oldest of those:
// the victim is returned, already counted out of the pool (its slot went
// to k when the pool was full), for the caller to close on its loop.
func (p *sockets) admit(k *conn, lim *settings) (admitResult, *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lim.maxPerIP > 0 && p.perIP[k.ip] >= lim.maxPerIP {
		return admitPerIP, nil
	}
	if k.addr.IsValid() {
		switch p.pre.over(k.addr, lim) {
		case "ip":
			return admitPreIP, nil
		case "net":
			return admitPreNet, nil
		}
	}
	var victim *conn
	if p.inUse >= lim.shedAt && k.addr.IsValid() {
		_, n, n48 := p.pre.entries(k.addr)
		own := n
		if n48 != nil || k.addr.Unmap().Is6() {
			own = n48
		}
		if victim = p.pre.victim(own); victim != nil {
			// Listed, so its OnClose has not left the pool yet and the
			// open connection's reference is still held.
			victim.refs.Add(1)
			if p.inUse >= lim.socketMax {
				// The victim's slot goes to k at once.
				victim.admitted = false
				p.inUse--
			}
		}
	}
	switch {
	case p.inUse < lim.socketMax:
		p.inUse++
		k.admitted = true
	case p.waiting.Len() < lim.socketBacklog:
		k.waitElem = p.waiting.PushBack(k)
	case lim.refuseDelay > 0 && p.held < lim.refuseHold:
		p.held++
		k.held = true
		return admitHoldRefusal, victim
	default:
		return admitFullBacklog, victim
	}
	k.counted = true
	p.perIP[k.ip]++
	p.pre.count(k)
	if k.admitted {
		p.pre.list(k)
		return admitServe, victim
	}
	return admitWait, victim
}

// loggedIn takes an authenticated connection out of the unauthenticated
// counts (it can no longer be shed).
func (p *sockets) loggedIn(k *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pre.uncount(k)
}

// leave removes a closed connection and returns the waiting connection that
// takes its slot, if any (already counted as in use).
func (p *sockets) leave(k *conn, lim *settings) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pre.uncount(k)
	if k.held {
		k.held = false
		p.held--
		return nil
	}
	if !k.counted {
		return nil // refused: never counted
	}
	k.counted = false
	if n := p.perIP[k.ip] - 1; n > 0 {
		p.perIP[k.ip] = n
	} else {
		delete(p.perIP, k.ip)
	}
	if k.waitElem != nil {
		p.waiting.Remove(k.waitElem)
		k.waitElem = nil
		return nil
	}
	if !k.admitted {
		return nil // shed: its slot already went to another connection
	}
	k.admitted = false
	p.inUse--
	return p.nextLocked(lim)
}

// next admits waiting connections while slots are free (after a Reload
// raised socketmax); it returns one at a time.
func (p *sockets) next(lim *settings) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nextLocked(lim)
}

func (p *sockets) nextLocked(lim *settings) *conn {
	if p.inUse >= lim.socketMax {
		return nil
	}
	e := p.waiting.Front()
	if e == nil {
		return nil
	}
	w := p.waiting.Remove(e).(*conn)
	w.waitElem = nil
	w.admitted = true
	p.pre.list(w)
	w.refs.Add(1) // held until admitLater posted the greeting
	p.inUse++
	return w
}

func (p *sockets) stats() SocketStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return SocketStats{InUse: int64(p.inUse), Waiting: int64(p.waiting.Len()), Free: int64(len(p.free)), Refusing: int64(p.held)}
}
