package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
	"github.com/pop3svc/pop3svc/bench/pop3c"
	"github.com/pop3svc/pop3svc/bench/proc"
)

// The attack scenario: three things at once against one server, then the
// same against the next.
//   - Slow clients: connections that never log in, each sending one byte
//     (never a line end) every -trickle, from -slow-addrs addresses
//     127.0.X.Y (X < 200), held in worker processes (at most
//     MaxConnsPerWorker each) up to -slow connections; one that is closed
//     or refused reconnects after AttackRedial.
//   - A wrong-password flood: one connection per address from -flood-addrs
//     addresses 127.0.X.Y (X ≥ 200), each sending USER and a wrong PASS to
//     real mailboxes, again and again, reconnecting when closed.
//   - Normal clients: -c clients running full sessions (login, STAT, UIDL,
//     LIST, RETR of everything, QUIT), client k always from its own
//     address 127.3.0.(1+k), another network, one login per session; a
//     failed session is retried after AttackNormalRetry, as a mail client
//     retries later rather than at once. And -probes logged-in sessions
//     (idle mailboxes, logged in before the attack, from 127.3.0.(101+i))
//     timing a NOOP every -probe-every.
// It reports the normal sessions' success rate and p50/p99 time, the
// probes' command latency p99, the server's CPU time and peak PSS (its
// whole process tree, sampled every AttackSample), and what the attackers
// achieved.

// Attack tuning.
const (
	AttackRedial      = time.Second            // a slow client's pause before reconnecting
	AttackFloodWait   = 100 * time.Millisecond // a flood connection's pause before reconnecting
	AttackSample      = 250 * time.Millisecond // server memory sampling
	AttackDialPar     = 256                    // parallel dials per worker while ramping
	AttackSettle      = time.Second            // a started server is left alone before its baseline is read
	AttackGrace       = 3 * time.Second        // a normal session may end this long after the measured phase
	AttackStuck       = 5 * time.Second        // a session running this long when the figures are taken failed
	AttackNormalRetry = time.Second            // a normal client's pause after a failed session
)

type attackOptions struct {
	compareOptions
	Slow       int
	SlowAddrs  int
	Trickle    time.Duration
	Ramp       time.Duration
	Dur        time.Duration
	FloodAddrs int
	Normal     int
	Probes     int
	ProbeEvery time.Duration
	SocketMax  int // pop3d's socketmax and Dovecot's client limit; 0: pop3d's default
	Backlog    int
	Warm       bool // every mailbox logs in once before the attack
}

// attackResult is one server's figures.
type attackResult struct {
	Server        string  `json:"server"`
	Sessions      int64   `json:"sessions"`
	SessionErrors int64   `json:"session_errors"`
	SuccessPct    float64 `json:"success_pct"`
	SessionP50Ms  float64 `json:"session_p50_ms"`
	SessionP99Ms  float64 `json:"session_p99_ms"`
	// The parts of a successful session: connect and greeting, login.
	DialP50Ms   float64 `json:"dial_p50_ms"`
	DialP99Ms   float64 `json:"dial_p99_ms"`
	LoginP50Ms  float64 `json:"login_p50_ms"`
	LoginP99Ms  float64 `json:"login_p99_ms"`
	FirstError  string  `json:"first_error,omitempty"`
	ProbeCmds   int64   `json:"probe_cmds"`
	ProbeErrors int64   `json:"probe_errors"`
	ProbeP50Ms  float64 `json:"probe_p50_ms"`
	ProbeP99Ms  float64 `json:"probe_p99_ms"`
	ProbeMaxMs  float64 `json:"probe_max_ms"`
	// ProbeMaxBySec is the slowest NOOP of each second of the measured
	// phase, in ms: when the slow commands came.
	ProbeMaxBySec []float64 `json:"probe_max_by_sec"`
	ServerCPUSec  float64   `json:"server_cpu_sec"`
	ServerCPUPct  float64   `json:"server_cpu_pct"` // of one core over the measured phase
	PeakPSS       int64     `json:"peak_pss"`
	// BoundPSS is the README's memory bound for pop3d on the defaults
	// the bench runs it with (see memoryBound); 0 for other servers.
	BoundPSS       int64   `json:"bound_pss,omitempty"`
	BasePSS        int64   `json:"base_pss"`
	SlowHeldMax    int64   `json:"slow_held_max"`    // slow connections open at once (greeted or waiting)
	SlowGreetedMax int64   `json:"slow_greeted_max"` // of them greeted
	SlowOpened     int64   `json:"slow_opened"`
	SlowRefused    int64   `json:"slow_refused"` // closed by the server (-ERR, EOF, reset)
	FloodPass      int64   `json:"flood_pass"`   // wrong passwords answered
	FloodRefused   int64   `json:"flood_refused"`
	Seconds        float64 `json:"seconds"`
}

