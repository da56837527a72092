// Package guard is the brute-force protection of the authentication module:
// an auth.Guard that holds back the reply to every failed login by a fixed
// delay plus a per-address penalty, and optionally bans an address for a
// while after too many failures.
//
// The rules, all settings of the [auth] table:
//   - every failure is answered after fail_delay plus the address's penalty;
//   - the penalty is penalty × the address's recent failures, at most
//     penalty_max; recent failures decay, one forgiven per Options.Decay
//     without a new failure. A successful login from the address forgives
//     nothing: otherwise anyone holding one account could wipe the
//     address's penalty and ban count by logging in to it between guesses
//     at other mailboxes. Only failures are delayed, so a user who mistyped
//     is not slowed by this once logged in;
//   - with ban_after > 0, ban_after failures within ban_window ban the
//     address for ban_time: the session refuses it without checking
//     credentials.
//
// Penalties also apply before a password is hashed (Admit): an address
// with recent failures may have one password hashed per penalty interval,
// whatever number of connections it opens; attempts beyond PenaltyMax of
// waiting are refused without a hash, like a banned address's.
//
// For the auth queue's lines (auth.Standing), the guard also counts
// failures per network (IPv4 /24, IPv6 /48): Options.NetFailures of them
// make every address of the network suspect; a successful login makes its
// network trusted for Options.NetTrust. A refusal by a full auth queue
// (Busy) is no failure: it only makes the address's next hash wait, longer
// after each refusal in a row.
//
// A Guard never blocks: it only computes delays, which the protocol
// session applies with a timer, not by sleeping on an event loop. Its
// table of addresses is bounded (Options.MaxAddresses); when full, the
// address touched longest ago is forgotten. IPv6 addresses are grouped by
// their /64 prefix, since one host usually owns a whole /64.
//
// Metrics: pop3_auth_penalty_total (failures answered with a penalty on top
// of the fixed delay), pop3_auth_banned_total (bans imposed) and
// pop3_auth_banned_addresses (addresses banned now) and
// pop3_auth_throttled_total (attempts refused before a hash by Admit).
package guard

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/pop3svc/pop3svc/session/auth"
)

// DefaultMaxAddresses is the default bound of the address table: about 150
// bytes an entry, so some 10 MB at most.
const DefaultMaxAddresses = 65536

// DefaultDecay is how long an address must go without a failure for one of
// its recent failures to be forgiven.
const DefaultDecay = time.Minute

// Options are the guard's settings.
type Options struct {
	FailDelay  time.Duration // fixed delay of every failed login
	Penalty    time.Duration // added per recent failure of the address
	PenaltyMax time.Duration // cap of the penalty
	BanAfter   int           // failures within BanWindow that ban the address; 0: never ban
	BanWindow  time.Duration //
	BanTime    time.Duration // how long a ban lasts
	// NetFailures is how many recent failures (decaying as an address's
	// do) of the addresses of one network (auth.Network: IPv4 /24, IPv6
	// /48) make every address of that network suspect (see Suspect); 0:
	// networks never are.
	NetFailures int
	// NetTrust is how long a successful login from a network (as for
	// NetFailures) makes its addresses Trusted: their checks go before
	// those of networks not seen logging in (see Standing); 0: never.
	NetTrust time.Duration
	// Decay is how long without a failure forgives one recent failure;
	// 0 means DefaultDecay.
	Decay time.Duration
	// MaxAddresses bounds the table; 0 means DefaultMaxAddresses.
	MaxAddresses int
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
}

var (
	penaltyTotal = metrics.GetOrCreateCounter("pop3_auth_penalty_total")
	bannedTotal  = metrics.GetOrCreateCounter("pop3_auth_banned_total")
	// throttledTotal counts logins refused without a hash because the
	// address had more attempts waiting than its penalty allows.
	throttledTotal = metrics.GetOrCreateCounter("pop3_auth_throttled_total")

	// live holds every guard not yet closed, for the banned-addresses gauge.
	liveMu sync.Mutex
	live   = map[*Guard]struct{}{}
	_      = metrics.GetOrCreateGauge("pop3_auth_banned_addresses", func() float64 {
		liveMu.Lock()
		defer liveMu.Unlock()
		n := 0
		for g := range live {
			n += g.BannedCount()
		}
		return float64(n)
	})
)

// entry is what the guard remembers of one address.
type entry struct {
	key         string
	failures    float64   // recent failures, decaying
	last        time.Time // last failure (decay reference)
	windowStart time.Time // start of the ban window being counted
	windowCount int       // failures since windowStart
	bannedUntil time.Time
	nextHash    time.Time     // the earliest a password of this address may be hashed
	lastSuccess time.Time     // a network's entry: its last successful login
	busy        float64       // recent refusals by a full auth queue, decaying as failures do
	busyLast    time.Time     // the last of them
	elem        *list.Element // position in the recency list
}

// Guard implements auth.Guard. It is safe for concurrent use.
type Guard struct {
	opt   Options // guarded by mu: SetOptions replaces it on reload
	mu    sync.Mutex
	table map[string]*entry
	order *list.List // front: touched most recently
}

