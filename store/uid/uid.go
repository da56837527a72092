// Package uid makes the 26-digit message names every store gives its
// messages. A name is a message's UID, its UIDL (RFC 1939 section 7):
// unique across every server sharing a store, stable, never reused, and
// sorting in delivery order.
//
// The 26 digits are the UTC time of delivery to the millisecond
// (YYYYMMDDhhmmssmmm, 17 digits), a 4-digit counter and the 5-digit node
// number of the server that delivered the message.
package uid

import (
	"sync"
	"time"
)

// Len is the length of a UID.
const Len = 26

// MaxNode is the largest node number (5 digits).
const MaxNode = 99999

// PerMillisecond is the number of names a node makes in one millisecond
// (4 digits of counter); the next name moves on to the next millisecond.
const PerMillisecond = 10000

// Generator makes the names of one node. Within one Generator the names
// only grow, even when the clock steps back. Two generators of the same
// node (two processes of one server) can make the same name: a store that
// allows that tells them apart itself and asks for the next name. It is
// safe for concurrent use.
type Generator struct {
	mu      sync.Mutex
	node    int
	lastMs  int64
	counter int
}

// NewGenerator returns the generator of node, 0..MaxNode.
func NewGenerator(node int) *Generator { return &Generator{node: node} }

// Next returns a fresh name for time now.
func (g *Generator) Next(now time.Time) string {
	g.mu.Lock()
	ms := now.UnixMilli()
	if ms < g.lastMs {
		ms = g.lastMs // the clock went back: keep names growing
	}
	if ms == g.lastMs {
		g.counter++
		if g.counter >= PerMillisecond {
			ms++
			g.counter = 0
		}
	} else {
		g.counter = 0
	}
	g.lastMs = ms
	c := g.counter
	g.mu.Unlock()
	return Format(ms, c, g.node)
}

// Format returns the name for the millisecond ms (Unix time), the counter
// and the node.
func Format(ms int64, counter, node int) string {
	t := time.UnixMilli(ms).UTC()
	var b [Len]byte
	put := func(off, width, v int) {
		for i := off + width - 1; i >= off; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, 4, t.Year())
	put(4, 2, int(t.Month()))
	put(6, 2, t.Day())
	put(8, 2, t.Hour())
	put(10, 2, t.Minute())
	put(12, 2, t.Second())
	put(14, 3, t.Nanosecond()/1e6)
	put(17, 4, counter)
	put(21, 5, node)
	return string(b[:])
}

// Valid reports whether s is Len ASCII digits.
func Valid(s []byte) bool {
	if len(s) != Len {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