func runAttack(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("attack", flag.ExitOnError)
	spec := corpusFlags(fs)
	o := attackOptions{}
	quick := fs.Bool("quick", false, "a short run (under a minute for both servers)")
	fs.StringVar(&o.Work, "work", filepath.Join(os.TempDir(), "pop3bench-attack"), "work folder: corpora, configs, logs")
	fs.StringVar(&o.Out, "out", "", "folder for attack.json (default: the work folder)")
	fs.StringVar(&o.Pop3d, "pop3d", "", "pop3d binary (default: go build ./cmd/pop3d)")
	fs.StringVar(&o.Dovecot, "dovecot", "/usr/sbin/dovecot", "Dovecot binary (installed from dovecot-pop3d when missing)")
	fs.StringVar(&o.Scheme, "dovecot-scheme", "SHA512-CRYPT", "Dovecot's password scheme")
	servers := fs.String("servers", "pop3d,dovecot", "servers to attack, in order")
	fs.IntVar(&o.Slow, "slow", 17000, "slow pre-login connections to hold (the server's fd limit is 20,000)")
	fs.IntVar(&o.SlowAddrs, "slow-addrs", 2000, "source addresses of the slow connections")
	fs.DurationVar(&o.Trickle, "trickle", 10*time.Second, "a slow connection sends one byte this often")
	fs.DurationVar(&o.Ramp, "ramp", 20*time.Second, "time given to open the slow connections before measuring")
	fs.DurationVar(&o.Dur, "d", 30*time.Second, "measured phase")
	fs.IntVar(&o.FloodAddrs, "flood-addrs", 1000, "wrong-password flood: addresses, one connection each")
	fs.IntVar(&o.Normal, "c", 8, "normal clients running full sessions")
	fs.IntVar(&o.Probes, "probes", 8, "logged-in sessions timing commands")
	fs.DurationVar(&o.ProbeEvery, "probe-every", 50*time.Millisecond, "a probe's pause between commands")
	fs.IntVar(&o.SocketMax, "socketmax", 0, "pop3d socketmax and Dovecot client limit (0: pop3d's default, 10000)")
	fs.IntVar(&o.Backlog, "socketbacklog", 0, "pop3d socketbacklog (0: pop3d's default, 1000)")
	fs.BoolVar(&o.Warm, "warm", false, "each mailbox logs in once before the attack, as mail clients that poll had before it (each server's own hash and cache; -scheme implies it)")
	scheme := fs.String("scheme", "", "password hash of both servers with the same parameters, and both auth caches on (10m): sha512-crypt or argon2id; each mailbox logs in once before the attack. Empty: each server's own defaults")
	fs.StringVar(&o.Profile, "profile", "", "write a pprof CPU profile of pop3d's measured phase into this folder (admin.pprof on)")
	fs.Parse(args)
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, apply := range map[string]func(){
			"slow":          func() { o.Slow = 3000 },
			"slow-addrs":    func() { o.SlowAddrs = 600 },
			"trickle":       func() { o.Trickle = 2 * time.Second },
			"ramp":          func() { o.Ramp = 4 * time.Second },
			"d":             func() { o.Dur = 8 * time.Second },
			"c":             func() { o.Normal = 4 },
			"socketmax":     func() { o.SocketMax = 2000 },
			"socketbacklog": func() { o.Backlog = 200 },
		} {
			if !set[name] {
				apply()
			}
		}
	}
	if o.Slow < 0 || o.SlowAddrs < 1 || o.SlowAddrs > 200*250 || o.FloodAddrs < 0 || o.FloodAddrs > 50*250 {
		return fmt.Errorf("attack: -slow-addrs must be 1..50000 and -flood-addrs 0..12500")
	}
	if o.Out == "" {
		o.Out = o.Work
	}
	spec.Idle = max(spec.Idle, o.Probes)
	spec.Users = max(spec.Users, o.Normal)
	o.Servers = strings.Split(*servers, ",")
	// Dovecot's client limit: what pop3d holds (socketmax + socketbacklog).
	o.Idle = cmp.Or(o.SocketMax, 10000) + cmp.Or(o.Backlog, 1000)
	for _, d := range []string{o.Work, o.Out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	os.Chmod(o.Work, 0o755)
	if *scheme != "" {
		bin := ""
		if slices.Contains(o.Servers, "dovecot") && ensureDovecot(ctx, o.Dovecot) == nil {
			bin = o.Dovecot
		}
		pair, err := pairScheme(ctx, bin, *scheme, spec.Password, 10*time.Minute)
		if err != nil {
			return err
		}
		o.Pair, o.Scheme, o.AuthCacheTTL = &pair, Schemes[pair.Scheme], pair.CacheTTL
		fmt.Println("password scheme:", pair.String())
	}
	var results []attackResult
	for _, name := range o.Servers {
		var s *server
		var err error
		switch name {
		case "pop3d":
			s, err = setupPop3dAttack(ctx, o, *spec)
		case "dovecot":
			s, err = setupDovecot(ctx, o.compareOptions, *spec)
		default:
			err = fmt.Errorf("unknown server %q (pop3d, dovecot)", name)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pop3bench: %s not attacked: %v\n", name, err)
			continue
		}
		r, err := attackOne(ctx, s, o, *spec)
		s.stop()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pop3bench: attack on %s: %v\n", name, err)
			continue
		}
		printAttack(r)
		if r.BoundPSS > 0 {
			verdict := "within"
			if r.PeakPSS > r.BoundPSS {
				verdict = "ABOVE"
			}
			fmt.Printf("%s: peak PSS %.0f MB, %s the memory bound %.0f MB (README: 2 × idle %.0f MB + hash workers + running hashes)\n",
				r.Server, float64(r.PeakPSS)/1e6, verdict, float64(r.BoundPSS)/1e6, float64(r.BasePSS)/1e6)
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Println()
	fmt.Printf("%-8s %8s %9s %9s %9s %9s %8s %9s %9s %9s %8s\n", "server", "success", "sess p50", "sess p99", "cmd p99", "cmd max", "cpu %", "peak PSS", "slow held", "greeted", "wrong PW")
	for _, r := range results {
		fmt.Printf("%-8s %7.1f%% %7.0fms %7.0fms %7.1fms %7.1fms %7.0f%% %7.0fMB %9d %9d %8d\n", r.Server, r.SuccessPct, r.SessionP50Ms, r.SessionP99Ms,
			r.ProbeP99Ms, r.ProbeMaxMs, r.ServerCPUPct, float64(r.PeakPSS)/1e6, r.SlowHeldMax, r.SlowGreetedMax, r.FloodPass)
	}
	f, err := os.Create(filepath.Join(o.Out, "attack.json"))
	if err != nil {
		return err
	}
	defer f.Close()
	return writeJSON(f, struct {
		Command string         `json:"command"`
		Started time.Time      `json:"started"`
		Results []attackResult `json:"results"`
	}{strings.Join(os.Args, " "), time.Now(), results})
}

func printAttack(r attackResult) {
	fmt.Printf("%s: sessions %d ok, %d failed (%.1f%%), p50 %.0f ms, p99 %.0f ms (connect+greeting p50 %.0f p99 %.0f ms, login p50 %.0f p99 %.0f ms); logged-in NOOP p50 %.1f ms p99 %.1f ms max %.1f ms (%d, %d errors); "+
		"server CPU %.1f s (%.0f%%), PSS %.0f MB → peak %.0f MB; slow: %d opened, %d held at most (%d greeted), %d closed by the server; flood: %d wrong passwords answered, %d connections refused %s\n",
		r.Server, r.Sessions, r.SessionErrors, r.SuccessPct, r.SessionP50Ms, r.SessionP99Ms, r.DialP50Ms, r.DialP99Ms, r.LoginP50Ms, r.LoginP99Ms, r.ProbeP50Ms, r.ProbeP99Ms, r.ProbeMaxMs, r.ProbeCmds, r.ProbeErrors,
		r.ServerCPUSec, r.ServerCPUPct, float64(r.BasePSS)/1e6, float64(r.PeakPSS)/1e6, r.SlowOpened, r.SlowHeldMax, r.SlowGreetedMax, r.SlowRefused, r.FloodPass, r.FloodRefused, r.FirstError)
}

// setupPop3dAttack runs pop3d on its defaults (only ports, mail root and
// the pool sizes given on the command line), so that a binary from before
// any new setting runs with the same file.
func setupPop3dAttack(ctx context.Context, o attackOptions, spec corpus.Spec) (*server, error) {
	co := o.compareOptions
	co.Idle, co.IdleLogin = 0, 0
	s, err := setupPop3dWith(ctx, co, spec, &pop3dPools{SocketMax: o.SocketMax, Backlog: o.Backlog})
	return s, err
}

// attackSrc is the n-th source address of a group spread over span /24
// networks: 127.0.X.Y with X in base..base+span-1, Y from 1.
func attackSrc(base, span, n int) string {
	return fmt.Sprintf("127.0.%d.%d", base+n%span, 1+n/span)
}

func attackOne(ctx context.Context, s *server, o attackOptions, spec corpus.Spec) (attackResult, error) {
	r := attackResult{Server: s.name}
	if o.Pair != nil || o.Warm {
		// One session per mailbox: pop3d rewrites the imported hashes
		// with the paired scheme, and the servers' auth caches (pop3d's
		// auth.cache_ttl; Dovecot's with -scheme) hold every mailbox,
		// as for clients that poll.
		t := &target{Addr: s.addr, Spec: spec, Timeout: 60 * time.Second}
		if w, err := t.runWarm(ctx); err != nil || w.Errors > 0 {
			fmt.Fprintf(os.Stderr, "pop3bench: warm-up of %s: %v %s\n", s.name, err, w.FirstError)
		}
	}
	// Just started by its setup: let it settle, then read the baseline.
	sleepCtx(ctx, AttackSettle)
	r.BasePSS, _ = proc.PSS(s.pid())
	// Probes log in first.
	var probes []*pop3c.Conn
	defer func() {
		for _, c := range probes {
			c.Close()
		}
	}()
	for i := 0; i < o.Probes; i++ {
		c, err := pop3c.Dial(ctx, s.addr, pop3c.Options{Local: fmt.Sprintf("127.3.0.%d", 101+i%100), Timeout: 30 * time.Second})
		if err != nil {
			return r, fmt.Errorf("probe: %w", err)
		}
		if err := c.Login(corpus.IdleUser(i)+"@"+spec.Domain, spec.Password); err != nil {
			c.Close()
			return r, fmt.Errorf("probe login: %w", err)
		}
		probes = append(probes, c)
	}
	// Memory sampler.
	var peak atomic.Int64
	peak.Store(r.BasePSS)
	sampleCtx, stopSample := context.WithCancel(ctx)
	defer stopSample()
	go func() {
		t := time.NewTicker(AttackSample)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
				if p, err := proc.PSS(s.pid()); err == nil && p > peak.Load() {
					peak.Store(p)
				}
			}
		}
	}()
	// Slow clients in worker processes.
	ws, err := startSlowWorkers(s.addr, o)
	if err != nil {
		return r, err
	}
	defer ws.stop()
	fmt.Printf("%s: %d slow connections from %d addresses ramping for %v\n", s.name, o.Slow, o.SlowAddrs, o.Ramp)
	select {
	case <-time.After(o.Ramp):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	cpu0, err := proc.CPU(s.pid())
	if err != nil {
		return r, err
	}
	start := time.Now()
	phase, endPhase := context.WithTimeout(ctx, o.Dur)
	defer endPhase()
	if o.Profile != "" && s.admin != "" {
		go func() {
			if b := fetchProfile(phase, s.admin, o.Dur-time.Second); b != nil {
				os.WriteFile(filepath.Join(o.Profile, s.name+"-attack.pprof"), b, 0o644)
			}
		}()
	}
	var wg sync.WaitGroup
	// Flood.
	var floodPass, floodRefused atomic.Int64
	for i := 0; i < o.FloodAddrs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flood(phase, s.addr, attackSrc(200, 50, i), spec, i, &floodPass, &floodRefused)
		}()
	}
	// Normal clients and probes. The figures are taken AttackGrace after
	// the phase; a session still running then counts as failed if it has
	// run AttackStuck or longer, and is left out otherwise.
	var tl tally
	t := &target{Addr: s.addr, Spec: spec, Timeout: 30 * time.Second}
	inflight := make([]atomic.Int64, o.Normal) // start of client k's session in flight (UnixNano), 0: none
	var normal sync.WaitGroup
	for k := 0; k < o.Normal; k++ {
		normal.Add(1)
		go func() {
			defer normal.Done()
			for u := k; phase.Err() == nil; {
				inflight[k].Store(time.Now().UnixNano())
				err := t.sessionFrom(context.WithoutCancel(phase), t.login(corpus.User(u)), fmt.Sprintf("127.3.0.%d", 1+k%100), &tl)
				inflight[k].Store(0)
				if err != nil {
					tl.fail(err)
					sleepCtx(phase, AttackNormalRetry)
				}
				if u += o.Normal; u >= spec.Users {
					u = k
				}
			}
		}()
	}
	// Probes.
	var pmu sync.Mutex
	var plat []time.Duration
	var pmax []float64
	var probeErrs atomic.Int64
	for _, c := range probes {
		normal.Add(1)
		go func() {
			defer normal.Done()
			for phase.Err() == nil {
				t0 := time.Now()
				if _, err := c.Cmd("NOOP"); err != nil {
					probeErrs.Add(1)
					return
				}
				d := time.Since(t0)
				pmu.Lock()
				plat = append(plat, d)
				if sec := int(t0.Sub(start) / time.Second); sec >= 0 && sec < 600 {
					for len(pmax) <= sec {
						pmax = append(pmax, 0)
					}
					pmax[sec] = max(pmax[sec], float64(d)/1e6)
				}
				pmu.Unlock()
				time.Sleep(o.ProbeEvery)
			}
		}()
	}
	wg.Wait()
	normalDone := make(chan struct{})
	go func() { normal.Wait(); close(normalDone) }()
	select {
	case <-normalDone:
	case <-time.After(AttackGrace):
	}
	r.Seconds = time.Since(start).Seconds()
	if cpu1, err := proc.CPU(s.pid()); err == nil {
		r.ServerCPUSec = (cpu1 - cpu0).Seconds()
		r.ServerCPUPct = 100 * r.ServerCPUSec / r.Seconds
	}
	stopSample()
	r.PeakPSS = peak.Load()
	if s.name == "pop3d" {
		r.BoundPSS = memoryBound(r.BasePSS)
	}
	tl.mu.Lock()
	lat := append([]time.Duration(nil), tl.lat...)
	r.DialP50Ms, r.DialP99Ms, _ = quantiles(append([]time.Duration(nil), tl.dialLat...))
	r.LoginP50Ms, r.LoginP99Ms, _ = quantiles(append([]time.Duration(nil), tl.loginLat...))
	tl.mu.Unlock()
	var unfinished int64
	for k := range inflight {
		if st := inflight[k].Load(); st != 0 && time.Since(time.Unix(0, st)) >= AttackStuck {
			unfinished++
		}
	}
	r.Sessions, r.SessionErrors = tl.sessions.Load(), tl.errors.Load()+unfinished
	if n := r.Sessions + r.SessionErrors; n > 0 {
		r.SuccessPct = 100 * float64(r.Sessions) / float64(n)
	}
	tl.firstOnce.Do(func() {})
	if tl.firstErr != nil {
		r.FirstError = tl.firstErr.Error()
	} else if unfinished > 0 {
		r.FirstError = fmt.Sprintf("%d sessions still running after %v or more", unfinished, AttackStuck)
	}
	r.SessionP50Ms, r.SessionP99Ms, _ = quantiles(lat)
	pmu.Lock()
	pl := append([]time.Duration(nil), plat...)
	r.ProbeMaxBySec = append([]float64(nil), pmax...)
	pmu.Unlock()
	r.ProbeCmds, r.ProbeErrors = int64(len(pl)), probeErrs.Load()
	r.ProbeP50Ms, r.ProbeP99Ms, r.ProbeMaxMs = quantiles(pl)
	r.FloodPass, r.FloodRefused = floodPass.Load(), floodRefused.Load()
	if s.name == "pop3d" {
		saveMetrics(fmt.Sprintf("http://127.0.0.1:%d/metrics", Pop3dAdminPort), filepath.Join(o.Out, "pop3d-metrics.txt"))
	}
	st := ws.stop()
	r.SlowOpened, r.SlowHeldMax, r.SlowGreetedMax, r.SlowRefused = st[0], st[1], st[2], st[3]
	return r, nil
}

