package filestore

import (
	"sync"
	"time"
)

// UIDLen is the length of a message name's digits and of a UID.
const UIDLen = 26

// counterLimit is the number of names per millisecond per node (4 digits).
const counterLimit = 10000

// nameGen makes message names: the UTC time to the millisecond
// (YYYYMMDDhhmmssmmm, 17 digits), a 4-digit counter and the 5-digit node.
// Within one process the names only grow; a name taken by another process
// of the same node is skipped by the caller (link fails) with next().
type nameGen struct {
	mu      sync.Mutex
	node    int
	lastMs  int64
	counter int
}

// next returns a fresh 26-digit name for time now.
func (g *nameGen) next(now time.Time) string {
	g.mu.Lock()
	ms := now.UnixMilli()
	if ms < g.lastMs {
		ms = g.lastMs // the clock went back: keep names growing
	}
	if ms == g.lastMs {
		g.counter++
		if g.counter >= counterLimit {
			ms++
			g.counter = 0
		}
	} else {
		g.counter = 0
	}
	g.lastMs = ms
	c := g.counter
	g.mu.Unlock()
	return formatName(ms, c, g.node)
}

func formatName(ms int64, counter, node int) string {
	t := time.UnixMilli(ms).UTC()
	var b [UIDLen]byte
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

// isUID reports whether s is 26 ASCII digits.
func isUID(s []byte) bool {
	if len(s) != UIDLen {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