var _ auth.Guard = (*Guard)(nil)

// New returns a guard with the given options.
func New(opt Options) *Guard {
	if opt.Decay <= 0 {
		opt.Decay = DefaultDecay
	}
	if opt.MaxAddresses <= 0 {
		opt.MaxAddresses = DefaultMaxAddresses
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	g := &Guard{opt: opt, table: make(map[string]*entry), order: list.New()}
	liveMu.Lock()
	live[g] = struct{}{}
	liveMu.Unlock()
	return g
}

// SetOptions applies changed settings (on reload) and keeps what the guard
// remembers of every address: penalties and bans survive a reload.
func (g *Guard) SetOptions(opt Options) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if opt.Decay <= 0 {
		opt.Decay = DefaultDecay
	}
	if opt.MaxAddresses <= 0 {
		opt.MaxAddresses = DefaultMaxAddresses
	}
	if opt.Now == nil {
		opt.Now = g.opt.Now
	}
	g.opt = opt
}

// Close removes the guard from the banned-addresses gauge. The guard
// keeps working; Close only matters when a guard is replaced (on reload).
func (g *Guard) Close() {
	liveMu.Lock()
	delete(live, g)
	liveMu.Unlock()
}

// Key returns the table key of a remote address: the IP itself for IPv4
// (a "host:port" is accepted and its port dropped), the /64 prefix for
// IPv6. Anything unparsable is used as given.
func Key(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		remote = h
	}
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return remote
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Banned reports whether remoteIP is banned now.
func (g *Guard) Banned(remoteIP string) bool {
	k := Key(remoteIP)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opt.Now()
	e := g.table[k]
	return e != nil && now.Before(e.bannedUntil)
}

// Failure records a failed login and returns how long to hold the reply
// back: FailDelay plus the address's penalty.
func (g *Guard) Failure(remoteIP string) time.Duration {
	k := Key(remoteIP)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opt.Now()
	e := g.lookup(k, now)
	g.decay(e, now)
	// The penalty counts the failures before this one: a first failure
	// gets only the fixed delay.
	pen := time.Duration(e.failures * float64(g.opt.Penalty))
	if pen > g.opt.PenaltyMax {
		pen = g.opt.PenaltyMax
	}
	if pen < 0 {
		pen = 0
	}
	e.failures++
	e.last = now
	if g.opt.NetFailures > 0 {
		n := g.lookup(netKey(remoteIP), now)
		g.decay(n, now)
		n.failures++
		n.last = now
	}
	if pen > 0 {
		penaltyTotal.Inc()
	}
	if g.opt.BanAfter > 0 {
		if e.windowStart.IsZero() || now.Sub(e.windowStart) >= g.opt.BanWindow {
			e.windowStart = now
			e.windowCount = 0
		}
		e.windowCount++
		if e.windowCount >= g.opt.BanAfter && !now.Before(e.bannedUntil) {
			e.bannedUntil = now.Add(g.opt.BanTime)
			e.windowStart = time.Time{}
			e.windowCount = 0
			bannedTotal.Inc()
		}
	}
	return g.opt.FailDelay + pen
}

// Admit is asked before a password from remoteIP is hashed, so that the
// address's penalty and ban cost no hash. A banned address is refused. An
// address with recent failures gets one hash per penalty interval (its
// penalty, as Penalty reports it), however many connections it opens: wait
// is how long this attempt must wait for its turn, and an attempt whose
// turn is further off than PenaltyMax is refused. An address without
// recent failures is admitted at once.
func (g *Guard) Admit(remoteIP string) (wait time.Duration, ok bool) {
	k := Key(remoteIP)
	now := g.opt.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.table[k]
	if e == nil {
		return 0, true
	}
	if now.Before(e.bannedUntil) {
		return 0, false
	}
	f := e.failures - float64(now.Sub(e.last)/g.opt.Decay)
	pen := min(time.Duration(max(f, 0)*float64(g.opt.Penalty)), g.opt.PenaltyMax)
	if pen <= 0 {
		// No failures, but maybe a turn spent by Busy.
		if wait = e.nextHash.Sub(now); wait <= 0 {
			return 0, true
		}
		if wait > g.opt.PenaltyMax {
			throttledTotal.Inc()
			return 0, false
		}
		return wait, true
	}
	start := now
	if e.nextHash.After(now) {
		start = e.nextHash
	}
	wait = start.Sub(now)
	if wait > g.opt.PenaltyMax {
		throttledTotal.Inc()
		return 0, false
	}
	e.nextHash = start.Add(pen)
	return wait, true
}

// Busy records that the auth queue refused a check of remoteIP because it
// was full. It is no failure and makes nothing suspect; it only spends
// the address's turn: its next check may be hashed Penalty × its recent
// such refusals (this one included; at most PenaltyMax) from now, and
// Admit makes an earlier attempt wait for that turn. The refusals decay
// as failures do, one forgiven per Decay. A client that retries at once
// after [SYS/TEMP] is so paced, ever more slowly while the queue stays
// full; a client that logs in now and then waits a Penalty at most after
// a refusal.
func (g *Guard) Busy(remoteIP string) {
	k := Key(remoteIP)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opt.Now()
	e := g.lookup(k, now)
	if steps := float64(now.Sub(e.busyLast) / g.opt.Decay); steps > 0 {
		e.busy = max(e.busy-steps, 0)
	}
	e.busy++
	e.busyLast = now
	e.nextHash = now.Add(min(time.Duration(e.busy*float64(g.opt.Penalty)), g.opt.PenaltyMax))
}