// memoryBound is the README's bound of pop3d's memory ("Logins under a
// password flood") for the settings the bench runs it with, the defaults,
// hashes in worker processes (auth.hash_processes): twice the idle
// process (its code, runtime and live heap, which the collector lets
// double), plus the hash workers' own (WorkerPSS each, at most two per
// core: one of each priority kept idle per core), plus the memory of the
// checks running at once (argon2id at 19 MiB, min(hash_workers = one per
// core, plus suspect_workers = half of that rounded up, hash_memory 256
// MiB / 19 MiB) of them).
func memoryBound(base int64) int64 {
	const argon2 = 19 << 20
	n := runtime.NumCPU()
	running := int64(min(n+(n+1)/2, (256<<20)/argon2)) * argon2
	return 2*base + 2*int64(runtime.NumCPU())*WorkerPSS + running
}

// WorkerPSS is the PSS of an idle hash worker process (measured: 7.3 MB).
const WorkerPSS = 8 << 20

// quantiles returns p50, p99 and max in milliseconds.
func quantiles(d []time.Duration) (p50, p99, mx float64) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) float64 {
		k := max(0, min(len(d)-1, int(p*float64(len(d))+0.5)-1))
		return float64(d[k]) / 1e6
	}
	return q(0.5), q(0.99), float64(d[len(d)-1]) / 1e6
}

