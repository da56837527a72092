package engine

import (
	"container/heap"
	"net/netip"
)

// Unauthenticated connections are counted per address, per network (IPv4
// /24, IPv6 /64) and, for IPv6, per /48, in one shared map keyed by
// address or network: limits.prelogin_per_ip, prelogin_per_net and
// prelogin_per_net48 cap them. The served ones are also kept on a list per
// "wide" network (IPv4 /24, IPv6 /48), oldest first, and the wide networks
// in a heap by how many they hold, so that when the socket pool is nearly
// full (pop3.shed_at) a new connection from another network can shed the
// oldest unauthenticated connection of the network that holds the most.
// Everything here is guarded by sockets.mu. A connection carries its
// address, two list pointers and three entry pointers; an entry exists
// only while its address or network holds unauthenticated connections.

// netKey is an address (bits 32 or 128) or a network prefix.
type netKey struct {
	addr netip.Addr
	bits uint8
}

// preEntry counts one address or network.
type preEntry struct {
	key   netKey
	count int // unauthenticated connections, waiting or served
	// held, head and tail: the served unauthenticated connections of a
	// wide network, oldest first; idx is its place in the heap (-1: out).
	held       int
	head, tail *conn
	idx        int
}

// preKeys returns the keys a connection from ip is counted under: the
// address, the /24 or /64, and for IPv6 the /48 (otherwise invalid).
func preKeys(ip netip.Addr) (addr, net, net48 netKey) {
	ip = ip.Unmap()
	if ip.Is4() {
		p, _ := ip.Prefix(24)
		return netKey{ip, 32}, netKey{p.Addr(), 24}, netKey{}
	}
	p64, _ := ip.Prefix(64)
	p48, _ := ip.Prefix(48)
	return netKey{ip.WithZone(""), 128}, netKey{p64.Addr(), 64}, netKey{p48.Addr(), 48}
}

// prelogin is the shared count.
type prelogin struct {
	m    map[netKey]*preEntry
	heap preHeap
}

func (p *prelogin) init() { p.m = make(map[netKey]*preEntry) }

// entries returns the existing entries for ip (nil where none).
func (p *prelogin) entries(ip netip.Addr) (a, n, n48 *preEntry) {
	ka, kn, k48 := preKeys(ip)
	a, n = p.m[ka], p.m[kn]
	if k48.addr.IsValid() {
		n48 = p.m[k48]
	}
	return a, n, n48
}

// wide is the entry a connection is listed and ranked under.
func wideOf(k *conn) *preEntry {
	if k.pre[2] != nil {
		return k.pre[2]
	}
	return k.pre[1]
}

// over reports which cap a new connection from ip would exceed: "ip",
// "net" or "" (a cap of 0 is no limit).
func (p *prelogin) over(ip netip.Addr, set *settings) string {
	a, n, n48 := p.entries(ip)
	switch {
	case a != nil && set.preIP > 0 && a.count >= set.preIP:
		return "ip"
	case n != nil && set.preNet > 0 && n.count >= set.preNet:
		return "net"
	case n48 != nil && set.preNet48 > 0 && n48.count >= set.preNet48:
		return "net"
	}
	return ""
}

func (p *prelogin) get(key netKey) *preEntry {
	e := p.m[key]
	if e == nil {
		e = &preEntry{key: key, idx: -1}
		p.m[key] = e
	}
	e.count++
	return e
}

// count registers k (not yet authenticated) under its address and networks.
func (p *prelogin) count(k *conn) {
	if !k.addr.IsValid() || k.pre[0] != nil {
		return
	}
	ka, kn, k48 := preKeys(k.addr)
	k.pre[0], k.pre[1] = p.get(ka), p.get(kn)
	if k48.addr.IsValid() {
		k.pre[2] = p.get(k48)
	}
}

// uncount removes k from the counts and its wide network's list (it
// authenticated or closed).
func (p *prelogin) uncount(k *conn) {
	p.unlist(k)
	for i, e := range k.pre {
		if e == nil {
			continue
		}
		k.pre[i] = nil
		if e.count--; e.count <= 0 {
			delete(p.m, e.key)
		}
	}
}

// list puts a served unauthenticated k at the tail of its wide network's list.
func (p *prelogin) list(k *conn) {
	w := wideOf(k)
	if w == nil || k.listed {
		return
	}
	k.listed = true
	k.preNext, k.prePrev = nil, w.tail
	if w.tail != nil {
		w.tail.preNext = k
	} else {
		w.head = k
	}
	w.tail = k
	w.held++
	if w.idx < 0 {
		heap.Push(&p.heap, w)
	} else {
		heap.Fix(&p.heap, w.idx)
	}
}

func (p *prelogin) unlist(k *conn) {
	if !k.listed {
		return
	}
	w := wideOf(k)
	k.listed = false
	if k.prePrev != nil {
		k.prePrev.preNext = k.preNext
	} else {
		w.head = k.preNext
	}
	if k.preNext != nil {
		k.preNext.prePrev = k.prePrev
	} else {
		w.tail = k.prePrev
	}
	k.preNext, k.prePrev = nil, nil
	w.held--
	if w.held == 0 {
		heap.Remove(&p.heap, w.idx)
	} else {
		heap.Fix(&p.heap, w.idx)
	}
}

// victim returns the oldest served unauthenticated connection of the
// network that holds the most, if that network holds at least two and
// more than twice the newcomer's own (newcomer: the wide network of the
// new connection, nil when it holds none). The margin keeps networks that
// hold about as many from shedding each other in turn. It is taken off
// the list.
func (p *prelogin) victim(newcomer *preEntry) *conn {
	if len(p.heap) == 0 {
		return nil
	}
	top := p.heap[0]
	own := 0
	if newcomer != nil {
		own = newcomer.held
	}
	if top == newcomer || top.held < 2 || top.held <= 2*own {
		return nil
	}
	v := top.head
	p.unlist(v)
	return v
}

// preHeap is a max-heap of wide networks by held.
type preHeap []*preEntry

func (h preHeap) Len() int           { return len(h) }
func (h preHeap) Less(i, j int) bool { return h[i].held > h[j].held }
func (h preHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *preHeap) Push(x any) {
	e := x.(*preEntry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *preHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}