// Success records a successful login. It does not forgive the address's
// failures nor its ban count (see the package comment): they only decay
// with time. An address with nothing left to remember is dropped from the
// table; a ban, if any, stays until it ends.
func (g *Guard) Success(remoteIP string) {
	k := Key(remoteIP)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opt.Now()
	if g.opt.NetTrust > 0 {
		g.lookup(netKey(remoteIP), now).lastSuccess = now
	}
	e := g.table[k]
	if e == nil {
		return
	}
	f := e.failures - float64(now.Sub(e.last)/g.opt.Decay)
	windowOpen := g.opt.BanAfter > 0 && !e.windowStart.IsZero() && now.Sub(e.windowStart) < g.opt.BanWindow
	if f <= 0 && !windowOpen && !now.Before(e.bannedUntil) {
		g.order.Remove(e.elem)
		delete(g.table, k)
	}
}

// Penalty returns the penalty the address's next failure would get, for
// tests and the administrator's tool. It changes nothing.
func (g *Guard) Penalty(remoteIP string) time.Duration {
	k := Key(remoteIP)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opt.Now()
	e := g.table[k]
	if e == nil {
		return 0
	}
	f := e.failures - float64(now.Sub(e.last)/g.opt.Decay)
	if f < 0 {
		f = 0
	}
	return min(time.Duration(f*float64(g.opt.Penalty)), g.opt.PenaltyMax)
}

// netKey is the table key of remote's network; no address key looks like it.
func netKey(remote string) string { return "net " + auth.Network(remote) }

// Suspect reports whether the password checks of remoteIP wait behind
// everyone else's in the auth queue: the address has a penalty (Penalty >
// 0), or its network has NetFailures or more recent failures.
func (g *Guard) Suspect(remoteIP string) bool {
	return g.Penalty(remoteIP) > 0 || g.NetworkSuspect(remoteIP)
}

// Standing tells the auth queue where the password checks of remoteIP
// wait: Suspect (see Suspect); else Trusted when its network had a
// successful login within NetTrust; else Unknown. It changes nothing.
func (g *Guard) Standing(remoteIP string) auth.Standing {
	if g.Suspect(remoteIP) {
		return auth.Suspect
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opt.NetTrust > 0 {
		if e := g.table[netKey(remoteIP)]; e != nil && !e.lastSuccess.IsZero() && g.opt.Now().Sub(e.lastSuccess) < g.opt.NetTrust {
			return auth.Trusted
		}
	}
	return auth.Unknown
}

// NetworkSuspect reports whether remoteIP's network has NetFailures or
// more recent failures. It changes nothing.
func (g *Guard) NetworkSuspect(remoteIP string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opt.NetFailures <= 0 {
		return false
	}
	e := g.table[netKey(remoteIP)]
	if e == nil {
		return false
	}
	f := e.failures - float64(g.opt.Now().Sub(e.last)/g.opt.Decay)
	return f >= float64(g.opt.NetFailures)
}

// Len returns the number of addresses in the table.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.table)
}

// BannedCount returns the number of addresses banned now.
func (g *Guard) BannedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opt.Now()
	n := 0
	for _, e := range g.table {
		if now.Before(e.bannedUntil) {
			n++
		}
	}
	return n
}

// Unban lifts the ban of an address and forgets its failures; it reports
// whether the address was banned. For the administrator's tool.
func (g *Guard) Unban(remoteIP string) bool {
	k := Key(remoteIP)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opt.Now()
	e := g.table[k]
	if e == nil {
		return false
	}
	was := now.Before(e.bannedUntil)
	g.order.Remove(e.elem)
	delete(g.table, k)
	return was
}

// lookup returns the entry of k, creating it (and evicting the entry
// touched longest ago when the table is full). It moves the entry to the
// front of the recency list. g.mu is held.
func (g *Guard) lookup(k string, now time.Time) *entry {
	if e := g.table[k]; e != nil {
		g.order.MoveToFront(e.elem)
		return e
	}
	for len(g.table) >= g.opt.MaxAddresses {
		back := g.order.Back()
		if back == nil {
			break
		}
		old := back.Value.(*entry)
		g.order.Remove(back)
		delete(g.table, old.key)
	}
	e := &entry{key: k, last: now}
	e.elem = g.order.PushFront(e)
	g.table[k] = e
	return e
}

// decay forgives one failure per Decay elapsed since the last failure.
func (g *Guard) decay(e *entry, now time.Time) {
	if e.failures == 0 {
		return
	}
	steps := float64(now.Sub(e.last) / g.opt.Decay)
	if steps <= 0 {
		return
	}
	e.failures -= steps
	if e.failures < 0 {
		e.failures = 0
	}
}