// flood sends wrong passwords for real mailboxes from src until ctx ends.
func flood(ctx context.Context, addr, src string, spec corpus.Spec, i int, pass, refused *atomic.Int64) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	user := corpus.User(i%max(spec.Users, 1)) + "@" + spec.Domain
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			refused.Add(1)
			sleepCtx(ctx, AttackFloodWait)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		br := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		l, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "+OK") {
			refused.Add(1)
		} else {
			for ctx.Err() == nil {
				c.SetDeadline(time.Now().Add(60 * time.Second))
				if _, err := fmt.Fprintf(c, "USER %s\r\nPASS wrong-%d\r\n", user, i); err != nil {
					break
				}
				if _, err := br.ReadString('\n'); err != nil {
					break
				}
				l, err := br.ReadString('\n')
				if err != nil {
					break
				}
				if strings.HasPrefix(l, "-ERR") {
					pass.Add(1)
				}
			}
		}
		stop()
		c.Close()
		sleepCtx(ctx, AttackFloodWait)
	}
}

// saveMetrics keeps the server's metrics at the end of the measured phase,
// for the diagnosis of a run (what was refused, and why).
func saveMetrics(url, file string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pop3bench: metrics: %v\n", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	os.WriteFile(file, b, 0o644)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// slowWorkers are the worker processes holding slow connections.
type slowWorkers struct {
	ws []*exec.Cmd
	in []io.WriteCloser
	rd []*bufio.Reader
	st [4]int64
	ok bool
}

func startSlowWorkers(addr string, o attackOptions) (*slowWorkers, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	n := max(1, (o.Slow+MaxConnsPerWorker-1)/MaxConnsPerWorker)
	sw := &slowWorkers{}
	for i := 0; i < n; i++ {
		cnt := o.Slow / n
		if i < o.Slow%n {
			cnt++
		}
		cmd := exec.Command(exe, "attack-worker", "-addr", addr, "-n", strconv.Itoa(cnt), "-worker", strconv.Itoa(i),
			"-workers", strconv.Itoa(n), "-addrs", strconv.Itoa(o.SlowAddrs), "-trickle", o.Trickle.String())
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return sw, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return sw, err
		}
		if err := cmd.Start(); err != nil {
			return sw, err
		}
		sw.ws, sw.in, sw.rd = append(sw.ws, cmd), append(sw.in, in), append(sw.rd, bufio.NewReader(out))
	}
	return sw, nil
}

// stop ends the workers and sums what they report: opened, held at most,
// greeted at most, closed by the server. The maxima are summed over
// workers (an upper bound of the simultaneous figure).
func (sw *slowWorkers) stop() [4]int64 {
	if sw.ok || sw == nil {
		return sw.st
	}
	sw.ok = true
	for _, in := range sw.in {
		in.Close()
	}
	for i, cmd := range sw.ws {
		l, _ := sw.rd[i].ReadString('\n')
		f := strings.Fields(l)
		if len(f) == 5 && f[0] == "done" {
			for j := range 4 {
				v, _ := strconv.ParseInt(f[j+1], 10, 64)
				sw.st[j] += v
			}
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(WorkerStopWait):
			cmd.Process.Kill()
			<-done
		}
	}
	return sw.st
}

// attackWorker holds slow connections until its stdin closes, then prints
// "done opened heldMax greetedMax closedByServer".
func attackWorker(args []string) error {
	fs := flag.NewFlagSet("attack-worker", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	n := fs.Int("n", 0, "connections")
	worker := fs.Int("worker", 0, "this worker's index")
	workers := fs.Int("workers", 1, "workers")
	addrs := fs.Int("addrs", 1, "source addresses in all")
	trickle := fs.Duration("trickle", 10*time.Second, "one byte this often")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 0 || *n > MaxConnsPerWorker {
		return fmt.Errorf("attack-worker: -n %d outside 0..%d", *n, MaxConnsPerWorker)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	var opened, held, heldMax, greeted, greetedMax, closed atomic.Int64
	raise := func(v *atomic.Int64, now int64) {
		for {
			m := v.Load()
			if now <= m || v.CompareAndSwap(m, now) {
				return
			}
		}
	}
	dials := make(chan struct{}, AttackDialPar)
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Connection i of worker w uses address (i*workers+w) mod addrs.
			src := attackSrc(0, 200, (i**workers+*worker)%*addrs)
			d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			buf := make([]byte, 256)
			for ctx.Err() == nil {
				dials <- struct{}{}
				c, err := d.DialContext(ctx, "tcp", *addr)
				<-dials
				if err != nil {
					sleepCtx(ctx, AttackRedial)
					continue
				}
				opened.Add(1)
				raise(&heldMax, held.Add(1))
				stop := context.AfterFunc(ctx, func() { c.Close() })
				wasGreeted := false
				for ctx.Err() == nil {
					c.SetReadDeadline(time.Now().Add(*trickle))
					k, err := c.Read(buf)
					if k > 0 {
						if !wasGreeted && strings.HasPrefix(string(buf[:k]), "+OK") {
							wasGreeted = true
							raise(&greetedMax, greeted.Add(1))
						} else if strings.HasPrefix(string(buf[:k]), "-ERR") {
							break
						}
						continue
					}
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						if _, err := c.Write([]byte{'X'}); err != nil {
							break
						}
						continue
					}
					break
				}
				stop()
				c.Close()
				if wasGreeted {
					greeted.Add(-1)
				}
				held.Add(-1)
				if ctx.Err() == nil {
					closed.Add(1)
					sleepCtx(ctx, AttackRedial)
				}
			}
		}()
	}
	<-ctx.Done()
	wg.Wait()
	fmt.Printf("done %d %d %d %d\n", opened.Load(), heldMax.Load(), greetedMax.Load(), closed.Load())
	return nil
}
